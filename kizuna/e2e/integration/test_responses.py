"""Recording responses in the CRM (E4, D6), end to end: the respondent answers at the real
Survey service (its public page), the Survey's worker signs and delivers the webhook over
real HTTP to the CRM's intake URL (live_server), and the CRM records it once on the lead or
contact of its recipient reference, in that connection's organization only.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.crm.integration import services
from kizuna.crm.integration.client import Credentials
from kizuna.crm.integration.models import (
    Connection,
    IntakeEvent,
    IntakeOutcome,
    SurveyResponse,
    UnmatchedResponse,
)
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.e2e.integration.respond import (
    answer,
    answers_for,
    enable,
    invite,
    run_worker,
)
from kizuna.identity.models import User
from kizuna.survey.models import Question, Response, Survey
from kizuna.survey.results.services import delete_response
from kizuna.survey.webhooks.models import Delivery
from kizuna.survey.webhooks.services import signed_headers
from kizuna.testing.races import require_postgresql, run_together
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.usefixtures("survey_service")


def post_event(
    connection: Connection,
    event: dict[str, Any],
    *,
    message_id: str | None = None,
    timestamp: datetime.datetime | None = None,
    tamper: bool = False,
) -> httpx.Response:
    """Deliver one event to the connection's intake as the Survey service signs it."""
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    headers = signed_headers(
        secret=connection.webhook_secret(),
        message_id=message_id or f"msg_{uuid.uuid4().hex}",
        timestamp=timestamp or timezone.now(),
        body=body,
    )
    if tamper:
        body = body.replace("Good", "Bad")
    return httpx.post(connection.intake_url(), content=body.encode(), headers=headers, timeout=10)


def completed_event(
    connection: Connection,
    record: Lead | Contact,
    survey: Survey,
    *,
    reference: str | None = None,
    submitted_at: datetime.datetime | None = None,
) -> dict[str, Any]:
    submitted = (submitted_at or timezone.now()).astimezone(datetime.UTC)
    return {
        "type": "response.completed",
        "timestamp": submitted.isoformat().replace("+00:00", "Z"),
        "data": {
            "response_id": str(uuid.uuid4()),
            "account_id": survey.portal.account_id,
            "survey": {
                "id": survey.pk,
                "public_id": survey.public_id,
                "title": survey.title,
                "portal": {"id": survey.portal_id, "name": survey.portal.name},
            },
            "recipient_reference": (
                connection.recipient_reference(record) if reference is None else reference
            ),
            "language": "en",
            "started_at": None,
            "submitted_at": submitted.isoformat().replace("+00:00", "Z"),
            "answers": [
                {
                    "question": {
                        "id": 1,
                        "kind": "single_choice",
                        "text": "How was it?",
                        "position": 0,
                    },
                    "value": "good",
                    "display": "Good",
                }
            ],
        },
    }


# --- E4: recorded once on the record --------------------------------------------------------


def test_e4_a_response_through_a_personal_link_is_recorded_on_the_lead_once(
    connection: Connection, lead: Lead, ada_survey: Survey, questions: dict[str, Question]
) -> None:
    invitation = invite(connection, lead, ada_survey)

    answer(invitation, answers_for(questions))
    run_worker()

    recorded = SurveyResponse.objects.get(lead=lead)
    response = Response.objects.get(survey=ada_survey)
    assert recorded.response_id == str(response.pk)
    assert recorded.connection == connection
    assert recorded.organization_id == lead.organization_id
    assert recorded.survey_title == "Customer satisfaction"
    assert recorded.submitted_at == response.submitted_at
    assert recorded.invitation == invitation
    shown = {item["text"]: item["display"] for item in recorded.answers}
    assert shown == {
        "How was it?": "Good",
        "Recommend us?": "9",
        "Rate each": "Speed: Fine; Price: Poor",
        "Anything else?": "Very kind people.",
    }
    matrix = next(item for item in recorded.answers if item["kind"] == "matrix")
    assert matrix["rows"] == [["Speed", "Fine"], ["Price", "Poor"]]
    invitation.refresh_from_db()
    assert invitation.completed_at == response.submitted_at
    assert invitation.opened_at is not None
    assert Activity.objects.filter(lead=lead, kind=ActivityKind.SURVEY_RESPONDED).count() == 1
    assert Activity.objects.filter(lead=lead, kind=ActivityKind.SURVEY_OPENED).count() == 1
    assert set(Delivery.objects.values_list("status", flat=True)) == {WorkStatus.DONE}
    connection.refresh_from_db()
    assert connection.last_event_at is not None


