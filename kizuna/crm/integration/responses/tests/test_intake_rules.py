"""What an organization relies on at its intake address (E4, D6), in the CRM alone.

Signed deliveries of the contract's example events are posted to the intake view the way
the Survey service posts them; two organizations, each with its connection, and several
leads are in the database, so that a rule reaching more than its own rows shows. The
end-to-end tests with both services are in kizuna/e2e/integration/.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import pytest
from django.db import connection as database
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.crm.integration.models import (
    Connection,
    ConnectionState,
    IntakeEvent,
    IntakeOutcome,
    SurveyInvitation,
    SurveyResponse,
    UnmatchedResponse,
)
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.testing.intake import SUBMITTED, completed, new_connection, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def leads(organization: Organization, other_organization: Organization) -> dict[str, Lead]:
    made = {}
    for name, owner in (
        ("hana", organization),
        ("ken", organization),
        ("sato", other_organization),
    ):
        made[name] = Lead.objects.create(
            organization=owner, family_name=name.title(), email=f"{name}@example.com"
        )
    return made


def invitation(connection: Connection, lead: Lead, *, survey_id: int = 12) -> SurveyInvitation:
    return SurveyInvitation.objects.create(
        connection=connection,
        organization_id=connection.organization_id,
        lead=lead,
        survey_id=survey_id,
        survey_title=f"Survey {survey_id}",
        recipient_reference=connection.recipient_reference(lead),
        email=lead.email,
        sent_at=SUBMITTED - datetime.timedelta(days=1),
    )


def events(connection: Connection) -> list[tuple[str, str, str]]:
    return list(
        IntakeEvent.objects.filter(connection=connection)
        .order_by("pk")
        .values_list("event_type", "outcome", "detail")
    )


def recorded() -> list[tuple[int | None, int | None, int]]:
    """(lead, contact, organization) of every recorded response."""
    return list(
        SurveyResponse.objects.order_by("pk").values_list(
            "lead_id", "contact_id", "organization_id"
        )
    )


# --- recorded once, on its own record -------------------------------------------------------


def test_a_response_is_recorded_on_its_own_lead_with_every_answer_in_question_order(
    connection: Connection, other_connection: Connection, leads: dict[str, Lead]
):
    hana = leads["hana"]
    event = completed(connection, hana, response_id="r-1")
    answers = event["data"]["answers"]
    event["data"]["answers"] = [answers[4], answers[2], answers[0], answers[3], answers[1]]

    assert post(connection, event, message_id="msg_1") == (200, {"outcome": "recorded"})

    response = SurveyResponse.objects.get()
    assert (response.connection, response.organization_id, response.lead, response.contact) == (
        connection,
        connection.organization_id,
        hana,
        None,
    )
    assert (response.response_id, response.recipient_reference, response.invitation) == (
        "r-1",
        connection.recipient_reference(hana),
        None,
    )
    assert (response.survey_id, response.survey_title, response.portal_name) == (
        12,
        "ご利用満足度アンケート",
        "お客様",
    )
    assert (response.language, response.started_at, response.submitted_at) == (
        "ja",
        datetime.datetime(2026, 11, 30, 1, 58, 12, tzinfo=datetime.UTC),
        SUBMITTED,
    )
    assert [(a["position"], a["question_id"], a["kind"]) for a in response.answers] == [
        (0, 101, "single_choice"),
        (1, 102, "multiple_choice"),
        (2, 103, "nps"),
        (3, 104, "matrix"),
        (4, 105, "long_text"),
    ]
    assert response.answers[0] == {
        "question_id": 101,
        "kind": "single_choice",
        "text": "全体の満足度は？",
        "position": 0,
        "value": "satisfied",
        "display": "満足",
    }
    assert response.answers[3]["rows"] == [["価格", "良い"], ["品質", "とても良い"]]
    timeline = Activity.objects.get()
    assert (timeline.lead, timeline.contact, timeline.organization_id, timeline.kind) == (
        hana,
        None,
        connection.organization_id,
        ActivityKind.SURVEY_RESPONDED,
    )
    assert (timeline.summary, timeline.created_at, timeline.data) == (
        "ご利用満足度アンケート",
        SUBMITTED,
        {"response_id": "r-1", "survey_id": 12},
    )
    event_row = IntakeEvent.objects.get()
    assert (event_row.connection, event_row.organization_id, event_row.event_id) == (
        connection,
        connection.organization_id,
        "msg_1",
    )
    assert (event_row.event_type, event_row.outcome, event_row.detail) == (
        "response.completed",
        IntakeOutcome.RECORDED,
        "",
    )
    assert events(other_connection) == []


def test_a_response_without_a_start_time_or_language_is_recorded_without_them(
    connection: Connection, leads: dict[str, Lead]
):
    event = completed(connection, leads["hana"])
    event["data"]["started_at"] = None
    del event["data"]["language"]

    assert post(connection, event) == (200, {"outcome": "recorded"})

    assert SurveyResponse.objects.values_list("started_at", "language").get() == (None, "")


def test_a_survey_without_a_title_or_portal_name_is_recorded_with_them_empty(
    connection: Connection, leads: dict[str, Lead]
):
    event = completed(connection, leads["hana"])
    del event["data"]["survey"]["title"]
    del event["data"]["survey"]["portal"]["name"]

    assert post(connection, event) == (200, {"outcome": "recorded"})

    assert SurveyResponse.objects.values_list("survey_title", "portal_name").get() == ("", "")
    assert Activity.objects.get().summary == ""


def test_an_answer_without_its_question_text_position_or_display_is_recorded_at_position_0(
    connection: Connection, leads: dict[str, Lead]
):
    event = completed(connection, leads["hana"])
    answer = event["data"]["answers"][2]
    del answer["question"]["text"], answer["question"]["position"], answer["display"]

    assert post(connection, event) == (200, {"outcome": "recorded"})

    answers = SurveyResponse.objects.get().answers
    assert [(a["question_id"], a["position"]) for a in answers] == [
        (101, 0),
        (103, 0),
        (102, 1),
        (104, 3),
        (105, 4),
    ]
    assert (answers[1]["text"], answers[1]["display"]) == ("", "")


def test_a_too_long_title_portal_name_and_language_are_stored_cut_to_their_columns(
    connection: Connection, leads: dict[str, Lead]
):
    """On both databases: PostgreSQL refuses a longer value, SQLite would keep it."""
    event = completed(connection, leads["hana"])
    event["data"]["survey"]["title"] = "題" * 600
    event["data"]["survey"]["portal"]["name"] = "窓" * 300
    event["data"]["language"] = "ja-JP-x-" + "k" * 30

    assert post(connection, event) == (200, {"outcome": "recorded"})

    response = SurveyResponse.objects.get()
    assert (response.survey_title, response.portal_name, response.language) == (
        "題" * 300,
        "窓" * 200,
        "ja-JP-x-kkkkkkkk",
    )
    assert Activity.objects.get().summary == "題" * 300


def test_a_too_long_response_id_is_stored_and_on_the_timeline_cut_to_its_column(
    connection: Connection, leads: dict[str, Lead]
):
    response_id = "r" * 100
    event = completed(connection, leads["hana"], response_id=response_id)

    assert post(connection, event) == (200, {"outcome": "recorded"})

    assert SurveyResponse.objects.get().response_id == "r" * 64
    assert Activity.objects.get().data["response_id"] == "r" * 64


def test_a_converted_leads_response_belongs_to_its_contact_too(
    connection: Connection, organization: Organization, leads: dict[str, Lead]
):
    contact = Contact.objects.create(organization=organization, family_name="Hana")
    Lead.objects.filter(pk=leads["hana"].pk).update(converted_contact=contact)

    assert post(connection, completed(connection, leads["hana"])) == (200, {"outcome": "recorded"})

    assert recorded() == [(leads["hana"].pk, contact.pk, organization.pk)]
    assert list(Activity.objects.values_list("lead_id", "contact_id")) == [
        (leads["hana"].pk, contact.pk)
    ]


def test_a_contacts_response_is_recorded_on_that_contact(
    connection: Connection, organization: Organization, leads: dict[str, Lead]
):
    contact = Contact.objects.create(organization=organization, family_name="Mori")

    assert post(connection, completed(connection, contact)) == (200, {"outcome": "recorded"})

    assert recorded() == [(None, contact.pk, organization.pk)]


def test_the_same_response_delivered_twice_is_recorded_once(
    connection: Connection, leads: dict[str, Lead]
):
    event = completed(connection, leads["hana"], response_id="r-1")
    post(connection, completed(connection, leads["ken"], response_id="r-2"))

    assert post(connection, event) == (200, {"outcome": "recorded"})
    assert post(connection, event) == (200, {"outcome": "duplicate"})

    assert SurveyResponse.objects.filter(response_id="r-1").count() == 1
    assert Activity.objects.filter(lead=leads["hana"]).count() == 1
    assert events(connection)[-1] == ("response.completed", IntakeOutcome.DUPLICATE, "r-1")


def test_a_late_delivery_of_a_recorded_response_is_acknowledged_with_one_lookup_and_one_insert(
    connection: Connection, leads: dict[str, Lead]
):
    """A backlog's deliveries come after its pull recorded their responses: each is stored as
    a duplicate event without the work of recording (the event is hours old here)."""
    event = completed(connection, leads["hana"], response_id="r-1")
    assert post(connection, event, message_id="msg_1") == (200, {"outcome": "recorded"})
    # last_event_at needs no refresh during these deliveries
    Connection.objects.filter(pk=connection.pk).update(
        last_event_at=timezone.now() + datetime.timedelta(hours=1)
    )

    statements: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)  # the test client empties connection.queries per request
        return execute(sql, params, many, context)

    with database.execute_wrapper(count):
        assert post(connection, event, message_id="msg_2") == (200, {"outcome": "duplicate"})
    assert post(connection, event, message_id="msg_2") == (200, {"outcome": "duplicate"})

    # The connection by its token, "recorded already?", the event.
    assert len(statements) == 3, statements
    assert SurveyResponse.objects.count() == 1
    assert Activity.objects.filter(lead=leads["hana"]).count() == 1
    assert events(connection) == [
        ("response.completed", IntakeOutcome.RECORDED, ""),
        ("response.completed", IntakeOutcome.DUPLICATE, "r-1"),
    ]
    assert list(
        IntakeEvent.objects.filter(connection=connection)
        .order_by("pk")
        .values_list("event_id", flat=True)
    ) == ["msg_1", "msg_2"]


def test_a_repeated_webhook_id_is_acknowledged_and_not_recorded_again(
    connection: Connection, leads: dict[str, Lead]
):
    first = completed(connection, leads["hana"])
    second = completed(connection, leads["ken"])

    assert post(connection, first, message_id="msg_1") == (200, {"outcome": "recorded"})
    assert post(connection, second, message_id="msg_1") == (200, {"outcome": "duplicate"})

    assert recorded() == [(leads["hana"].pk, None, connection.organization_id)]
    assert len(events(connection)) == 1


def test_the_same_webhook_id_at_two_organizations_is_recorded_at_both(
    connection: Connection, other_connection: Connection, leads: dict[str, Lead]
):
    assert post(connection, completed(connection, leads["hana"]), message_id="msg_1") == (
        200,
        {"outcome": "recorded"},
    )
    assert post(
        other_connection, completed(other_connection, leads["sato"]), message_id="msg_1"
    ) == (200, {"outcome": "recorded"})

    assert sorted(recorded()) == sorted(
        [
            (leads["hana"].pk, None, connection.organization_id),
            (leads["sato"].pk, None, other_connection.organization_id),
        ]
    )


def test_a_response_completes_the_latest_invitation_of_its_survey_only(
    connection: Connection, leads: dict[str, Lead]
):
    hana, ken = leads["hana"], leads["ken"]
    other_survey = invitation(connection, hana, survey_id=13)
    this_survey = invitation(connection, hana)
    kens = invitation(connection, ken)

    assert post(connection, completed(connection, hana)) == (200, {"outcome": "recorded"})

    assert SurveyResponse.objects.get().invitation == this_survey
    completed_at = dict(SurveyInvitation.objects.values_list("pk", "completed_at"))
    assert completed_at == {other_survey.pk: None, this_survey.pk: SUBMITTED, kens.pk: None}


def test_a_later_response_to_a_completed_invitation_keeps_its_first_completion(
    connection: Connection, leads: dict[str, Lead]
):
    hana = leads["hana"]
    invited = invitation(connection, hana)
    later = SUBMITTED + datetime.timedelta(hours=1)

    post(connection, completed(connection, hana))
    assert post(connection, completed(connection, hana, submitted_at=later)) == (
        200,
        {"outcome": "recorded"},
    )

    invited.refresh_from_db()
    assert invited.completed_at == SUBMITTED
    assert SurveyResponse.objects.filter(invitation=invited).count() == 2


# --- whose response it is -------------------------------------------------------------------


def test_a_response_through_the_public_link_is_acknowledged_and_not_recorded(
    connection: Connection, leads: dict[str, Lead]
):
    assert post(connection, completed(connection, None)) == (200, {"outcome": "no_reference"})

    assert recorded() == []
    assert Activity.objects.count() == 0
    assert events(connection) == [("response.completed", IntakeOutcome.NO_REFERENCE, "")]


@pytest.mark.parametrize(
    "reference",
    [
        "crm:{key}:lead",
        "crm:{key}:lead:{pk}:1",
        "survey:{key}:lead:{pk}",
        "crm::lead:{pk}",
        "crm:{key}:deal:{pk}",
        "crm:{key}:lead:x{pk}",
        "crm:{key}:lead:-{pk}",
        "crm:{key}:lead:1234567890123456789",
    ],
)
def test_a_reference_the_crm_did_not_make_is_treated_as_no_reference(
    connection: Connection, leads: dict[str, Lead], reference: str
):
    made = reference.format(key=connection.reference_key, pk=leads["hana"].pk)

    assert post(connection, completed(connection, None, reference=made)) == (
        200,
        {"outcome": "no_reference"},
    )

    assert recorded() == []
    assert UnmatchedResponse.objects.count() == 0


def test_a_response_to_another_organizations_link_is_not_recorded_at_either(
    connection: Connection, other_connection: Connection, leads: dict[str, Lead]
):
    reference = other_connection.recipient_reference(leads["sato"])

    assert post(connection, completed(connection, None, reference=reference)) == (
        200,
        {"outcome": "other_connection"},
    )

    assert recorded() == []
    assert UnmatchedResponse.objects.count() == 0
    assert events(connection) == [("response.completed", IntakeOutcome.OTHER_CONNECTION, reference)]


def test_a_reference_naming_another_organizations_lead_is_kept_as_unmatched(
    connection: Connection, leads: dict[str, Lead]
):
    """The reference key is this organization's but the id is of a lead it does not have."""
    reference = f"crm:{connection.reference_key}:lead:{leads['sato'].pk}"

    assert post(connection, completed(connection, None, reference=reference)) == (
        200,
        {"outcome": "unmatched"},
    )

    assert recorded() == []
    assert Activity.objects.count() == 0
    assert UnmatchedResponse.objects.get().organization_id == connection.organization_id


