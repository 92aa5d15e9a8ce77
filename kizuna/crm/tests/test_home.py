"""The CRM home (dashboard), creating organizations and switching between them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.models import Lead, Membership, Organization, Role
from kizuna.crm.tests.conftest import make_lead
from kizuna.testing.personas import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "persona,organization_name",
    [("ada", "Kizuna Demo"), ("bob", "Kizuna Demo"), ("charlie", "Sato Trading")],
)
def test_the_dashboard_counts_the_current_organizations_records(
    personas: dict[str, Client], lead: Lead, persona: str, organization_name: str
) -> None:
    response = personas[persona].get(reverse("crm:home"))
    assert response.status_code == 200
    assert response.context["organization"].name == organization_name
    expected = 1 if organization_name == "Kizuna Demo" else 0
    assert response.context["lead_count"] == (expected, False)
    assert [lead.pk for lead in response.context["recent_leads"]] == ([lead.pk] if expected else [])


def test_signed_out_visitors_are_sent_to_sign_in(anonymous_client: Client) -> None:
    response = anonymous_client.get(reverse("crm:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login"))


def test_a_user_without_organization_is_offered_to_create_one(
    user_client: Client, user: Any
) -> None:
    response = user_client.get(reverse("crm:home"))
    assert response.status_code == 200
    assert "You are not a member of any organization yet." in response.content.decode()
    assert user_client.get(reverse("crm:lead-list")).status_code == 404

    response = user_client.post(reverse("crm:organization-create"), {"name": "Pat & Co"})
    assert response.status_code == 302
    membership = Membership.objects.get(user=user)
    assert (membership.organization.name, membership.role) == ("Pat & Co", Role.ADMINISTRATOR)
    assert user_client.get(reverse("crm:settings")).status_code == 200


def test_an_empty_organization_name_is_an_error(user_client: Client) -> None:
    response = user_client.post(reverse("crm:organization-create"), {"name": ""})
    assert response.status_code == 200
    assert response.context["form"].errors == {"name": ["This field is required."]}
    assert Organization.objects.count() == 0


def test_a_member_of_two_organizations_switches_from_the_header(
    ada_membership: Membership, other_organization: Organization, organization: Organization
) -> None:
    Membership.objects.create(
        organization=other_organization, user=ada_membership.user, role=Role.STANDARD
    )
    theirs = make_lead(other_organization, ada_membership.user, family_name="Theirs")
    client = client_for(ada_membership.user)

    home = client.get(reverse("crm:home"))
    content = home.content.decode()
    assert 'name="organization"' in content
    assert ">Sato Trading</option>" in content
    assert home.context["organization"] == organization
    assert client.get(reverse("crm:lead-detail", args=[theirs.pk])).status_code == 404

    response = client.post(
        reverse("crm:organization-switch"), {"organization": other_organization.pk}
    )
    assert response.status_code == 302
    assert client.get(reverse("crm:home")).context["organization"] == other_organization
    assert client.get(reverse("crm:lead-detail", args=[theirs.pk])).status_code == 200
    # Ada is a standard user there: no settings.
    assert client.get(reverse("crm:settings")).status_code == 403


def test_switching_to_an_organization_one_is_not_in_is_404(
    charlie_client: Client, organization: Organization, charlie_membership: Membership
) -> None:
    response = charlie_client.post(
        reverse("crm:organization-switch"), {"organization": organization.pk}
    )
    assert response.status_code == 404
    assert (
        charlie_client.get(reverse("crm:home")).context["organization"]
        == charlie_membership.organization
    )


@pytest.mark.parametrize("value", ["", "abc"])
def test_switching_needs_an_organization_id(ada_client: Client, value: str) -> None:
    assert (
        ada_client.post(reverse("crm:organization-switch"), {"organization": value}).status_code
        == 404
    )


def test_a_member_of_one_organization_sees_its_name_not_a_switcher(ada_client: Client) -> None:
    content = ada_client.get(reverse("crm:home")).content.decode()
    assert 'name="organization"' not in content
    assert '<span class="organization-name" title="Organization">Kizuna Demo</span>' in content


def test_switching_is_post_only(ada_client: Client, organization: Organization) -> None:
    response = ada_client.get(reverse("crm:organization-switch"), {"organization": organization.pk})
    assert response.status_code == 405
