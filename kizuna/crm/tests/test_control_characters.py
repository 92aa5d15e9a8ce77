"""Issue 9.8: names go into email headers, so a line break or another control character
in a name is refused where it is typed (pages here; the API and CSV import in their apps)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm import services
from kizuna.crm.models import Contact, Lead, LeadStatus, Membership, Organization, Role
from kizuna.identity.models import User

pytestmark = pytest.mark.django_db

HEADER_INJECTION = "X\r\nBcc: victim@example.com"


def refused(character: str) -> str:
    return f"Line breaks and other control characters are not allowed here (found {character})."


@pytest.fixture
def others(organization: Organization, other_organization: Organization) -> None:
    """Records of both organizations that must stay as they are."""
    Lead.objects.create(organization=organization, family_name="Kept")
    Lead.objects.create(organization=other_organization, family_name="Elsewhere")


def test_a_lead_named_with_a_header_injection_is_refused_and_nothing_saved(
    ada_client: Client, others: None
) -> None:
    response = ada_client.post(
        reverse("crm:lead-create"),
        {"family_name": HEADER_INJECTION, "given_name": "Ada", "status": LeadStatus.NEW},
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"family_name": [refused("U+000D")]}
    assert sorted(Lead.objects.values_list("family_name", flat=True)) == ["Elsewhere", "Kept"]


@pytest.mark.parametrize(
    ("field", "value", "character"),
    [
        ("given_name", "Grace\x01", "U+0001"),
        ("company", "ACME\x7f", "U+007F"),
        ("department", "Sales\u0085Bcc: x@example.com", "U+0085"),
        ("title", "Head\u2028of sales", "U+2028"),
        ("street", "1-2-3\nGinza", "U+000A"),
    ],
)
def test_every_single_line_field_of_a_contact_refuses_control_characters(
    ada_client: Client, others: None, field: str, value: str, character: str
) -> None:
    response = ada_client.post(
        reverse("crm:contact-create"), {"family_name": "Hopper", field: value}
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [refused(character)]}
    assert Contact.objects.count() == 0


def test_a_description_keeps_its_line_breaks_but_not_other_control_characters(
    ada_client: Client,
) -> None:
    url = reverse("crm:contact-create")
    refused_page = ada_client.post(url, {"family_name": "Hopper", "description": "a\x1bb"})
    accepted = ada_client.post(url, {"family_name": "Hopper", "description": "one\r\n\ttwo"})

    assert refused_page.context["form"].errors == {
        "description": ["Control characters are not allowed here (found U+001B)."]
    }
    assert accepted.status_code == 302
    assert Contact.objects.get().description == "one\r\n\ttwo"


def test_editing_a_lead_into_a_header_injection_is_refused_and_the_lead_unchanged(
    ada_client: Client, lead: Lead
) -> None:
    response = ada_client.post(
        reverse("crm:lead-edit", args=[lead.pk]),
        {"family_name": lead.family_name, "given_name": HEADER_INJECTION, "status": lead.status},
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"given_name": [refused("U+000D")]}
    lead.refresh_from_db()
    assert lead.given_name == "花子"


def test_the_messages_are_in_japanese_for_a_japanese_user(
    ada_client: Client, ada_membership: Membership
) -> None:
    ada_membership.user.language = "ja"
    ada_membership.user.save(update_fields=["language"])

    response = ada_client.post(
        reverse("crm:lead-create"), {"family_name": HEADER_INJECTION, "status": LeadStatus.NEW}
    )

    assert response.context["form"].errors["family_name"] == [
        "ここには改行やその他の制御文字を入力できません（U+000D が含まれています）。"
    ]


def test_an_organization_name_with_a_line_break_is_refused(
    ada_client: Client, organization: Organization
) -> None:
    response = ada_client.post(reverse("crm:settings"), {"name": "Kizuna\nBcc: x@example.com"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"name": [refused("U+000A")]}
    organization.refresh_from_db()
    assert organization.name == "Kizuna Demo"


def test_joining_by_invitation_with_a_line_break_in_the_name_creates_no_account(
    ada_membership: Membership,
) -> None:
    _invitation, token = services.invite_member(
        organization=ada_membership.organization,
        email="new@example.com",
        role=Role.STANDARD,
        by=ada_membership.user,
    )

    response = Client().post(
        reverse("crm:invitation", args=[token]),
        {
            "full_name": "Nana\r\nBcc: x@example.com",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )

    assert response.status_code == 400
    assert response.context["account_form"].errors == {"full_name": [refused("U+000D")]}
    assert not User.objects.filter(email="new@example.com").exists()