def test_e1_matrix_labels_arrive_as_data_even_when_they_hold_the_separators_of_the_text(
    connection: Connection, lead: Lead, ada_survey: Survey, questions: dict[str, Question]
) -> None:
    matrix = questions["matrix"]
    matrix.options = {
        "rows": [
            {"key": "speed", "label": "Speed: first reply"},
            {"key": "price", "label": "a; b"},
        ],
        "columns": [{"key": "ok", "label": "Fine; mostly"}, {"key": "ko", "label": "Poor: 1/5"}],
    }
    matrix.save(update_fields=["options"])

    answer(invite(connection, lead, ada_survey), answers_for(questions))
    run_worker()

    published = Delivery.objects.get(event_type="response.completed").payload["data"]
    sent = next(item for item in published["answers"] if item["question"]["kind"] == "matrix")
    assert sent["rows"] == [
        {
            "key": "speed",
            "label": "Speed: first reply",
            "column": {"key": "ok", "label": "Fine; mostly"},
        },
        {"key": "price", "label": "a; b", "column": {"key": "ko", "label": "Poor: 1/5"}},
    ]
    choice = next(
        item for item in published["answers"] if item["question"]["kind"] == "single_choice"
    )
    assert (choice["choices"], choice["rows"]) == ([{"key": "good", "label": "Good"}], None)
    recorded = SurveyResponse.objects.get(lead=lead)
    kept = next(item for item in recorded.answers if item["kind"] == "matrix")
    assert kept["rows"] == [["Speed: first reply", "Fine; mostly"], ["a; b", "Poor: 1/5"]]


def test_e1_a_matrix_answer_of_an_event_sent_before_labels_were_data_is_read_from_its_text(
    connection: Connection, lead: Lead, ada_survey: Survey
) -> None:
    event = completed_event(connection, lead, ada_survey)
    event["data"]["answers"] = [
        {
            "question": {"id": 7, "kind": "matrix", "text": "Rate each", "position": 0},
            "value": {"speed": "ok", "price": "ko"},
            "display": "Speed: Fine; Price: Poor",
        }
    ]

    assert post_event(connection, event).status_code == 200

    [kept] = SurveyResponse.objects.get(lead=lead).answers
    assert kept["rows"] == [["Speed", "Fine"], ["Price", "Poor"]]


def test_e4_a_matrix_answer_whose_rows_are_not_labels_is_refused_and_not_recorded(
    connection: Connection, lead: Lead, ada_survey: Survey
) -> None:
    event = completed_event(connection, lead, ada_survey)
    event["data"]["answers"] = [
        {
            "question": {"id": 7, "kind": "matrix", "text": "Rate each", "position": 0},
            "value": {"speed": "ok"},
            "display": "Speed: Fine",
            "choices": None,
            "rows": [{"key": "speed"}],
        }
    ]

    refused = post_event(connection, event)

    assert refused.status_code == 400
    assert not SurveyResponse.objects.exists()


def test_e4_a_replayed_delivery_is_acknowledged_and_recorded_once(
    connection: Connection, lead: Lead, ada_survey: Survey, questions: dict[str, Question]
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    run_worker()
    delivery = Delivery.objects.get(event_type="response.completed")
    # The same webhook-id again (a Survey "replay"), then a new id for the same response.
    Delivery.objects.filter(pk=delivery.pk).update(
        status=WorkStatus.PENDING, next_attempt_at=timezone.now()
    )
    run_worker()
    again = post_event(
        connection,
        {
            "type": "response.completed",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": dict(delivery.payload["data"]),
        },
    )

    assert again.status_code == 200
    assert again.json() == {"outcome": "duplicate"}
    assert SurveyResponse.objects.count() == 1
    assert Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED).count() == 1
    delivery.refresh_from_db()
    assert delivery.status == WorkStatus.DONE
    events = IntakeEvent.objects.filter(event_id=delivery.message_id)
    assert [event.outcome for event in events] == [IntakeOutcome.RECORDED]


