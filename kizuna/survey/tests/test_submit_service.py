"""Submitting and deleting responses: a response and its webhook deliveries are written in one
transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import IntegrityError, connection
from django.test import Client
from django.urls import reverse

from kizuna.survey.models import Answer, Invitation, Question, Response, Survey, SurveyAccount
from kizuna.survey.public import services as public_services
from kizuna.survey.results import services as results_services
from kizuna.survey.tests.respondent import add_question, post
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.survey.webhooks.services import create_endpoint


@pytest.fixture
def endpoint(account: SurveyAccount) -> WebhookEndpoint:
    endpoint, _secret = create_endpoint(
        account=account,
        url="http://127.0.0.1:8000/crm/webhooks/survey/",
        events=["response.completed", "response.deleted", "invitation.opened"],
        by=None,
    )
    return endpoint


@pytest.fixture
def question(survey: Survey) -> Question:
    return add_question(survey, "single_choice", "Favourite fruit?", is_required=True)


def test_submitting_enqueues_response_completed_with_the_answers(
    survey: Survey, question: Question, endpoint: WebhookEndpoint, anonymous_client: Client
) -> None:
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:contact:7")

    post(
        anonymous_client,
        reverse("survey_public:invitation", args=[invitation.token]),
        {f"q{question.pk}": "b"},
    )

    response = Response.objects.get()
    delivery = Delivery.objects.get(event_type="response.completed")
    assert delivery.endpoint == endpoint
    data = delivery.payload["data"]
    assert data["response_id"] == str(response.pk)
    assert data["recipient_reference"] == "crm:contact:7"
    assert [(a["value"], a["display"]) for a in data["answers"]] == [("b", "Banana")]


def test_opening_an_invitation_enqueues_invitation_opened_once(
    survey: Survey, question: Question, endpoint: WebhookEndpoint, anonymous_client: Client
) -> None:
    invitation = Invitation.objects.create(survey=survey, recipient_reference="crm:lead:1")
    url = reverse("survey_public:invitation", args=[invitation.token])

    anonymous_client.get(url)
    anonymous_client.get(url)
    Client().get(url)

    deliveries = Delivery.objects.filter(event_type="invitation.opened")
    assert deliveries.count() == 1
    assert deliveries.get().payload["data"]["recipient_reference"] == "crm:lead:1"


def test_a_failed_insert_stores_neither_the_response_nor_its_delivery(
    survey: Survey, question: Question, endpoint: WebhookEndpoint
) -> None:
    other_survey = Survey.objects.create(portal=survey.portal, title="Other")
    invitation = Invitation.objects.create(survey=survey)
    # Claim the invitation's one-to-one slot with a response of another survey: the
    # insert of the real response then breaks the unique constraint mid-transaction.
    Response.objects.create(survey=other_survey, invitation=invitation)

    with pytest.raises(public_services.AlreadyAnswered):
        public_services.submit_response(
            survey=survey, invitation=invitation, answers={question: "a"}, language="en"
        )

    assert Response.objects.filter(survey=survey).count() == 0
    assert Answer.objects.count() == 0
    assert Delivery.objects.count() == 0
    invitation.refresh_from_db()
    assert invitation.completed_at is None


def test_a_closed_survey_refuses_the_service_call_and_writes_nothing(
    survey: Survey, question: Question, endpoint: WebhookEndpoint
) -> None:
    survey.is_open = False
    survey.save(update_fields=["is_open"])

    with pytest.raises(public_services.SurveyClosed):
        public_services.submit_response(
            survey=survey, invitation=None, answers={question: "a"}, language="ja"
        )

    assert Response.objects.count() == 0
    assert Delivery.objects.count() == 0


def test_deleting_a_response_enqueues_response_deleted_and_removes_its_answers(
    survey: Survey, question: Question, endpoint: WebhookEndpoint
) -> None:
    response = public_services.submit_response(
        survey=survey, invitation=None, answers={question: "c"}, language="en"
    )
    response_id = str(response.pk)

    results_services.delete_response(response=response)

    assert Response.objects.count() == 0
    assert Answer.objects.count() == 0
    deleted = Delivery.objects.get(event_type="response.deleted")
    assert deleted.payload["data"]["response_id"] == response_id


def test_without_subscribers_submitting_enqueues_nothing(
    survey: Survey, question: Question
) -> None:
    public_services.submit_response(
        survey=survey, invitation=None, answers={question: "a"}, language=""
    )

    assert Response.objects.count() == 1
    assert Delivery.objects.count() == 0


def test_the_unique_invitation_column_is_the_backstop(survey: Survey) -> None:
    invitation = Invitation.objects.create(survey=survey)
    Response.objects.create(survey=survey, invitation=invitation)

    with pytest.raises(IntegrityError):
        Response.objects.create(survey=survey, invitation=invitation)


@pytest.fixture
def answers_refused_by_the_database(db: None) -> Iterator[None]:
    """A trigger that makes the database refuse every new answer with a constraint error: an
    integrity failure that has nothing to do with a respondent answering twice."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_refuse_answer() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';"
                " END $$"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse_answer BEFORE INSERT ON survey_answer "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_answer()"
            )
        else:
            cursor.execute(
                "CREATE TEMP TRIGGER test_refuse_answer BEFORE INSERT ON survey_answer "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
    yield
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER test_refuse_answer ON survey_answer")
            cursor.execute("DROP FUNCTION test_refuse_answer()")
        else:
            cursor.execute("DROP TRIGGER test_refuse_answer")


def test_an_integrity_failure_through_the_shared_link_is_a_server_error_not_already_answered(
    survey: Survey,
    question: Question,
    endpoint: WebhookEndpoint,
    answers_refused_by_the_database: None,
) -> None:
    client = Client(raise_request_exception=False)
    url = reverse("survey_public:survey", args=[survey.public_id])

    refused = post(client, url, {f"q{question.pk}": "a"})

    assert refused.status_code == 500
    assert "already" not in refused.content.decode().lower()
    assert Response.objects.count() == 0
    assert Delivery.objects.count() == 0


def test_an_integrity_failure_of_an_unanswered_invitation_is_not_already_answered(
    survey: Survey, question: Question, answers_refused_by_the_database: None
) -> None:
    invitation = Invitation.objects.create(survey=survey)

    with pytest.raises(IntegrityError):
        public_services.submit_response(
            survey=survey, invitation=invitation, answers={question: "a"}, language="en"
        )

    assert Response.objects.count() == 0
    invitation.refresh_from_db()
    assert invitation.completed_at is None
    client = Client()
    page = client.get(reverse("survey_public:invitation", args=[invitation.token]))
    assert page.status_code == 200
    assert "Favourite fruit?" in page.content.decode()