def test_a_response_to_a_link_of_an_earlier_connection_of_the_organization_is_recorded(
    organization: Organization, connection: Connection, leads: dict[str, Lead]
):
    """Invitations sent before the integration was disabled and enabled again still count."""
    Connection.objects.filter(pk=connection.pk).update(
        state=ConnectionState.DISABLED, disabled_at=SUBMITTED + datetime.timedelta(days=1)
    )
    connection.refresh_from_db()
    current = new_connection(organization)

    assert post(current, completed(connection, leads["hana"])) == (200, {"outcome": "recorded"})

    assert list(SurveyResponse.objects.values_list("connection_id", "lead_id")) == [
        (current.pk, leads["hana"].pk)
    ]


def test_a_response_for_a_deleted_lead_is_kept_for_the_administrators_once(
    connection: Connection, leads: dict[str, Lead]
):
    hana = leads["hana"]
    event = completed(connection, hana, response_id="r-1")
    reference = connection.recipient_reference(hana)
    hana.delete()

    assert post(connection, event) == (200, {"outcome": "unmatched"})
    assert post(connection, event) == (200, {"outcome": "duplicate"})

    unmatched = UnmatchedResponse.objects.get()
    assert (unmatched.connection, unmatched.organization_id, unmatched.response_id) == (
        connection,
        connection.organization_id,
        "r-1",
    )
    assert (unmatched.recipient_reference, unmatched.survey_id, unmatched.survey_title) == (
        reference,
        12,
        "ご利用満足度アンケート",
    )
    assert (unmatched.submitted_at, len(unmatched.answers)) == (SUBMITTED, 5)
    assert recorded() == []
    assert events(connection) == [
        ("response.completed", IntakeOutcome.UNMATCHED, reference),
        ("response.completed", IntakeOutcome.DUPLICATE, "r-1"),
    ]