def test_e4_a_replayed_webhook_id_is_acknowledged_and_ignored(
    connection: Connection, lead: Lead, ada_survey: Survey
) -> None:
    event = completed_event(connection, lead, ada_survey)
    first = post_event(connection, event, message_id="msg_same")
    second = post_event(connection, event, message_id="msg_same")

    assert (first.status_code, first.json()) == (200, {"outcome": "recorded"})
    assert (second.status_code, second.json()) == (200, {"outcome": "duplicate"})
    assert SurveyResponse.objects.filter(lead=lead).count() == 1
    assert IntakeEvent.objects.filter(event_id="msg_same").count() == 1


def test_e4_one_response_delivered_twice_at_once_under_two_webhook_ids_is_recorded_once(
    connection: Connection, lead: Lead, ada_survey: Survey
) -> None:
    require_postgresql("needs two writers at once")
    event = completed_event(connection, lead, ada_survey)
    answers: list[httpx.Response] = []

    errors = run_together(
        lambda: answers.append(post_event(connection, event, message_id="msg_first")),
        lambda: answers.append(post_event(connection, event, message_id="msg_second")),
    )

    assert errors == []
    assert sorted((a.status_code, a.json()["outcome"]) for a in answers) == [
        (200, "duplicate"),
        (200, "recorded"),
    ]
    assert SurveyResponse.objects.filter(lead=lead).count() == 1
    assert Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED, lead=lead).count() == 1


def test_e4_a_tampered_webhook_is_refused_401_recorded_for_the_admin_and_not_recorded(
    connection: Connection, lead: Lead, ada_survey: Survey
) -> None:
    answer_ = post_event(connection, completed_event(connection, lead, ada_survey), tamper=True)

    assert answer_.status_code == 401
    assert not SurveyResponse.objects.exists()
    event = IntakeEvent.objects.get()
    assert event.outcome == IntakeOutcome.BAD_SIGNATURE
    assert event.connection == connection


def test_e4_a_webhook_signed_with_another_secret_is_refused_401(
    connection: Connection, lead: Lead, ada_survey: Survey
) -> None:
    body = json.dumps(completed_event(connection, lead, ada_survey))
    headers = signed_headers(
        secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
        message_id="msg_forged",
        timestamp=timezone.now(),
        body=body,
    )
    refused = httpx.post(connection.intake_url(), content=body.encode(), headers=headers)
    unsigned = httpx.post(connection.intake_url(), content=body.encode())

    assert (refused.status_code, unsigned.status_code) == (401, 401)
    assert not SurveyResponse.objects.exists()
    assert list(IntakeEvent.objects.values_list("outcome", flat=True)) == [
        IntakeOutcome.BAD_SIGNATURE,
        IntakeOutcome.BAD_SIGNATURE,
    ]


def test_e4_a_stale_timestamp_is_refused_400_and_the_genuine_event_still_counts(
    connection: Connection, lead: Lead, ada_survey: Survey
) -> None:
    event = completed_event(connection, lead, ada_survey)
    stale = post_event(
        connection,
        event,
        message_id="msg_late",
        timestamp=timezone.now() - datetime.timedelta(minutes=6),
    )
    genuine = post_event(connection, event, message_id="msg_late")

    assert stale.status_code == 400
    assert genuine.status_code == 200
    assert list(
        IntakeEvent.objects.filter(event_id="msg_late")
        .order_by("pk")
        .values_list("outcome", flat=True)
    ) == [IntakeOutcome.STALE_TIMESTAMP, IntakeOutcome.RECORDED]
    assert SurveyResponse.objects.filter(lead=lead).count() == 1


def test_e4_an_unknown_intake_address_answers_404_never_410(connection: Connection) -> None:
    answer_ = httpx.post(
        connection.intake_url().replace(connection.intake_token, "nope"), content=b"{}"
    )

    assert answer_.status_code == 404


