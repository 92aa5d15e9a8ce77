"""Tenant-scoped reads: `.of(organization)` keeps one organization's rows, never another's."""

from __future__ import annotations

from kizuna.crm.models import Contact, Lead, Membership, Organization


def test_of_keeps_the_rows_of_one_organization(
    organization: Organization,
    other_organization: Organization,
    ada_membership: Membership,
    charlie_membership: Membership,
):
    ours = Lead.objects.create(organization=organization, family_name="Ours")
    Lead.objects.create(organization=other_organization, family_name="Theirs")
    contact = Contact.objects.create(organization=organization, family_name="Contact")
    Contact.objects.create(organization=other_organization, family_name="Other contact")

    assert list(Lead.objects.of(organization)) == [ours]
    assert list(Lead.objects.of(organization.pk)) == [ours]
    assert list(Contact.objects.filter(family_name__startswith="C").of(organization)) == [contact]
    assert list(Membership.objects.of(other_organization)) == [charlie_membership]