# --- D6: the cut-off ------------------------------------------------------------------------


def disabled_at(connection: Connection, cut_off: datetime.datetime) -> Connection:
    Connection.objects.filter(pk=connection.pk).update(
        state=ConnectionState.DISABLED, disabled_at=cut_off
    )
    connection.refresh_from_db()
    return connection


def test_d6_a_response_submitted_before_disable_is_recorded_when_it_arrives_after(
    connection: Connection, leads: dict[str, Lead]
):
    disabled_at(connection, SUBMITTED + datetime.timedelta(seconds=1))

    assert post(connection, completed(connection, leads["hana"])) == (200, {"outcome": "recorded"})

    assert recorded() == [(leads["hana"].pk, None, connection.organization_id)]


@pytest.mark.parametrize("after", [datetime.timedelta(0), datetime.timedelta(seconds=1)])
def test_d6_a_response_submitted_at_or_after_disable_is_acknowledged_and_never_recorded(
    connection: Connection, leads: dict[str, Lead], after: datetime.timedelta
):
    disabled_at(connection, SUBMITTED - after)
    invited = invitation(connection, leads["hana"])

    assert post(connection, completed(connection, leads["hana"])) == (
        200,
        {"outcome": "after_cut_off"},
    )

    assert recorded() == []
    assert Activity.objects.count() == 0
    invited.refresh_from_db()
    assert invited.completed_at is None
    assert events(connection) == [
        ("response.completed", IntakeOutcome.AFTER_CUT_OFF, "2026-11-30T02:03:45+00:00")
    ]


