"""What an organization relies on when the reconciliation pull records a page of responses
(E4, D6), and when a delivery finds what the page recorded, in the CRM alone (issue 14).

A page is recorded in a few queries for the whole page (record_responses): each response goes
on its own lead or contact, with the invitation it answers and its timeline entry, a
response whose lead is gone is kept for the administrators, and nothing is recorded twice.
Two organizations with their connections, leads and contacts whose ids coincide, and several
invitations of one recipient are in the database, so that a page mixing them up shows. The
pages are the contract's example events' `data`, as GET /responses lists them; the pull over
HTTP with the real Survey service is tested in kizuna/e2e/integration/test_backlog.py.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection as database
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from kizuna.crm.integration.models import (
    Connection,
    ConnectionState,
    IntakeEvent,
    IntakeOutcome,
    SurveyInvitation,
    SurveyResponse,
    UnmatchedResponse,
)
from kizuna.crm.integration.responses import services
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.testing.intake import SUBMITTED, completed, new_connection, post

pytestmark = pytest.mark.django_db

TITLE = "ご利用満足度アンケート"  # the example's survey 12


@pytest.fixture
def people(organization: Organization, other_organization: Organization) -> dict[str, Any]:
    """Leads and contacts of Ada's organization whose ids coincide (lead 7001 and contact 7001,
    lead 7003 and contact 7003), as a lead's and a contact's do in any database; Ken's lead was
    converted into Kato's contact; Charlie's organization has a lead and a contact of its own."""
    made: dict[str, Any] = {
        "hana": Lead.objects.create(pk=7001, organization=organization, family_name="Hana"),
        "mori": Contact.objects.create(pk=7001, organization=organization, family_name="Mori"),
        "kato": Contact.objects.create(pk=7002, organization=organization, family_name="Kato"),
        "gone": Lead.objects.create(pk=7003, organization=organization, family_name="Gone"),
        "sato": Contact.objects.create(pk=7003, organization=organization, family_name="Sato"),
        "charlies_lead": Lead.objects.create(
            pk=7005, organization=other_organization, family_name="Charlie's lead"
        ),
        "charlies_contact": Contact.objects.create(
            pk=7006, organization=other_organization, family_name="Charlie's contact"
        ),
    }
    made["ken"] = Lead.objects.create(
        pk=7004, organization=organization, family_name="Ken", converted_contact=made["kato"]
    )
    return made


def item(
    connection: Connection, record: Lead | Contact, response_id: str, **survey: Any
) -> dict[str, Any]:
    """One response of GET /responses: the example event's `data` for `record`."""
    data = completed(connection, record, response_id=response_id)["data"]
    data["survey"].update(survey)
    return data


def invite(
    connection: Connection,
    record: Lead | Contact,
    *,
    survey_id: int = 12,
    days_ago: float = 1,
    reference: str | None = None,
) -> SurveyInvitation:
    at = SUBMITTED - datetime.timedelta(days=days_ago)
    return SurveyInvitation.objects.create(
        connection=connection,
        organization_id=connection.organization_id,
        lead=record if isinstance(record, Lead) else None,
        contact=record if isinstance(record, Contact) else None,
        survey_id=survey_id,
        survey_title=f"Survey {survey_id}",
        recipient_reference=reference or connection.recipient_reference(record),
        email="someone@example.com",
        created_at=at,
        sent_at=at,
    )


def recorded() -> dict[str, tuple[int | None, int | None, int | None]]:
    """response id: (lead, contact, invitation) of every recorded response."""
    return {
        row.response_id: (row.lead_id, row.contact_id, row.invitation_id)
        for row in SurveyResponse.objects.all()
    }


def timeline() -> list[tuple[str, int | None, int | None, int]]:
    """(response id, lead, contact, organization) of every "responded" entry."""
    return sorted(
        (entry.data["response_id"], entry.lead_id, entry.contact_id, entry.organization_id)
        for entry in Activity.objects.filter(kind=ActivityKind.SURVEY_RESPONDED)
    )


def record_page(connection: Connection, items: list[dict[str, Any]]) -> int:
    """record_responses() as the pull calls it: one transaction a page."""
    with transaction.atomic():
        return services.record_responses(connection, items)


# --- a page -----------------------------------------------------------------------------------


