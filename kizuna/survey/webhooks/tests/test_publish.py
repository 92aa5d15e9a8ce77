from __future__ import annotations

import datetime

import pytest
from django.db import transaction

from kizuna.survey.models import Survey, SurveyAccount
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.survey.webhooks.services import invitation_payload, publish_event, response_payload
from kizuna.testing.survey_keys import make_response
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.django_db


def endpoint(account: SurveyAccount, url: str, events: list[str], **fields) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        account=account, url=url, events=events, encrypted_secret="", **fields
    )


def test_publish_event_writes_one_delivery_per_subscribed_enabled_endpoint(account, carol_account):
    subscribed = endpoint(account, "https://crm.example.com/a", ["response.completed"])
    endpoint(account, "https://crm.example.com/b", ["invitation.opened"])
    endpoint(
        account,
        "https://crm.example.com/c",
        ["response.completed"],
        is_enabled=False,
        disabled_reason="410",
    )
    endpoint(carol_account, "https://crm.example.com/d", ["response.completed"])

    deliveries = publish_event(
        account=account, event_type="response.completed", payload={"response_id": "r1"}
    )

    assert [d.endpoint_id for d in deliveries] == [subscribed.pk]
    row = Delivery.objects.get()
    assert row.status == WorkStatus.PENDING
    assert row.event_type == "response.completed"
    assert row.message_id.startswith("msg_")
    assert row.payload["type"] == "response.completed"
    assert row.payload["data"] == {"response_id": "r1"}


def test_publish_event_is_rolled_back_with_the_callers_transaction(account):
    endpoint(account, "https://crm.example.com/a", ["response.completed"])
    with pytest.raises(RuntimeError), transaction.atomic():
        publish_event(account=account, event_type="response.completed", payload={})
        raise RuntimeError("the response insert failed")
    assert Delivery.objects.count() == 0


def test_publish_event_refuses_unknown_events(account):
    with pytest.raises(ValueError, match=r"response\.created"):
        publish_event(account=account, event_type="response.created", payload={})


def test_response_payload_carries_every_answer_with_its_question(survey: Survey):
    submitted = datetime.datetime(2026, 11, 30, 1, 2, 3, tzinfo=datetime.UTC)
    response = make_response(survey, submitted_at=submitted)

    payload = response_payload(response)

    assert payload["response_id"] == str(response.pk)
    assert payload["account_id"] == survey.portal.account_id
    assert payload["survey"] == {
        "id": survey.pk,
        "public_id": "satisfaction01",
        "title": "Satisfaction",
        "portal": {"id": survey.portal_id, "name": "Customers"},
    }
    assert payload["recipient_reference"] == "lead:42"
    assert payload["submitted_at"] == "2026-11-30T01:02:03Z"
    assert payload["started_at"] is None
    assert [
        (a["question"]["text"], a["question"]["kind"], a["value"], a["display"])
        for a in payload["answers"]
    ] == [
        ("How was it?", "single_choice", "good", "Good"),
        ("Anything else?", "long_text", "素晴らしい", "素晴らしい"),
        ("Recommend us?", "nps", 9, "9"),
    ]


def test_invitation_payload_names_the_recipient_reference_and_opening_time(survey: Survey):
    opened = datetime.datetime(2026, 11, 30, 9, 0, tzinfo=datetime.UTC)
    invitation = survey.invitations.create(recipient_reference="contact:7", opened_at=opened)

    assert invitation_payload(invitation) == {
        "account_id": survey.portal.account_id,
        "survey": {
            "id": survey.pk,
            "public_id": "satisfaction01",
            "title": "Satisfaction",
            "portal": {"id": survey.portal_id, "name": "Customers"},
        },
        "recipient_reference": "contact:7",
        "opened_at": "2026-11-30T09:00:00Z",
    }