def test_d6_an_invitation_opened_after_disable_is_not_marked_opened(
    connection: Connection, leads: dict[str, Lead]
):
    disabled_at(connection, SUBMITTED)
    invited = invitation(connection, leads["hana"])

    event = completed(connection, leads["hana"], event_type="invitation.opened")
    assert post(connection, event) == (200, {"outcome": "after_cut_off"})

    invited.refresh_from_db()
    assert invited.opened_at is None
    assert Activity.objects.count() == 0


def test_d6_a_deletion_of_a_response_submitted_after_disable_leaves_no_row(
    connection: Connection, leads: dict[str, Lead]
):
    disabled_at(connection, SUBMITTED)

    event = completed(connection, leads["hana"], event_type="response.deleted")
    assert post(connection, event) == (200, {"outcome": "after_cut_off"})

    assert recorded() == []


# --- refused deliveries ---------------------------------------------------------------------


def test_a_delivery_signed_with_another_secret_is_refused_401_and_kept_for_the_admin(
    connection: Connection, other_connection: Connection, leads: dict[str, Lead]
):
    event = completed(connection, leads["hana"])

    status, body = post(
        connection, event, message_id="msg_1", secret=other_connection.webhook_secret()
    )

    assert (status, body) == (401, {"outcome": "bad_signature"})
    assert recorded() == []
    refused = IntakeEvent.objects.get()
    assert (refused.connection, refused.organization_id, refused.event_id) == (
        connection,
        connection.organization_id,
        "msg_1",
    )
    assert (refused.outcome, refused.detail) == (
        IntakeOutcome.BAD_SIGNATURE,
        "No matching signature found",
    )


