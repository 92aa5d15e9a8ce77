"""The Survey core's writes enqueue their webhook deliveries in the same transaction (§3)."""

from __future__ import annotations

import pytest
from django.db import transaction

from kizuna import contracts
from kizuna.survey.models import Invitation, Response, Survey
from kizuna.survey.public import services as public_services
from kizuna.survey.results import services as results_services
from kizuna.survey.webhooks.models import Delivery

pytestmark = pytest.mark.django_db


def answers_for(survey: Survey) -> dict:
    values = {"single_choice": "bad", "long_text": "Slow", "nps": 3}
    return {question: values[question.kind] for question in survey.questions.all()}


def test_submitting_a_response_enqueues_response_completed_with_it(subscribed, survey):
    invitation = Invitation.objects.create(survey=survey, recipient_reference="lead:5")

    response = public_services.submit_response(
        survey=survey, invitation=invitation, answers=answers_for(survey), language="ja"
    )

    delivery = Delivery.objects.get(event_type="response.completed")
    assert delivery.endpoint == subscribed
    assert delivery.payload["data"]["response_id"] == str(response.pk)
    assert delivery.payload["data"]["recipient_reference"] == "lead:5"
    assert [a["display"] for a in delivery.payload["data"]["answers"]] == ["Bad", "Slow", "3"]
    assert contracts.errors(delivery.payload, contracts.schema("response.completed")) == []


def test_a_response_rolled_back_leaves_no_delivery_behind(subscribed, survey):
    with pytest.raises(RuntimeError), transaction.atomic():
        public_services.submit_response(
            survey=survey, invitation=None, answers=answers_for(survey), language="en"
        )
        raise RuntimeError("the request failed after the insert")

    assert Response.objects.count() == 0
    assert Delivery.objects.count() == 0


def test_opening_an_invitation_once_enqueues_one_invitation_opened(subscribed, survey):
    invitation = Invitation.objects.create(survey=survey, recipient_reference="contact:8")

    assert public_services.record_invitation_opened(invitation=invitation) is True
    assert public_services.record_invitation_opened(invitation=invitation) is False

    delivery = Delivery.objects.get(event_type="invitation.opened")
    assert delivery.payload["data"]["recipient_reference"] == "contact:8"
    assert contracts.errors(delivery.payload, contracts.schema("invitation.opened")) == []


def test_deleting_a_response_enqueues_response_deleted_with_its_answers(subscribed, survey):
    response = public_services.submit_response(
        survey=survey, invitation=None, answers=answers_for(survey), language="en"
    )

    response_id = str(response.pk)

    results_services.delete_response(response=response)

    delivery = Delivery.objects.get(event_type="response.deleted")
    assert delivery.payload["data"]["response_id"] == response_id
    assert len(delivery.payload["data"]["answers"]) == 3
    assert contracts.errors(delivery.payload, contracts.schema("response.deleted")) == []
