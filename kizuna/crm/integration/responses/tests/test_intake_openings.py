"""An opened survey link on the record it was sent to (E1, E4): the invitation is marked
opened and the opening is on that record's timeline, a lead's or a contact's, whether or not
the lead was converted. Two organizations, each with its connection, are in the database,
and the contact has a namesake lead, so that an entry reaching the wrong record shows.
"""

from __future__ import annotations

import datetime

import pytest

from kizuna.crm.integration.models import (
    Connection,
    IntakeEvent,
    IntakeOutcome,
    SurveyInvitation,
)
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.testing.intake import SUBMITTED, completed, new_connection, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(organization: Organization, other_organization: Organization) -> Connection:
    new_connection(other_organization)
    return new_connection(organization)


@pytest.fixture
def lead(organization: Organization) -> Lead:
    return Lead.objects.create(organization=organization, family_name="Hana", email="h@example.com")


@pytest.fixture
def contact(organization: Organization, lead: Lead) -> Contact:
    """Hana's namesake contact (the lead is not converted to it)."""
    return Contact.objects.create(
        organization=organization, family_name="Hana", email="h@example.com"
    )


def invitation_of(connection: Connection, record: Lead | Contact) -> SurveyInvitation:
    return SurveyInvitation.objects.create(
        connection=connection,
        organization_id=connection.organization_id,
        lead=record if isinstance(record, Lead) else None,
        contact=record if isinstance(record, Contact) else None,
        survey_id=12,
        survey_title="Survey 12",
        recipient_reference=connection.recipient_reference(record),
        email=record.email,
        sent_at=SUBMITTED - datetime.timedelta(days=1),
    )


def opened_on(connection: Connection, record: Lead | Contact) -> tuple[int, dict[str, str]]:
    return post(connection, completed(connection, record, event_type="invitation.opened"))


@pytest.mark.usefixtures("lead")
def test_an_opened_invitation_of_a_contact_is_on_the_contacts_timeline_only(
    connection: Connection, contact: Contact
):
    invited = invitation_of(connection, contact)

    assert opened_on(connection, contact) == (200, {"outcome": "recorded"})

    invited.refresh_from_db()
    assert invited.opened_at == SUBMITTED
    entry = Activity.objects.get()
    assert (entry.lead_id, entry.contact_id, entry.kind, entry.created_at) == (
        None,
        contact.pk,
        ActivityKind.SURVEY_OPENED,
        SUBMITTED,
    )
    assert entry.data == {"survey_id": 12}
    assert list(IntakeEvent.objects.values_list("event_type", "outcome", "detail")) == [
        ("invitation.opened", IntakeOutcome.RECORDED, "")
    ]


@pytest.mark.usefixtures("contact")
def test_an_opened_invitation_of_a_lead_not_converted_is_on_the_leads_timeline_only(
    connection: Connection, lead: Lead
):
    invited = invitation_of(connection, lead)

    assert opened_on(connection, lead) == (200, {"outcome": "recorded"})

    invited.refresh_from_db()
    assert invited.opened_at == SUBMITTED
    entry = Activity.objects.get()
    assert (entry.lead_id, entry.contact_id, entry.kind) == (
        lead.pk,
        None,
        ActivityKind.SURVEY_OPENED,
    )