def test_a_refused_delivery_does_not_stop_the_genuine_one_with_the_same_webhook_id(
    connection: Connection, other_connection: Connection, leads: dict[str, Lead]
):
    event = completed(connection, leads["hana"])
    post(connection, event, message_id="msg_1", secret=other_connection.webhook_secret())

    assert post(connection, event, message_id="msg_1") == (200, {"outcome": "recorded"})

    assert recorded() == [(leads["hana"].pk, None, connection.organization_id)]


def test_a_malformed_signature_header_is_refused_401(connection: Connection, leads):
    event = completed(connection, leads["hana"])

    assert post(connection, event, signature="v1,not base64!") == (
        401,
        {"outcome": "bad_signature"},
    )

    assert recorded() == []
    assert IntakeEvent.objects.get().outcome == IntakeOutcome.BAD_SIGNATURE


def test_a_connection_without_a_webhook_secret_refuses_every_delivery(
    connection: Connection, leads: dict[str, Lead]
):
    secret = connection.webhook_secret()
    Connection.objects.filter(pk=connection.pk).update(webhook_secret_encrypted="")
    connection.refresh_from_db()

    assert post(connection, completed(connection, leads["hana"]), secret=secret) == (
        401,
        {"outcome": "bad_signature"},
    )

    assert recorded() == []


@pytest.mark.parametrize("minutes", [-6, 6])
def test_a_delivery_signed_more_than_5_minutes_away_is_refused_400(
    connection: Connection, leads: dict[str, Lead], minutes: int
):
    signed_at = timezone.now() + datetime.timedelta(minutes=minutes)

    status, body = post(connection, completed(connection, leads["hana"]), signed_at=signed_at)

    assert (status, body) == (400, {"outcome": "stale_timestamp"})
    assert recorded() == []
    assert list(IntakeEvent.objects.values_list("outcome", flat=True)) == [
        IntakeOutcome.STALE_TIMESTAMP
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not json", "not JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"[1, 2]", "not an event: an object with type and data is expected"),
        (
            b'{"type": "response.completed"}',
            "not an event: an object with type and data is expected",
        ),
        (
            b'{"type": "response.completed", "data": []}',
            "not an event: an object with type and data is expected",
        ),
        (b'{"type": "survey.created", "data": {}}', "unknown event type 'survey.created'"),
    ],
)
def test_a_signed_body_that_is_not_a_survey_event_is_refused_400(
    connection: Connection, body: bytes, detail: str
):
    assert post(connection, body, message_id="msg_1") == (400, {"outcome": "invalid"})

    refused = IntakeEvent.objects.get()
    assert (refused.event_id, refused.outcome, refused.detail) == (
        "msg_1",
        IntakeOutcome.INVALID,
        detail,
    )