def test_e4_a_page_records_each_response_on_its_own_lead_or_contact_telling_equal_ids_apart(
    connection: Connection, other_connection: Connection, people: dict[str, Any]
):
    gone_reference = connection.recipient_reference(people["gone"])
    page = [
        item(connection, people["gone"], "r-gone"),  # first: the rest of the page goes on
        item(connection, people["hana"], "r-hana"),
        item(connection, people["mori"], "r-mori"),
        item(connection, people["kato"], "r-kato"),
        item(connection, people["sato"], "r-sato"),
        item(connection, people["ken"], "r-ken"),
    ]
    people["gone"].delete()

    assert record_page(connection, page) == 6

    assert recorded() == {
        "r-hana": (7001, None, None),
        "r-mori": (None, 7001, None),
        "r-kato": (None, 7002, None),
        "r-sato": (None, 7003, None),
        "r-ken": (7004, 7002, None),
    }
    organization_id = connection.organization_id
    assert set(
        SurveyResponse.objects.values_list("connection_id", "organization_id", "survey_title")
    ) == {(connection.pk, organization_id, TITLE)}
    assert timeline() == [
        ("r-hana", 7001, None, organization_id),
        ("r-kato", None, 7002, organization_id),
        ("r-ken", 7004, 7002, organization_id),
        ("r-mori", None, 7001, organization_id),
        ("r-sato", None, 7003, organization_id),
    ]
    entry = Activity.objects.get(data__response_id="r-hana")
    assert (entry.summary, entry.created_at, entry.data) == (
        TITLE,
        SUBMITTED,
        {"response_id": "r-hana", "survey_id": 12},
    )
    kept = UnmatchedResponse.objects.get()
    assert (kept.connection, kept.organization_id, kept.response_id) == (
        connection,
        organization_id,
        "r-gone",
    )
    assert (kept.recipient_reference, kept.survey_id, kept.survey_title, kept.submitted_at) == (
        gone_reference,
        12,
        TITLE,
        SUBMITTED,
    )
    assert [answer["question_id"] for answer in kept.answers] == [101, 102, 103, 104, 105]
    assert kept.answers == SurveyResponse.objects.get(response_id="r-hana").answers
    assert SurveyResponse.objects.filter(connection=other_connection).count() == 0


def test_e4_a_page_completes_the_invitation_each_response_answers_and_no_other(
    connection: Connection, people: dict[str, Any]
):
    hana, mori, ken = people["hana"], people["mori"], people["ken"]
    of_hana = invite(connection, hana, days_ago=1)
    other_survey = invite(connection, hana, survey_id=13, days_ago=0.5)
    of_mori = invite(connection, mori, days_ago=2)
    of_ken = invite(connection, ken, days_ago=2)
    of_kato = invite(connection, people["kato"], days_ago=2)  # Ken's contact, invited apart
    page = [
        item(connection, hana, "r-hana"),
        item(connection, mori, "r-mori"),
        item(connection, ken, "r-ken"),
    ]

    assert record_page(connection, page) == 3

    assert recorded() == {
        "r-hana": (7001, None, of_hana.pk),
        "r-mori": (None, 7001, of_mori.pk),
        "r-ken": (7004, 7002, of_ken.pk),
    }
    completed_at = dict(SurveyInvitation.objects.values_list("pk", "completed_at"))
    assert completed_at == {
        of_hana.pk: SUBMITTED,
        other_survey.pk: None,
        of_mori.pk: SUBMITTED,
        of_ken.pk: SUBMITTED,
        of_kato.pk: None,
    }


def test_e4_an_invitation_completed_already_keeps_the_moment_of_its_first_response(
    connection: Connection, people: dict[str, Any]
):
    hana = people["hana"]
    invitation = invite(connection, hana)
    first = SUBMITTED - datetime.timedelta(hours=1)
    SurveyInvitation.objects.filter(pk=invitation.pk).update(completed_at=first)

    assert record_page(connection, [item(connection, hana, "r-again")]) == 1

    invitation.refresh_from_db()
    assert invitation.completed_at == first
    assert recorded() == {"r-again": (7001, None, invitation.pk)}


def test_e4_a_page_repeating_recorded_responses_records_nothing_even_when_a_lead_is_gone_since(
    connection: Connection, people: dict[str, Any]
):
    page = [item(connection, people["hana"], "r-hana"), item(connection, people["mori"], "r-mori")]
    assert record_page(connection, page) == 2
    people["hana"].delete()

    assert record_page(connection, page) == 0

    assert sorted(recorded()) == ["r-hana", "r-mori"]
    assert UnmatchedResponse.objects.count() == 0
    assert len(timeline()) == 2


