"""The payloads the Survey service really publishes match kizuna/contracts/."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from kizuna import contracts
from kizuna.survey.models import Question, Survey
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery
from kizuna.testing.survey_keys import make_response

pytestmark = pytest.mark.django_db


def published(event_type: str) -> dict:
    return Delivery.objects.get(event_type=event_type).payload


@pytest.mark.parametrize("event_type", ["response.completed", "response.deleted"])
def test_response_events_match_their_schema(subscribed, survey: Survey, event_type):
    Question.objects.create(
        survey=survey,
        position=3,
        kind="matrix",
        text="Rate each",
        options={
            "rows": [{"key": "price", "label": "Price"}],
            "columns": [{"key": "good", "label": "Good"}],
        },
    )
    response = make_response(survey, started_at=timezone.now() - datetime.timedelta(minutes=3))
    response.answers.create(question=survey.questions.get(kind="matrix"), value={"price": "good"})

    services.publish_event(
        account=survey.portal.account,
        event_type=event_type,
        payload=services.response_payload(response),
    )

    body = published(event_type)
    assert contracts.errors(body, contracts.schema(event_type)) == []
    assert body["data"]["answers"][-1]["display"] == "Price: Good"
    assert body["data"]["answers"][-1]["rows"] == [
        {"key": "price", "label": "Price", "column": {"key": "good", "label": "Good"}}
    ]
    assert body["data"]["answers"][-1]["choices"] is None


@pytest.mark.parametrize("event_type", ["response.completed", "response.deleted"])
def test_an_event_sent_before_labels_were_data_still_matches_its_schema(event_type):
    body = contracts.example(event_type)
    for item in body["data"]["answers"]:
        del item["choices"], item["rows"]

    assert contracts.errors(body, contracts.schema(event_type)) == []


def test_response_of_an_anonymous_link_matches_the_schema(subscribed, survey: Survey):
    response = survey.responses.create(language="en")
    services.publish_event(
        account=survey.portal.account,
        event_type="response.completed",
        payload=services.response_payload(response),
    )
    body = published("response.completed")
    assert contracts.errors(body, contracts.schema("response.completed")) == []
    assert body["data"]["recipient_reference"] == ""
    assert body["data"]["answers"] == []


def test_invitation_opened_matches_its_schema(subscribed, survey: Survey):
    invitation = survey.invitations.create(recipient_reference="lead:9", opened_at=timezone.now())
    services.publish_event(
        account=survey.portal.account,
        event_type="invitation.opened",
        payload=services.invitation_payload(invitation),
    )
    body = published("invitation.opened")
    assert contracts.errors(body, contracts.schema("invitation.opened")) == []