def _broken(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    target = event["data"]
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return event


@pytest.mark.parametrize(
    ("path", "value", "detail"),
    [
        (("response_id",), "", "response_id is missing"),
        (("response_id",), KeyError, "response_id is missing"),
        (
            ("submitted_at",),
            "2026-11-30T02:03:45",
            "submitted_at is not a date and time with a time zone: '2026-11-30T02:03:45'",
        ),
        (
            ("submitted_at",),
            20261130,
            "submitted_at is not a date and time with a time zone: 20261130",
        ),
        (
            ("submitted_at",),
            "yesterday",
            "submitted_at is not a date and time with a time zone: 'yesterday'",
        ),
        (("started_at",), "soon", "started_at is not a date and time with a time zone: 'soon'"),
        (("survey",), KeyError, "survey is missing or not an object with an id"),
        (("survey",), "12", "survey is missing or not an object with an id"),
        (("survey", "id"), KeyError, "survey is missing or not an object with an id"),
        (("survey", "id"), "twelve", "survey is missing or not an object with an id"),
        (("answers",), {"101": "satisfied"}, "answers is not a list"),
        (("answers",), ["satisfied"], "an answer is not an object with its question"),
        (("answers",), [{"value": 1}], "an answer is not an object with its question"),
        (
            ("answers",),
            [{"question": {"id": "x", "kind": "nps"}}],
            "an answer is not an object with its question",
        ),
        (("answers",), [{"question": {"id": 1}}], "an answer is not an object with its question"),
    ],
)
def test_a_response_event_missing_what_the_crm_records_is_refused_400_and_not_recorded(
    connection: Connection, leads: dict[str, Lead], path: tuple[str, ...], value: Any, detail: str
):
    event = _broken(completed(connection, leads["hana"]), path, value)

    assert post(connection, event, message_id="msg_1") == (400, {"outcome": "invalid"})

    assert recorded() == []
    assert Activity.objects.count() == 0
    assert list(IntakeEvent.objects.values_list("event_id", "outcome", "detail")) == [
        ("msg_1", IntakeOutcome.INVALID, detail)
    ]


def test_an_unknown_intake_address_answers_404_and_records_nothing(connection: Connection, leads):
    body = json.dumps(completed(connection, leads["hana"])).encode()
    url = reverse("crm_integration:intake", args=["no-such-token"])

    page = Client().post(url, data=body, content_type="application/json")

    assert page.status_code == 404
    assert IntakeEvent.objects.count() == 0


# --- deletions and openings -----------------------------------------------------------------


def test_a_deleted_response_loses_its_answers_and_leaves_a_timeline_entry_other_responses_stay(
    connection: Connection, leads: dict[str, Lead]
):
    hana, ken = leads["hana"], leads["ken"]
    post(connection, completed(connection, hana, response_id="r-1"))
    post(connection, completed(connection, ken, response_id="r-2"))
    deletion = completed(connection, hana, response_id="r-1", event_type="response.deleted")

    assert post(connection, deletion) == (200, {"outcome": "recorded"})

    gone = SurveyResponse.objects.get(response_id="r-1")
    assert (gone.answers, gone.deleted_at is not None) == ([], True)
    kept = SurveyResponse.objects.get(response_id="r-2")
    assert (len(kept.answers), kept.deleted_at) == (5, None)
    entry = Activity.objects.get(kind=ActivityKind.SURVEY_RESPONSE_DELETED)
    assert (entry.lead, entry.contact, entry.organization_id, entry.summary, entry.data) == (
        hana,
        None,
        connection.organization_id,
        "ご利用満足度アンケート",
        {"response_id": "r-1", "survey_id": 12},
    )
    assert events(connection)[-1] == ("response.deleted", IntakeOutcome.RECORDED, "deleted")
    assert post(connection, deletion) == (200, {"outcome": "duplicate"})
    assert Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONSE_DELETED).count() == 1


def test_a_deletion_empties_that_unmatched_response_only(
    connection: Connection, leads: dict[str, Lead]
):
    hana, ken = leads["hana"], leads["ken"]
    hana_event = completed(connection, hana, response_id="r-1")
    ken_event = completed(connection, ken, response_id="r-2")
    hana.delete(), ken.delete()
    post(connection, hana_event), post(connection, ken_event)
    hana_event["type"] = "response.deleted"

    assert post(connection, hana_event) == (200, {"outcome": "recorded"})

    rows = {
        row.response_id: (len(row.answers), row.dismissed_at is not None)
        for row in UnmatchedResponse.objects.all()
    }
    assert rows == {"r-1": (0, True), "r-2": (5, False)}


def test_a_deletion_arriving_before_its_response_keeps_the_response_out(
    connection: Connection, leads: dict[str, Lead]
):
    hana = leads["hana"]
    deletion = completed(connection, hana, response_id="r-1", event_type="response.deleted")

    assert post(connection, deletion) == (200, {"outcome": "recorded"})
    assert events(connection) == [
        ("response.deleted", IntakeOutcome.RECORDED, "deleted before it was recorded")
    ]
    assert post(connection, completed(connection, hana, response_id="r-1")) == (
        200,
        {"outcome": "duplicate"},
    )

    row = SurveyResponse.objects.get()
    assert (row.lead, row.contact, row.response_id, row.survey_id, row.answers) == (
        hana,
        None,
        "r-1",
        12,
        [],
    )
    assert (row.survey_title, row.portal_name, row.submitted_at) == (
        "ご利用満足度アンケート",
        "お客様",
        SUBMITTED,
    )
    assert row.deleted_at is not None
    assert Activity.objects.count() == 0


def test_a_deletion_without_a_crm_reference_changes_nothing(
    connection: Connection, other_connection: Connection, leads: dict[str, Lead]
):
    post(connection, completed(connection, leads["hana"], response_id="r-1"))
    public = completed(connection, None, response_id="r-1", event_type="response.deleted")
    others = completed(
        connection,
        None,
        response_id="r-1",
        event_type="response.deleted",
        reference=other_connection.recipient_reference(leads["sato"]),
    )

    assert post(connection, public) == (200, {"outcome": "no_reference"})
    assert post(connection, others) == (200, {"outcome": "other_connection"})

    assert SurveyResponse.objects.get().deleted_at is None


