"""What a contact's record shows of the surveys sent to the contact (E1, E4): an opened
invitation and a response land on the contact's own timeline, not on a lead's. Two
organizations, each with its connection, are in the database, and the contact has a
namesake lead, so that an entry reaching the wrong record shows.
"""

from __future__ import annotations

import datetime

import pytest

from kizuna.crm.integration.models import Connection, SurveyInvitation
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.testing.intake import SUBMITTED, completed, new_connection, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(organization: Organization, other_organization: Organization) -> Connection:
    new_connection(other_organization)
    return new_connection(organization)


@pytest.fixture
def contact(organization: Organization) -> Contact:
    Lead.objects.create(organization=organization, family_name="Hana", email="hana@example.com")
    return Contact.objects.create(
        organization=organization, family_name="Hana", email="hana@example.com"
    )


def invitation_of(connection: Connection, contact: Contact) -> SurveyInvitation:
    return SurveyInvitation.objects.create(
        connection=connection,
        organization_id=connection.organization_id,
        contact=contact,
        survey_id=12,
        survey_title="Survey 12",
        recipient_reference=connection.recipient_reference(contact),
        email=contact.email,
        sent_at=SUBMITTED - datetime.timedelta(days=1),
    )


def test_an_opened_invitation_of_a_contact_is_on_the_contacts_timeline_once(
    connection: Connection, contact: Contact
):
    invited = invitation_of(connection, contact)
    opened = completed(connection, contact, event_type="invitation.opened")

    assert post(connection, opened) == (200, {"outcome": "recorded"})

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
