"""Disabling seen from the Survey service (D1, D5), end to end: Ada disables the integration on
Settings > Survey, the worker runs the final work (the last reconciliation, the removal of the
integration's webhook endpoint), and then the Survey service is looked at as its own users see
it: nothing of theirs was touched, new surveys can be made, and a link mailed before still
takes answers that the Survey keeps.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.integration.models import (
    Connection,
    ConnectionState,
    ReconciliationKind,
    SurveyResponse,
)
from kizuna.crm.models import Lead
from kizuna.e2e.integration.respond import (
    answer,
    answers_for,
    invite,
    make_due,
    run_worker,
)
from kizuna.survey.keys.models import ServiceKey
from kizuna.survey.models import AccountMember, Portal, Question, Response, Survey
from kizuna.survey.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.usefixtures("survey_service")

DISABLE = "/crm/integration/settings/disable/"


def survey_side(account_id: int) -> dict[str, Any]:
    """Everything of the Survey account that its own users see, as plain values."""
    return {
        "portals": list(
            Portal.objects.filter(account_id=account_id).order_by("pk").values_list("pk", "name")
        ),
        "surveys": list(
            Survey.objects.filter(portal__account_id=account_id)
            .order_by("pk")
            .values_list("pk", "title", "is_open", "portal_id")
        ),
        "questions": list(
            Question.objects.filter(survey__portal__account_id=account_id)
            .order_by("pk")
            .values_list("pk", "text", "options")
        ),
        "responses": list(
            Response.objects.filter(survey__portal__account_id=account_id)
            .order_by("pk")
            .values_list("pk", "recipient_reference", "submitted_at")
        ),
        "members": list(
            AccountMember.objects.filter(account_id=account_id)
            .order_by("pk")
            .values_list("user_id", "role")
        ),
        "keys": list(
            ServiceKey.objects.filter(member__account_id=account_id)
            .order_by("pk")
            .values_list("fingerprint", "revoked_at")
        ),
    }


def disable_and_finish(ada_client: Client, connection: Connection) -> None:
    """Ada disables on the settings page; the worker then runs the final work at once."""
    assert ada_client.post(DISABLE).status_code == 302
    make_due(ReconciliationKind.FINAL)
    run_worker()
    connection.refresh_from_db()
    assert connection.state == ConnectionState.DISABLED


def test_d1_disabling_leaves_portals_surveys_responses_members_and_keys_as_they_were(
    connection: Connection,
    lead: Lead,
    ada_client: Client,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    run_worker()
    endpoint_id = connection.webhook_endpoint_id
    assert endpoint_id is not None and WebhookEndpoint.objects.filter(pk=endpoint_id).exists()
    before = survey_side(connection.survey_account_id)

    disable_and_finish(ada_client, connection)

    assert survey_side(connection.survey_account_id) == before
    assert before["responses"] and len(before["surveys"]) == 1 and len(before["portals"]) == 2
    # Only the integration's own webhook endpoint is gone, once the final work is done.
    assert not WebhookEndpoint.objects.filter(pk=endpoint_id).exists()


def test_d1_surveys_can_still_be_created_at_the_survey_service_after_disabling(
    connection: Connection, ada_client: Client, ada_survey: Survey
) -> None:
    disable_and_finish(ada_client, connection)

    made = ada_client.post(
        reverse("survey:survey-new"),
        {
            "title": "After the CRM",
            "portal": ada_survey.portal_id,
            "language": "en",
            "thank_you_message": "Thanks.",
            "is_open": "on",
        },
    )

    survey = Survey.objects.get(title="After the CRM")
    assert made.status_code == 302
    assert made["Location"] == reverse("survey:survey", args=[survey.pk])
    assert survey.portal_id == ada_survey.portal_id and survey.is_open


def test_d5_a_link_sent_before_disabling_still_takes_answers_and_the_survey_keeps_them(
    connection: Connection,
    lead: Lead,
    ada_client: Client,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    link = invite(connection, lead, ada_survey)

    disable_and_finish(ada_client, connection)
    answer(link, answers_for(questions))  # opens the link (200) and submits it (302)
    run_worker()

    kept = Response.objects.get(survey=ada_survey)
    assert kept.recipient_reference == link.recipient_reference
    results = ada_client.get(reverse("survey:survey_results:responses", args=[ada_survey.pk]))
    assert results.status_code == 200
    detail = ada_client.get(
        reverse("survey:survey_results:response", args=[ada_survey.pk, kept.pk])
    ).content.decode()
    assert "Very kind people." in detail
    assert not SurveyResponse.objects.exists()  # and the CRM does not record it (D6)