def test_an_opened_invitation_is_marked_opened_once_on_its_lead_only(
    connection: Connection, organization: Organization, leads: dict[str, Lead]
):
    hana, ken = leads["hana"], leads["ken"]
    contact = Contact.objects.create(organization=organization, family_name="Hana")
    Lead.objects.filter(pk=hana.pk).update(converted_contact=contact)
    older = invitation(connection, hana, survey_id=13)
    invited = invitation(connection, hana)
    kens = invitation(connection, ken)
    opened = completed(connection, hana, event_type="invitation.opened")

    assert post(connection, opened) == (200, {"outcome": "recorded"})

    opened_at = dict(SurveyInvitation.objects.values_list("pk", "opened_at"))
    assert opened_at == {older.pk: None, invited.pk: SUBMITTED, kens.pk: None}
    entry = Activity.objects.get()
    assert (entry.lead, entry.contact, entry.kind, entry.created_at) == (
        hana,
        contact,
        ActivityKind.SURVEY_OPENED,
        SUBMITTED,
    )
    assert (entry.summary, entry.data) == ("ご利用満足度アンケート", {"survey_id": 12})
    later = completed(
        connection,
        hana,
        event_type="invitation.opened",
        submitted_at=SUBMITTED + datetime.timedelta(hours=1),
    )
    assert post(connection, later) == (200, {"outcome": "duplicate"})
    invited.refresh_from_db()
    assert invited.opened_at == SUBMITTED
    assert Activity.objects.count() == 1


def test_an_opened_event_without_an_invitation_changes_nothing(
    connection: Connection, leads: dict[str, Lead]
):
    invited = invitation(connection, leads["ken"])
    opened = completed(connection, leads["hana"], event_type="invitation.opened")

    assert post(connection, opened) == (200, {"outcome": "unmatched"})

    invited.refresh_from_db()
    assert invited.opened_at is None
    assert Activity.objects.count() == 0


# --- the connection's health ----------------------------------------------------------------


def test_a_received_event_refreshes_when_the_connection_last_heard_from_the_survey_service(
    connection: Connection, other_connection: Connection, leads: dict[str, Lead]
):
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    Connection.objects.update(last_event_at=long_ago)
    before = timezone.now()

    post(connection, completed(connection, leads["hana"]))

    times = dict(Connection.objects.values_list("pk", "last_event_at"))
    heard = times[connection.pk]
    assert heard is not None and heard >= before
    assert times[other_connection.pk] == long_ago


# --- matrix answers -------------------------------------------------------------------------


def _matrix(event: dict[str, Any]) -> dict[str, Any]:
    [answer] = [a for a in event["data"]["answers"] if a["question"]["kind"] == "matrix"]
    return answer


@pytest.mark.parametrize(
    ("display", "rows"),
    [
        ("価格: 良い; 品質: とても良い", [["価格", "良い"], ["品質", "とても良い"]]),
        # A column label may hold ": ": a row is cut at its first ": " only.
        ("価格: 良い: 税込; 品質: とても良い", [["価格", "良い: 税込"], ["品質", "とても良い"]]),
        # A label holding "; " cannot be read back: the keys stand in for the labels.
        ("価格; 税込: 良い; 品質: とても良い", [["price", "good"], ["quality", "excellent"]]),
        ("価格 良い; 品質 とても良い", [["price", "good"], ["quality", "excellent"]]),
        ("", [["price", "good"], ["quality", "excellent"]]),
    ],
)
def test_a_matrix_answer_sent_before_labels_were_data_is_read_from_its_text(
    connection: Connection, leads: dict[str, Lead], display: str, rows: list[list[str]]
):
    event = completed(connection, leads["hana"])
    matrix = _matrix(event)
    del matrix["rows"]
    matrix["display"] = display

    assert post(connection, event) == (200, {"outcome": "recorded"})

    [recorded_matrix] = [a for a in SurveyResponse.objects.get().answers if a["kind"] == "matrix"]
    assert recorded_matrix["rows"] == rows


def test_a_matrix_answer_without_a_value_has_no_rows(connection: Connection, leads):
    event = completed(connection, leads["hana"])
    matrix = _matrix(event)
    del matrix["rows"]
    matrix["value"] = None

    assert post(connection, event) == (200, {"outcome": "recorded"})

    [recorded_matrix] = [a for a in SurveyResponse.objects.get().answers if a["kind"] == "matrix"]
    assert recorded_matrix["rows"] == []


@pytest.mark.parametrize(
    "rows", [[{"key": "price"}], [{"label": "価格", "column": "good"}], ["price"]]
)
def test_a_matrix_answer_with_unreadable_rows_is_refused_400(
    connection: Connection, leads: dict[str, Lead], rows: list[Any]
):
    event = completed(connection, leads["hana"])
    _matrix(event)["rows"] = rows

    assert post(connection, event, message_id="msg_1") == (400, {"outcome": "invalid"})

    assert recorded() == []
    assert list(IntakeEvent.objects.values_list("outcome", "detail")) == [
        (IntakeOutcome.INVALID, "a matrix row is not an object with its label and column")
    ]


# --- events of other kinds without what they need -------------------------------------------


@pytest.mark.parametrize("missing", ["", None])
def test_a_deletion_without_a_response_id_is_refused_400(
    connection: Connection, leads, missing: str | None
):
    event = completed(connection, leads["hana"], event_type="response.deleted")
    if missing is None:
        del event["data"]["response_id"]
    else:
        event["data"]["response_id"] = missing

    assert post(connection, event) == (400, {"outcome": "invalid"})

    assert IntakeEvent.objects.get().detail == "response_id is missing"


