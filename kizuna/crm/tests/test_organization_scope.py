"""Which organization a member works in (crm/access.py), with several organizations and
memberships in the database so that a missing filter or order shows (issue 14).

Ada is an active member of "Kizuna Demo" and "Aoki Foods", and a former member of "Abe
Industries" (first by name): she never lands in, switches to or reads from Abe Industries.
Each page acts on the row its address names: two contacts and two pending invitations are
in her organization, and one of each in Charlie's, so that a lookup that lost its id (and
finds "the" row) shows.
"""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.crm.access import SESSION_KEY
from kizuna.crm.models import Contact, Lead, MemberInvitation, Membership, Organization, Role
from kizuna.crm.services import hash_token
from kizuna.identity.models import User
from kizuna.testing.personas import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def aoki(ada: User, ada_membership: Membership) -> Organization:
    """Made after Ada's first organization, first of her active ones by name."""
    organization = Organization.objects.create(name="Aoki Foods")
    Membership.objects.create(organization=organization, user=ada, role=Role.STANDARD)
    return organization


@pytest.fixture
def abe(ada: User, ada_membership: Membership) -> Organization:
    """Ada's former organization: her membership there is deactivated."""
    organization = Organization.objects.create(name="Abe Industries")
    Membership.objects.create(organization=organization, user=ada, is_active=False)
    return organization


@pytest.fixture
def ada_browser(ada: User, abe: Organization, aoki: Organization) -> Client:
    return client_for(ada)


def switch(client: Client, organization: Organization) -> int:
    page = client.post(reverse("crm:organization-switch"), {"organization": organization.pk})
    return page.status_code


def test_a_member_starts_in_her_first_active_organization_by_name(
    ada_browser: Client, aoki: Organization
):
    page = ada_browser.get(reverse("crm:home"))

    assert page.status_code == 200
    assert page.context["organization"] == aoki
    assert ada_browser.session[SESSION_KEY] == aoki.pk


def test_the_header_lists_only_the_organizations_she_is_an_active_member_of(
    ada_browser: Client, organization: Organization, aoki: Organization
):
    page = ada_browser.get(reverse("crm:home"))

    listed = [m.organization for m in page.context["memberships"]]
    assert listed == [aoki, organization]


def test_organizations_of_the_same_name_are_listed_in_the_order_they_were_made(ada: User):
    older = Organization.objects.create(name="Aoki Foods")
    newer = Organization.objects.create(name="Aoki Foods")
    # Her membership of the newer one is the older membership.
    Membership.objects.create(organization=newer, user=ada)
    Membership.objects.create(organization=older, user=ada)
    client = client_for(ada)

    page = client.get(reverse("crm:home"))

    assert [m.organization for m in page.context["memberships"]] == [older, newer]
    assert page.context["organization"] == older


def test_switching_takes_her_to_the_other_organization_and_stays(
    ada_browser: Client, organization: Organization
):
    assert switch(ada_browser, organization) == 302

    assert ada_browser.get(reverse("crm:home")).context["organization"] == organization
    assert ada_browser.get(reverse("crm:home")).context["organization"] == organization


@pytest.mark.parametrize("where", ["abe", "other_organization"])
def test_switching_to_an_organization_she_is_not_an_active_member_of_is_404_and_changes_nothing(
    ada_browser: Client, aoki: Organization, where: str, request: pytest.FixtureRequest
):
    ada_browser.get(reverse("crm:home"))
    target = request.getfixturevalue(where)

    assert switch(ada_browser, target) == 404

    assert ada_browser.session[SESSION_KEY] == aoki.pk
    assert ada_browser.get(reverse("crm:home")).context["organization"] == aoki


def test_a_session_naming_a_former_organization_lands_in_an_active_one(
    ada_browser: Client, abe: Organization, aoki: Organization
):
    session = ada_browser.session
    session[SESSION_KEY] = abe.pk
    session.save()

    assert ada_browser.get(reverse("crm:home")).context["organization"] == aoki
    assert ada_browser.session[SESSION_KEY] == aoki.pk


def test_a_former_members_records_are_404_to_her(ada_browser: Client, abe: Organization):
    lead = Lead.objects.create(organization=abe, family_name="Abe")

    page = ada_browser.get(reverse("crm:lead-detail", args=[lead.pk]))

    assert page.status_code == 404


def test_a_user_whose_only_membership_is_deactivated_is_offered_to_create_an_organization(
    bob: User, bob_membership: Membership, organization: Organization
):
    Membership.objects.filter(pk=bob_membership.pk).update(is_active=False)
    lead = Lead.objects.create(organization=organization, family_name="Yamada")
    client = client_for(bob)

    home = client.get(reverse("crm:home"))

    assert home.templates[0].name == "crm/welcome.html"
    assert client.get(reverse("crm:lead-detail", args=[lead.pk])).status_code == 404
    assert client.get(reverse("crm:lead-list")).status_code == 404


# --- one row per address ---------------------------------------------------------------------


def test_each_contacts_page_shows_that_contact(
    ada_client: Client, organization: Organization, other_organization: Organization
):
    mori = Contact.objects.create(organization=organization, family_name="Mori")
    kato = Contact.objects.create(organization=organization, family_name="Kato")
    Contact.objects.create(organization=other_organization, family_name="Sato")

    for contact in (mori, kato):
        page = ada_client.get(reverse("crm:contact-detail", args=[contact.pk]))
        assert page.status_code == 200
        assert page.context["record"] == contact


def test_each_leads_page_shows_that_lead(
    ada_client: Client, organization: Organization, other_organization: Organization
):
    hana = Lead.objects.create(organization=organization, family_name="Yamada")
    ken = Lead.objects.create(organization=organization, family_name="Ito")
    Lead.objects.create(organization=other_organization, family_name="Sato")

    for lead in (hana, ken):
        page = ada_client.get(reverse("crm:lead-detail", args=[lead.pk]))
        assert page.status_code == 200
        assert page.context["record"] == lead


def invitation(organization: Organization, email: str, by: User | None = None) -> MemberInvitation:
    now = timezone.now()
    return MemberInvitation.objects.create(
        organization=organization,
        email=email,
        role=Role.STANDARD,
        token_hash=hash_token(email),
        invited_by=by,
        expires_at=now + datetime.timedelta(days=7),
    )


def test_withdrawing_an_invitation_withdraws_that_one_only(
    ada_client: Client, ada: User, organization: Organization, other_organization: Organization
):
    first = invitation(organization, "first@example.com", ada)
    second = invitation(organization, "second@example.com", ada)
    charlies = invitation(other_organization, "third@example.com")

    page = ada_client.post(reverse("crm:invitation-revoke", args=[second.pk]))

    assert page.status_code == 302
    assert sorted(MemberInvitation.objects.values_list("pk", flat=True)) == sorted(
        [first.pk, charlies.pk]
    )