def test_e4_a_recipient_reference_of_another_organization_is_not_recorded(
    connection: Connection,
    lead: Lead,
    ada_survey: Survey,
    other_organization: Organization,
    charlie: User,
    ada_credentials: Credentials,
    questions: dict[str, Question],
) -> None:
    # Charlie's organization is connected to the same Survey account: every event of the
    # account reaches both intakes, and each records only its own organization's.
    theirs = enable(other_organization, charlie, ada_credentials)
    charlie_lead = Lead.objects.create(organization=other_organization, family_name="Kato")
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    run_worker()
    # A reference naming Charlie's connection and a record id of Ada's organization.
    forged = post_event(
        connection,
        completed_event(
            connection, lead, ada_survey, reference=f"crm:{theirs.reference_key}:lead:{lead.pk}"
        ),
    )
    # A reference naming Ada's connection and Charlie's lead.
    crossed = post_event(
        connection,
        completed_event(
            connection,
            lead,
            ada_survey,
            reference=f"crm:{connection.reference_key}:lead:{charlie_lead.pk}",
        ),
    )

    assert forged.json() == {"outcome": "other_connection"}
    assert crossed.json() == {"outcome": "unmatched"}
    assert list(SurveyResponse.objects.values_list("organization_id", "lead_id")) == [
        (lead.organization_id, lead.pk)
    ]
    assert not SurveyResponse.objects.filter(organization=other_organization).exists()
    assert not UnmatchedResponse.objects.filter(organization=other_organization).exists()
    assert IntakeEvent.objects.filter(
        connection=theirs, outcome=IntakeOutcome.OTHER_CONNECTION
    ).exists()
    assert not Activity.objects.filter(organization=other_organization).exists()


def test_e4_a_response_through_the_public_link_is_not_recorded(
    connection: Connection,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
    settings: Any,
) -> None:
    settings.KIZUNA_SURVEY_MIN_SECONDS = 0  # the scripted respondent answers at once
    respondent = Client()
    url = reverse("survey_public:survey", args=[ada_survey.public_id])
    assert respondent.get(url).status_code == 200
    respondent.post(url, {"page": "1", "action": "submit", **answers_for(questions)})
    run_worker()

    assert Response.objects.filter(survey=ada_survey).count() == 1
    assert not SurveyResponse.objects.exists()
    assert IntakeEvent.objects.get().outcome == IntakeOutcome.NO_REFERENCE
    assert Delivery.objects.get().status == WorkStatus.DONE


def test_e4_opened_arriving_after_completed_never_undoes_completed(
    connection: Connection, lead: Lead, ada_survey: Survey, questions: dict[str, Question]
) -> None:
    invitation = invite(connection, lead, ada_survey)
    answer(invitation, answers_for(questions))
    completed = Delivery.objects.get(event_type="response.completed")
    opened = Delivery.objects.get(event_type="invitation.opened")
    # The opening is delivered last.
    Delivery.objects.filter(pk=opened.pk).update(
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1)
    )
    run_worker()
    invitation.refresh_from_db()
    assert invitation.completed_at is not None
    assert invitation.opened_at is None
    Delivery.objects.filter(pk=opened.pk).update(next_attempt_at=timezone.now())
    run_worker()

    invitation.refresh_from_db()
    completed.refresh_from_db()
    assert completed.status == WorkStatus.DONE
    assert invitation.completed_at is not None
    assert invitation.opened_at is not None
    assert SurveyResponse.objects.filter(lead=lead).count() == 1


def test_e4_a_deleted_response_loses_its_answers_and_leaves_a_timeline_entry(
    connection: Connection, lead: Lead, ada_survey: Survey, questions: dict[str, Question]
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    run_worker()
    delete_response(response=Response.objects.get(survey=ada_survey))
    run_worker()

    recorded = SurveyResponse.objects.get(lead=lead)
    assert recorded.answers == []
    assert recorded.deleted_at is not None
    deleted = Activity.objects.get(lead=lead, kind=ActivityKind.SURVEY_RESPONSE_DELETED)
    assert deleted.summary == "Customer satisfaction"
    # A late redelivery of the completed event does not bring the answers back.
    completed = Delivery.objects.get(event_type="response.completed")
    post_event(connection, dict(completed.payload))
    recorded.refresh_from_db()
    assert recorded.answers == []


def test_e4_a_deletion_arriving_before_its_response_keeps_it_out(
    connection: Connection, lead: Lead, ada_survey: Survey
) -> None:
    event = completed_event(connection, lead, ada_survey)
    post_event(connection, {**event, "type": "response.deleted"})
    post_event(connection, event)

    recorded = SurveyResponse.objects.get(lead=lead)
    assert recorded.answers == []
    assert recorded.deleted_at is not None
    assert not Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED).exists()