def test_an_opened_event_without_a_crm_reference_changes_nothing(
    connection: Connection, other_connection: Connection, leads: dict[str, Lead]
):
    invited = invitation(connection, leads["hana"])
    public = completed(connection, None, event_type="invitation.opened")
    others = completed(
        connection,
        None,
        event_type="invitation.opened",
        reference=other_connection.recipient_reference(leads["sato"]),
    )

    assert post(connection, public) == (200, {"outcome": "no_reference"})
    assert post(connection, others) == (200, {"outcome": "other_connection"})

    invited.refresh_from_db()
    assert invited.opened_at is None
    assert Activity.objects.count() == 0
    assert events(connection) == [
        ("invitation.opened", IntakeOutcome.NO_REFERENCE, ""),
        (
            "invitation.opened",
            IntakeOutcome.OTHER_CONNECTION,
            others["data"]["recipient_reference"],
        ),
    ]


def test_a_foreign_reference_is_kept_for_the_admin_within_its_column(
    connection: Connection, leads: dict[str, Lead]
):
    """Another CRM's reference key can be of any length."""
    reference = "crm:" + "k" * 300 + ":lead:1"
    opened = completed(connection, None, event_type="invitation.opened", reference=reference)

    assert post(connection, opened) == (200, {"outcome": "other_connection"})

    assert events(connection) == [
        ("invitation.opened", IntakeOutcome.OTHER_CONNECTION, reference[:200])
    ]


def test_a_response_to_a_foreign_reference_is_kept_for_the_admin_within_its_column(
    connection: Connection, leads: dict[str, Lead]
):
    """As an opening's: another CRM's reference key can be of any length."""
    reference = "crm:" + "k" * 300 + ":lead:1"
    response = completed(connection, None, reference=reference)

    assert post(connection, response) == (200, {"outcome": "other_connection"})

    assert recorded() == []
    assert events(connection) == [
        ("response.completed", IntakeOutcome.OTHER_CONNECTION, reference[:200])
    ]


def test_an_opening_marks_the_invitation_of_its_own_survey_even_if_another_is_newer(
    connection: Connection, leads: dict[str, Lead]
):
    hana = leads["hana"]
    invited = invitation(connection, hana)  # survey 12, as in the event
    newer = invitation(connection, hana, survey_id=13)

    opened = completed(connection, hana, event_type="invitation.opened")
    assert post(connection, opened) == (200, {"outcome": "recorded"})

    opened_at = dict(SurveyInvitation.objects.values_list("pk", "opened_at"))
    assert opened_at == {invited.pk: SUBMITTED, newer.pk: None}


def test_an_opening_marks_the_invitation_its_link_was_made_for(
    organization: Organization, connection: Connection, leads: dict[str, Lead]
):
    """Hana was invited to the same survey by an earlier connection of the organization and
    again, later, by the current one: the link she opened names the current one."""
    hana = leads["hana"]
    disabled_at(connection, SUBMITTED + datetime.timedelta(days=1))
    earlier = invitation(connection, hana)
    current = new_connection(organization)
    invited = invitation(current, hana)
    SurveyInvitation.objects.filter(pk=earlier.pk).update(
        created_at=invited.created_at + datetime.timedelta(minutes=1)
    )

    opened = completed(current, hana, event_type="invitation.opened")
    assert post(current, opened) == (200, {"outcome": "recorded"})

    opened_at = dict(SurveyInvitation.objects.values_list("pk", "opened_at"))
    assert opened_at == {earlier.pk: None, invited.pk: SUBMITTED}


def test_a_deletion_arriving_before_a_contacts_response_is_kept_on_that_contact(
    connection: Connection, organization: Organization, leads: dict[str, Lead]
):
    mori = Contact.objects.create(organization=organization, family_name="Mori")
    deletion = completed(connection, mori, response_id="r-1", event_type="response.deleted")

    assert post(connection, deletion) == (200, {"outcome": "recorded"})

    assert recorded() == [(None, mori.pk, organization.pk)]


# --- what the administrators read about refused deliveries ----------------------------------


def test_a_refused_deliverys_reason_is_kept_within_its_column(connection: Connection):
    event_type = "x" * 600
    body = json.dumps({"type": event_type, "data": {}}).encode()

    assert post(connection, body) == (400, {"outcome": "invalid"})

    detail = IntakeEvent.objects.get().detail
    assert detail == f"unknown event type {event_type!r}"[:500]


def test_a_refused_delivery_is_logged_with_its_connection_and_reason(
    connection: Connection, other_connection: Connection, leads, caplog: pytest.LogCaptureFixture
):
    event = completed(connection, leads["hana"])

    post(connection, event, secret=other_connection.webhook_secret())

    assert [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "kizuna.crm.integration.responses.services"
    ] == [
        (
            logging.WARNING,
            f"Survey webhook refused for connection {connection.pk}: No matching signature found",
        )
    ]
