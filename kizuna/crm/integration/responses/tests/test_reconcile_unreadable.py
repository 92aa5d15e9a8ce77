"""An item of a pull the CRM cannot read is skipped, said in the log, and the rest of the
page is still recorded (E4): one bad item never stops reconciliation. The real Survey
service only lists what it builds from typed columns, so here a scripted HTTP server
(kizuna.testing.receiver, on loopback) answers GET /responses and /responses/deleted
as a Survey service of another version might.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import pytest

from kizuna.crm.integration.models import Connection, SurveyResponse
from kizuna.crm.integration.responses import services as intake
from kizuna.crm.models import Lead, Organization
from kizuna.testing.intake import SUBMITTED, completed, new_connection
from kizuna.testing.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db


def page(items: list[dict[str, Any]], **extra: Any) -> Answer:
    body = json.dumps({"items": items, "next_cursor": None, **extra}).encode()
    return Answer(status=200, body=body, headers=(("Content-Type", "application/json"),))


def test_e4_an_unreadable_item_is_skipped_and_logged_and_the_rest_of_the_page_is_recorded(
    organization: Organization,
    other_organization: Organization,
    receiver: Receiver,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
):
    settings.SURVEY_URL = receiver.origin
    connection: Connection = new_connection(organization)
    new_connection(other_organization)
    hana = Lead.objects.create(organization=organization, family_name="Hana")
    ken = Lead.objects.create(organization=organization, family_name="Ken")
    unreadable = completed(connection, hana)["data"] | {"response_id": ""}
    readable = completed(connection, ken, response_id="r-ken")["data"]
    kept = completed(connection, hana, response_id="r-hana")["data"]
    deletion = {key: readable[key] for key in ("response_id", "survey", "recipient_reference")}
    deletion |= {"submitted_at": readable["submitted_at"], "deleted_at": "2026-11-30T03:00:00Z"}
    receiver.answer(
        page([unreadable, readable, kept]),
        page(
            [deletion | {"deleted_at": "yesterday"}, deletion],
            complete_since="2026-10-01T00:00:00Z",
        ),
    )
    with caplog.at_level(logging.WARNING, logger=intake.logger.name):
        found = intake.reconcile(
            connection=connection, until=SUBMITTED + datetime.timedelta(hours=2)
        )

    assert found == 3  # two responses recorded, one deletion applied
    assert [request.path.split("?")[0] for request in receiver.requests] == [
        "/survey/api/v1/responses",
        "/survey/api/v1/responses/deleted",
    ]
    recorded = dict(SurveyResponse.objects.values_list("response_id", "lead_id"))
    assert recorded == {"r-ken": ken.pk, "r-hana": hana.pk}
    assert SurveyResponse.objects.get(response_id="r-ken").deleted_at is not None
    assert SurveyResponse.objects.get(response_id="r-hana").deleted_at is None
    assert [
        record.getMessage() for record in caplog.records if record.name == intake.logger.name
    ] == [
        "Reconciliation skipped a response it cannot read: response_id is missing",
        "Reconciliation skipped a deletion it cannot read: "
        "deleted_at is not a date and time with a time zone: 'yesterday'",
    ]