def test_e4_a_response_for_a_deleted_lead_goes_to_the_unmatched_list(
    connection: Connection,
    lead: Lead,
    ada: User,
    ada_client: Client,
    bob_client: Client,
    charlie_client: Client,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    invitation = invite(connection, lead, ada_survey)
    lead.delete()
    answer(invitation, answers_for(questions))
    run_worker()

    unmatched = UnmatchedResponse.objects.get()
    assert unmatched.organization == organization
    assert unmatched.recipient_reference == invitation.recipient_reference
    assert unmatched.answers[0]["display"] == "Good"
    assert not SurveyResponse.objects.exists()
    page = ada_client.get(reverse("crm_survey_responses:delivery"))
    assert page.status_code == 200
    assert "Unmatched responses" in page.content.decode()
    assert "Very kind people." in page.content.decode()
    japanese = ada_client.get(reverse("crm_survey_responses:delivery"), HTTP_ACCEPT_LANGUAGE="ja")
    assert "未照合の回答" in japanese.content.decode()
    assert bob_client.get(reverse("crm_survey_responses:delivery")).status_code == 403
    theirs = charlie_client.get(reverse("crm_survey_responses:delivery"))
    assert "Very kind people." not in theirs.content.decode()
    dismissed = charlie_client.post(
        reverse("crm_survey_responses:dismiss-unmatched", args=[unmatched.pk])
    )
    assert dismissed.status_code == 404
    ada_client.post(reverse("crm_survey_responses:dismiss-unmatched", args=[unmatched.pk]))
    unmatched.refresh_from_db()
    assert unmatched.dismissed_by == ada


# --- D6: the cut-off is the submission time -------------------------------------------------


def test_d6_response_submitted_before_disable_and_delivered_after_is_recorded(
    connection: Connection,
    lead: Lead,
    ada: User,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    answer(invite(connection, lead, ada_survey), answers_for(questions))
    # Not delivered yet (the CRM was down, say) when an administrator disables.
    services.disable(organization=organization, by=ada)
    run_worker()

    recorded = SurveyResponse.objects.get(lead=lead)
    connection.refresh_from_db()
    assert connection.disabled_at is not None
    assert recorded.submitted_at < connection.disabled_at
    assert Delivery.objects.get(event_type="response.completed").status == WorkStatus.DONE


def test_d6_response_submitted_after_disable_is_acknowledged_and_never_recorded(
    connection: Connection,
    lead: Lead,
    ada: User,
    organization: Organization,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    invitation = invite(connection, lead, ada_survey)
    services.disable(organization=organization, by=ada)
    answer(invitation, answers_for(questions))
    run_worker()

    assert Response.objects.filter(survey=ada_survey).count() == 1  # kept by the Survey (D5)
    assert not SurveyResponse.objects.exists()
    assert not Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED).exists()
    delivery = Delivery.objects.get(event_type="response.completed")
    assert delivery.status == WorkStatus.DONE  # 2xx, not 410: the endpoint stays enabled
    assert delivery.endpoint.is_enabled
    assert IntakeEvent.objects.filter(outcome=IntakeOutcome.AFTER_CUT_OFF).count() == 2


def test_e4_responses_keep_being_recorded_while_the_key_is_revoked(
    connection: Connection,
    lead: Lead,
    ada_survey: Survey,
    questions: dict[str, Question],
) -> None:
    from kizuna.survey.keys.services import regenerate_key
    from kizuna.survey.models import AccountMember

    member = AccountMember.objects.get(
        account_id=connection.survey_account_id, user__email="ada@example.com"
    )
    invitation = invite(connection, lead, ada_survey)
    regenerate_key(member=member, by=member.user)
    answer(invitation, answers_for(questions))
    run_worker()

    assert SurveyResponse.objects.filter(lead=lead).count() == 1
