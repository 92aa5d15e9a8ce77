"""Services of the CRM core, below the views: the last-administrator rule, conversion."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from kizuna.crm import services
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, Membership, Organization, Role
from kizuna.crm.tests.conftest import make_lead
from kizuna.testing.personas import make_user

pytestmark = pytest.mark.django_db


def test_create_organization_makes_the_creator_its_administrator(user: Any) -> None:
    organization = services.create_organization(name="New", by=user)
    assert list(organization.memberships.values_list("user", "role", "is_active")) == [
        (user.pk, Role.ADMINISTRATOR, True)
    ]


def test_a_second_administrator_may_demote_the_first(
    ada_membership: Membership, bob_membership: Membership
) -> None:
    services.change_role(membership=bob_membership, role=Role.ADMINISTRATOR, by=ada_membership.user)
    services.change_role(membership=ada_membership, role=Role.STANDARD, by=bob_membership.user)
    ada_membership.refresh_from_db()
    assert ada_membership.role == Role.STANDARD
    with pytest.raises(services.LastAdministratorError):
        services.deactivate_member(membership=bob_membership, by=bob_membership.user)
    bob_membership.refresh_from_db()
    assert (bob_membership.role, bob_membership.is_active) == (Role.ADMINISTRATOR, True)


def test_a_deactivated_administrator_does_not_count(
    ada_membership: Membership, organization: Organization
) -> None:
    other = Membership.objects.create(
        organization=organization,
        user=make_user("old@example.com"),
        role=Role.ADMINISTRATOR,
        is_active=False,
    )
    with pytest.raises(services.LastAdministratorError):
        services.change_role(membership=ada_membership, role=Role.STANDARD, by=ada_membership.user)
    assert other.role == Role.ADMINISTRATOR


def test_an_unknown_role_is_refused(ada_membership: Membership, bob_membership: Membership) -> None:
    with pytest.raises(services.CrmError):
        services.change_role(membership=bob_membership, role="owner", by=ada_membership.user)
    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.STANDARD


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_administrators_demoting_each_other_at_once_leave_one(
    organization: Organization, ada: Any, bob: Any
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks")
    first = Membership.objects.create(organization=organization, user=ada, role=Role.ADMINISTRATOR)
    second = Membership.objects.create(organization=organization, user=bob, role=Role.ADMINISTRATOR)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(membership: Membership) -> None:
        from django.db import connections

        try:
            barrier.wait()
            services.change_role(membership=membership, role=Role.STANDARD, by=membership.user)
            outcomes.append("demoted")
        except services.LastAdministratorError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=demote, args=(m,)) for m in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["demoted", "refused"]
    assert (
        Membership.objects.filter(
            organization=organization, role=Role.ADMINISTRATOR, is_active=True
        ).count()
        == 1
    )


def test_update_record_notes_only_real_changes(lead: Lead, bob_membership: Membership) -> None:
    assert (
        services.update_record(
            record=lead, by=bob_membership.user, values={"company": "Sakura Foods"}
        )
        == []
    )
    assert services.update_record(
        record=lead, by=bob_membership.user, values={"company": "X", "owner": bob_membership.user}
    ) == ["company", "owner"]
    lead.refresh_from_db()
    assert (lead.company, lead.owner, lead.modified_by) == (
        "X",
        bob_membership.user,
        bob_membership.user,
    )
    assert Activity.objects.filter(lead=lead, kind=ActivityKind.EDITED).count() == 1


def test_update_record_refuses_unknown_fields(lead: Lead, bob_membership: Membership) -> None:
    with pytest.raises(ValueError, match="organization"):
        services.update_record(record=lead, by=bob_membership.user, values={"organization": None})


def test_convert_lead_moves_the_timeline_and_refuses_twice(
    organization: Organization, ada_membership: Membership
) -> None:
    lead = make_lead(organization, ada_membership.user, family_name="Abe", email="abe@example.com")
    services.update_record(record=lead, by=ada_membership.user, values={"phone": "1"})
    contact = services.convert_lead(lead=lead, by=ada_membership.user)
    assert list(
        Activity.objects.filter(contact=contact).order_by("id").values_list("kind", "lead_id")
    ) == [
        (ActivityKind.CREATED, lead.pk),
        (ActivityKind.EDITED, lead.pk),
        (ActivityKind.CONVERTED, lead.pk),
    ]
    assert (contact.email, contact.phone, contact.created_by) == (
        "abe@example.com",
        "1",
        ada_membership.user,
    )
    with pytest.raises(services.ConversionError):
        services.convert_lead(lead=lead, by=ada_membership.user)
    assert Contact.objects.count() == 1


def test_deleting_a_contact_keeps_the_converted_leads_history(
    organization: Organization, ada_membership: Membership
) -> None:
    lead = make_lead(organization, ada_membership.user, family_name="Abe")
    contact = services.convert_lead(lead=lead, by=ada_membership.user)
    services.delete_records(
        organization=organization, module="contacts", ids=[contact.pk], by=ada_membership.user
    )
    lead.refresh_from_db()
    assert lead.converted_contact is None
    assert Activity.objects.filter(lead=lead).count() == 2