def test_e4_a_response_id_another_organization_recorded_is_recorded_for_this_one_too(
    connection: Connection, other_connection: Connection, people: dict[str, Any]
):
    theirs = item(other_connection, people["charlies_lead"], "r-shared")
    assert record_page(other_connection, [theirs]) == 1

    assert record_page(connection, [item(connection, people["hana"], "r-shared")]) == 1

    assert sorted(
        SurveyResponse.objects.values_list("connection_id", "lead_id", "organization_id")
    ) == sorted(
        [
            (other_connection.pk, 7005, other_connection.organization_id),
            (connection.pk, 7001, connection.organization_id),
        ]
    )


def test_e4_a_page_with_a_response_kept_unmatched_takes_the_queries_of_a_page_of_three(
    connection: Connection, people: dict[str, Any]
):
    """The page is written in bulk whatever it holds: a lead gone meanwhile does not send it
    down the path of one response at a time."""
    for record in ("hana", "mori", "kato", "sato", "ken"):
        invite(connection, people[record])
    items = {
        name: item(connection, people[name], f"r-{name}")
        for name in ("gone", "hana", "mori", "kato", "sato", "ken")
    }
    people["gone"].delete()
    with CaptureQueriesContext(database) as page_of_three:  # a lead, a contact, one gone
        assert record_page(connection, [items["gone"], items["hana"], items["mori"]]) == 3
    UnmatchedResponse.objects.all().delete()
    SurveyResponse.objects.all().delete()
    Activity.objects.all().delete()
    SurveyInvitation.objects.update(completed_at=None)

    with CaptureQueriesContext(database) as page_of_six:
        assert record_page(connection, list(items.values())) == 6

    assert len(page_of_six.captured_queries) == len(page_of_three.captured_queries)
    assert UnmatchedResponse.objects.count() == 1
    assert len(timeline()) == 5


# --- one response at a time (a delivery) --------------------------------------------------------


def test_e4_a_delivery_of_a_recorded_response_is_a_duplicate_even_when_its_lead_is_gone_since(
    connection: Connection, people: dict[str, Any]
):
    data = item(connection, people["hana"], "r-hana")
    with transaction.atomic():
        assert services.record_response(connection, data) == (IntakeOutcome.RECORDED, "")
    people["hana"].delete()

    with transaction.atomic():
        assert services.record_response(connection, data) == (IntakeOutcome.DUPLICATE, "r-hana")

    assert UnmatchedResponse.objects.count() == 0
    assert len(timeline()) == 1


def test_e4_a_delivery_of_a_response_id_another_organization_recorded_is_recorded(
    connection: Connection, other_connection: Connection, people: dict[str, Any]
):
    with transaction.atomic():
        services.record_response(
            other_connection, item(other_connection, people["charlies_lead"], "r-shared")
        )

    with transaction.atomic():
        outcome = services.record_response(connection, item(connection, people["hana"], "r-shared"))

    assert outcome == (IntakeOutcome.RECORDED, "")
    assert SurveyResponse.objects.get(connection=connection).lead_id == 7001


def test_e4_a_delivery_links_the_invitation_its_recipient_had_for_that_survey_and_connection(
    connection: Connection, organization: Organization, people: dict[str, Any]
):
    """Of Hana's invitations: the one of survey 12 by this connection, not the newer one of
    survey 13, nor the newer one an earlier connection of the organization sent (another
    recipient reference)."""
    hana = people["hana"]
    earlier = new_connection(
        organization,
        state=ConnectionState.DISABLED,
        disabled_at=SUBMITTED - datetime.timedelta(days=30),
    )
    invited = invite(connection, hana, days_ago=2)
    invite(connection, hana, survey_id=13, days_ago=1)
    invite(earlier, hana, days_ago=0.5)

    with transaction.atomic():
        services.record_response(connection, item(connection, hana, "r-hana"))

    assert recorded() == {"r-hana": (7001, None, invited.pk)}
    assert list(
        SurveyInvitation.objects.exclude(completed_at=None).values_list("pk", flat=True)
    ) == [invited.pk]


# --- deletions --------------------------------------------------------------------------------


def test_a_deletion_event_without_its_time_is_refused_saying_what_is_missing(
    connection: Connection, people: dict[str, Any]
):
    deletion = completed(
        connection, people["hana"], response_id="r-1", event_type="response.deleted"
    )
    del deletion["timestamp"]

    assert post(connection, deletion, message_id="msg_1") == (400, {"outcome": "invalid"})

    assert list(IntakeEvent.objects.values_list("event_id", "outcome", "detail")) == [
        ("msg_1", IntakeOutcome.INVALID, "timestamp (when the response was deleted) is missing")
    ]
