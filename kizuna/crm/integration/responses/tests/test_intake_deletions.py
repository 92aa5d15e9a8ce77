"""response.deleted at the intake (E4, D4): what a deletion finds, and what the administrator
reads of one the CRM ignores. Two organizations, each with its connection, and several leads
are in the database, so that a deletion reaching more than its own rows shows.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from kizuna.crm.integration.models import (
    Connection,
    ConnectionState,
    IntakeEvent,
    IntakeOutcome,
    SurveyResponse,
)
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Organization
from kizuna.testing.intake import SUBMITTED, completed, new_connection, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(organization: Organization, other_organization: Organization) -> Connection:
    new_connection(other_organization)
    return new_connection(organization)


@pytest.fixture
def hana(organization: Organization) -> Lead:
    Lead.objects.create(organization=organization, family_name="Ken", email="ken@example.com")
    return Lead.objects.create(organization=organization, family_name="Hana", email="h@example.com")


def deletion_of(
    connection: Connection,
    lead: Lead | None,
    *,
    response_id: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    return completed(
        connection,
        lead,
        event_type="response.deleted",
        response_id=response_id,
        reference=reference,
    )


def last_event(connection: Connection) -> tuple[str, str, str]:
    return (
        IntakeEvent.objects.filter(connection=connection)
        .values_list("event_type", "outcome", "detail")
        .latest("pk")
    )


def test_a_response_whose_id_is_longer_than_its_column_is_still_deleted(
    connection: Connection, hana: Lead
):
    long_id = "r" * 80
    post(connection, completed(connection, hana, response_id=long_id))

    assert post(connection, deletion_of(connection, hana, response_id=long_id)) == (
        200,
        {"outcome": "recorded"},
    )

    [recorded] = SurveyResponse.objects.all()
    assert (recorded.response_id, recorded.answers) == ("r" * 64, [])
    assert recorded.deleted_at is not None


def test_a_deletion_without_a_crm_reference_is_kept_for_the_admin_without_detail(
    connection: Connection, hana: Lead
):
    post(connection, completed(connection, hana, response_id="r-1"))

    assert post(connection, deletion_of(connection, None, response_id="r-1")) == (
        200,
        {"outcome": "no_reference"},
    )

    assert last_event(connection) == ("response.deleted", IntakeOutcome.NO_REFERENCE, "")
    assert SurveyResponse.objects.get().deleted_at is None


def test_a_deletion_for_another_crm_shows_the_first_200_characters_of_its_reference(
    connection: Connection, hana: Lead
):
    foreign = "crm:" + "k" * 300 + ":lead:1"

    assert post(connection, deletion_of(connection, hana, reference=foreign)) == (
        200,
        {"outcome": "other_connection"},
    )

    assert last_event(connection) == (
        "response.deleted",
        IntakeOutcome.OTHER_CONNECTION,
        foreign[:200],
    )


def test_a_deletion_repeated_after_re_enabling_leaves_the_one_row_the_earlier_connection_made(
    organization: Organization, connection: Connection, hana: Lead
):
    post(connection, completed(connection, hana, response_id="r-1"))
    post(connection, deletion_of(connection, hana, response_id="r-1"))
    Connection.objects.filter(pk=connection.pk).update(
        state=ConnectionState.DISABLED, disabled_at=SUBMITTED + datetime.timedelta(days=1)
    )
    current = new_connection(organization)

    assert post(current, deletion_of(connection, hana, response_id="r-1")) == (
        200,
        {"outcome": "duplicate"},
    )

    assert list(SurveyResponse.objects.values_list("connection_id", "response_id")) == [
        (connection.pk, "r-1")
    ]


def test_a_deleted_response_of_a_converted_lead_leaves_its_entry_on_the_lead_and_the_contact(
    organization: Organization, connection: Connection, hana: Lead
):
    contact = Contact.objects.create(organization=organization, family_name="Hana")
    Lead.objects.filter(pk=hana.pk).update(converted_contact=contact)
    post(connection, completed(connection, hana, response_id="r-1"))

    assert post(connection, deletion_of(connection, hana, response_id="r-1")) == (
        200,
        {"outcome": "recorded"},
    )

    entry = Activity.objects.get(kind=ActivityKind.SURVEY_RESPONSE_DELETED)
    assert (entry.lead_id, entry.contact_id) == (hana.pk, contact.pk)
