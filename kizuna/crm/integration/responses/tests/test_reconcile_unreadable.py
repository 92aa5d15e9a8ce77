"""An item of a pull the CRM cannot read is skipped, said in the log, and the rest of the
page is still recorded (E4): one bad item, or a page of them, never stops reconciliation,
and a pull takes what was submitted before its `until`, leaving the rest to the next one
(D6). The real Survey service only lists what it builds from typed columns, so here a
scripted HTTP server (kizuna.testing.receiver, on loopback) answers GET /responses and
/responses/deleted as a Survey service of another version might.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kizuna.crm.integration.models import Connection, SurveyResponse
from kizuna.crm.integration.responses import services as intake
from kizuna.crm.models import Lead, Organization
from kizuna.testing.intake import SUBMITTED, completed
from kizuna.testing.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db


def page(items: list[dict[str, Any]], **extra: Any) -> Answer:
    body = json.dumps({"items": items, "next_cursor": None, **extra}).encode()
    return Answer(status=200, body=body, headers=(("Content-Type", "application/json"),))


@pytest.fixture(autouse=True)
def survey_service(settings: Any, receiver: Receiver) -> Receiver:
    """The scripted server stands in for the Survey service at SURVEY_URL."""
    settings.SURVEY_URL = receiver.origin
    return receiver


@pytest.fixture
def hana(organization: Organization) -> Lead:
    return Lead.objects.create(organization=organization, family_name="Hana")


def intake_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the intake logged, in order."""
    return [record.getMessage() for record in caplog.records if record.name == intake.logger.name]


def test_e4_an_unreadable_item_is_skipped_and_logged_and_the_rest_of_the_page_is_recorded(
    organization: Organization,
    connection: Connection,
    other_connection: Connection,
    hana: Lead,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
):
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
    assert intake_warnings(caplog) == [
        "Reconciliation skipped a response it cannot read: response_id is missing",
        "Reconciliation skipped a deletion it cannot read: "
        "deleted_at is not a date and time with a time zone: 'yesterday'",
    ]


def test_e4_an_unreadable_time_mid_page_is_skipped_and_logged_and_the_rest_is_recorded(
    connection: Connection, hana: Lead, receiver: Receiver, caplog: pytest.LogCaptureFixture
):
    first = completed(connection, hana, response_id="r-1")["data"]
    unreadable = completed(connection, hana, response_id="r-2")["data"]
    unreadable["submitted_at"] = "yesterday"
    last = completed(connection, hana, response_id="r-3")["data"]
    receiver.answer(
        page([first, unreadable, last]), page([], complete_since="2026-10-01T00:00:00Z")
    )

    with caplog.at_level(logging.WARNING, logger=intake.logger.name):
        found = intake.reconcile(
            connection=connection, until=SUBMITTED + datetime.timedelta(hours=2)
        )

    assert found == 2
    assert set(SurveyResponse.objects.values_list("response_id", flat=True)) == {"r-1", "r-3"}
    assert intake_warnings(caplog) == [
        "Reconciliation skipped a response it cannot read: "
        "submitted_at is not a date and time with a time zone: 'yesterday'"
    ]


def test_e4_a_page_of_unreadable_responses_does_not_end_the_pull_nor_change_its_since(
    connection: Connection, hana: Lead, receiver: Receiver
):
    unreadable = completed(connection, hana, response_id="r-1")["data"]
    unreadable["submitted_at"] = None
    readable = completed(connection, hana, response_id="r-2")["data"]
    receiver.answer(
        page([unreadable], next_cursor="page-2"),
        page([readable]),
        page([], complete_since="2026-10-01T00:00:00Z"),
    )

    until = SUBMITTED + datetime.timedelta(hours=2)

    assert intake.reconcile(connection=connection, until=until) == 1

    assert list(SurveyResponse.objects.values_list("response_id", flat=True)) == ["r-2"]
    asked = [parse_qs(urlsplit(request.path).query) for request in receiver.requests[:2]]
    assert [query.get("cursor") for query in asked] == [None, ["page-2"]]
    assert asked[1]["since"] == asked[0]["since"] == [until.isoformat()]


def test_d6_a_response_submitted_exactly_at_until_is_left_to_the_next_pull_which_records_it(
    connection: Connection, hana: Lead, receiver: Receiver
):
    """A pull takes the responses submitted before its `until` (the disable time for the
    last one, D6); the next pull starts a little before that `until` and records it."""
    at_until = completed(connection, hana, response_id="r-1")["data"]
    no_deletions = page([], complete_since="2026-10-01T00:00:00Z")
    receiver.answer(page([at_until]), no_deletions, page([at_until]), no_deletions)

    assert intake.reconcile(connection=connection, until=SUBMITTED) == 0
    assert SurveyResponse.objects.count() == 0

    connection.refresh_from_db()
    later = SUBMITTED + datetime.timedelta(minutes=1)
    assert intake.reconcile(connection=connection, until=later) == 1
    assert list(SurveyResponse.objects.values_list("response_id", flat=True)) == ["r-1"]
