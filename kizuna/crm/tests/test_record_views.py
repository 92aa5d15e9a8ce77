"""Lead and contact pages, for every persona: Ada (admin), Bob (standard user of the
same organization), Charlie (another organization: 404) and a signed-out visitor."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, LeadStatus
from kizuna.crm.tests.conftest import make_contact, make_lead

pytestmark = pytest.mark.django_db

MEMBER_STATUS = {"ada": 200, "bob": 200, "charlie": 404}


def _record(module: str, lead: Lead, contact: Contact) -> Lead | Contact:
    return lead if module == "leads" else contact


def _singular(module: str) -> str:
    return "lead" if module == "leads" else "contact"


@pytest.mark.parametrize("module", ["leads", "contacts"])
@pytest.mark.parametrize("persona", ["ada", "bob", "charlie", "anonymous"])
@pytest.mark.parametrize("page", ["detail", "edit", "delete"])
def test_it_shows_record_pages_to_members_only(
    personas: dict[str, Client], lead: Lead, contact: Contact, module: str, persona: str, page: str
) -> None:
    record = _record(module, lead, contact)
    url = reverse(f"crm:{_singular(module)}-{page}", args=[record.pk])
    response = personas[persona].get(url)
    if persona == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("identity:login"))
    elif page == "delete" and persona == "bob":  # Ada's lead, nobody's contact
        assert response.status_code == 403
    else:
        assert response.status_code == MEMBER_STATUS[persona]


@pytest.mark.parametrize("module", ["leads", "contacts"])
@pytest.mark.parametrize("persona", ["ada", "bob", "charlie", "anonymous"])
def test_it_lists_only_the_current_organizations_records(
    personas: dict[str, Client], lead: Lead, contact: Contact, module: str, persona: str
) -> None:
    record = _record(module, lead, contact)
    response = personas[persona].get(reverse(f"crm:{_singular(module)}-list"))
    if persona == "anonymous":
        assert response.status_code == 302
        return
    assert response.status_code == 200
    names = [row.pk for row in response.context["page"].rows]
    assert names == ([] if persona == "charlie" else [record.pk])


@pytest.mark.parametrize("persona,expected", [("ada", 1), ("bob", 1), ("charlie", 1)])
def test_it_creates_a_lead_in_the_current_organization(
    personas: dict[str, Client], persona: str, expected: int
) -> None:
    client = personas[persona]
    response = client.post(
        reverse("crm:lead-create"),
        {
            "family_name": "山田",
            "given_name": "太郎",
            "company": "Yamada Shoji",
            "email": "taro@yamada.example",
            "status": LeadStatus.NEW,
            "lead_source": "web",
        },
    )
    lead = Lead.objects.get(family_name="山田")
    assert response.status_code == 302
    assert response["Location"] == reverse("crm:lead-detail", args=[lead.pk])
    user = response.wsgi_request.user
    assert (lead.created_by, lead.modified_by) == (user, user)
    assert lead.organization.memberships.filter(user=lead.created_by).exists()
    assert list(Activity.objects.filter(lead=lead).values_list("kind", flat=True)) == [
        ActivityKind.CREATED
    ]


def test_it_refuses_to_create_for_a_signed_out_visitor(anonymous_client: Client) -> None:
    response = anonymous_client.post(reverse("crm:lead-create"), {"family_name": "X"})
    assert response.status_code == 302
    assert Lead.objects.count() == 0


def test_it_keeps_what_was_typed_when_the_form_is_invalid(ada_client: Client) -> None:
    response = ada_client.post(
        reverse("crm:contact-create"), {"given_name": "Taro", "email": "not-an-email"}
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"family_name", "email"}
    assert 'value="Taro"' in response.content.decode()
    assert Contact.objects.count() == 0


def test_it_edits_and_notes_the_changed_fields_on_the_timeline(
    bob_client: Client, lead: Lead
) -> None:
    data = {
        "family_name": lead.family_name,
        "given_name": lead.given_name,
        "company": "Sakura Foods Holdings",
        "email": lead.email,
        "phone": "03-1234-5678",
        "status": LeadStatus.CONTACTED,
        "lead_source": "",
        "owner": lead.owner_id,
    }
    response = bob_client.post(reverse("crm:lead-edit", args=[lead.pk]), data)
    assert response.status_code == 302
    lead.refresh_from_db()
    assert (lead.company, lead.phone, lead.status) == (
        "Sakura Foods Holdings",
        "03-1234-5678",
        LeadStatus.CONTACTED,
    )
    assert lead.modified_by == response.wsgi_request.user
    edited = Activity.objects.get(lead=lead, kind=ActivityKind.EDITED)
    assert edited.data == {"fields": ["company", "phone", "status"]}
    page = bob_client.get(reverse("crm:lead-detail", args=[lead.pk])).content.decode()
    assert "Edited</strong>: company, phone, lead status" in page


def test_charlie_cannot_edit_a_lead_of_another_organization(
    charlie_client: Client, lead: Lead
) -> None:
    response = charlie_client.post(
        reverse("crm:lead-edit", args=[lead.pk]), {"family_name": "Hacked"}
    )
    assert response.status_code == 404
    lead.refresh_from_db()
    assert lead.family_name == "佐藤"


@pytest.mark.parametrize("persona,status", [("ada", 302), ("bob", 403), ("charlie", 404)])
def test_it_deletes_after_confirmation(
    personas: dict[str, Client], contact: Contact, persona: str, status: int
) -> None:
    response = personas[persona].post(reverse("crm:contact-delete", args=[contact.pk]))
    assert response.status_code == status
    assert Contact.objects.filter(pk=contact.pk).exists() is (status != 302)
    assert Activity.objects.filter(contact_id=contact.pk).exists() is (status != 302)


def test_detail_shows_fields_in_japanese_name_order(ada_client: Client, lead: Lead) -> None:
    english = ada_client.get(reverse("crm:lead-detail", args=[lead.pk]))
    assert "<h1>花子 佐藤</h1>" in english.content.decode()
    japanese = ada_client.get(reverse("crm:lead-detail", args=[lead.pk]), HTTP_ACCEPT_LANGUAGE="ja")
    content = japanese.content.decode()
    assert "<h1>佐藤 花子</h1>" in content
    assert "<h2>タイムライン</h2>" in content
    assert "<dt>リードのステータス</dt><dd>新規</dd>" in content


@pytest.mark.parametrize("persona,status", [("ada", 302), ("bob", 302), ("charlie", 404)])
def test_it_converts_a_lead_and_keeps_its_history(
    personas: dict[str, Client], lead: Lead, persona: str, status: int
) -> None:
    response = personas[persona].post(reverse("crm:lead-convert", args=[lead.pk]))
    assert response.status_code == status
    lead.refresh_from_db()
    if status == 404:
        assert lead.status == LeadStatus.NEW
        assert Contact.objects.count() == 0
        return
    contact = Contact.objects.get()
    assert response["Location"] == reverse("crm:contact-detail", args=[contact.pk])
    assert (lead.status, lead.converted_contact) == (LeadStatus.CONVERTED, contact)
    assert (contact.family_name, contact.given_name, contact.company, contact.owner) == (
        "佐藤",
        "花子",
        "Sakura Foods",
        lead.owner,
    )
    kinds = list(
        Activity.objects.filter(contact=contact).order_by("id").values_list("kind", flat=True)
    )
    assert kinds == [ActivityKind.CREATED, ActivityKind.CONVERTED]
    page = personas[persona].get(response["Location"]).content.decode()
    assert "Converted from the lead:" in page


def test_converting_twice_creates_one_contact(ada_client: Client, lead: Lead) -> None:
    ada_client.post(reverse("crm:lead-convert", args=[lead.pk]))
    response = ada_client.post(reverse("crm:lead-convert", args=[lead.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("crm:lead-detail", args=[lead.pk])
    assert Contact.objects.count() == 1


def test_timeline_of_a_converted_lead_follows_to_the_contact(
    ada_client: Client, organization: Any, ada_membership: Any
) -> None:
    lead = make_lead(organization, ada_membership.user, family_name="Ito")
    ada_client.post(reverse("crm:lead-convert", args=[lead.pk]))
    lead.refresh_from_db()
    from kizuna.crm import services

    services.record_activity(
        record=lead, kind=ActivityKind.EMAIL_SENT, actor=ada_membership.user, summary="Hello"
    )
    assert (
        Activity.objects.filter(
            contact=lead.converted_contact, kind=ActivityKind.EMAIL_SENT
        ).count()
        == 1
    )


def test_owner_choices_are_members_of_the_current_organization(
    ada_client: Client, bob_membership: Any, charlie_membership: Any
) -> None:
    response = ada_client.get(reverse("crm:lead-create"))
    owners = {str(choice[1]) for choice in response.context["form"].fields["owner"].choices}
    assert owners == {"(nobody)", "Ada Lovelace", "Bob Smith"}
    response = ada_client.post(
        reverse("crm:lead-create"),
        {"family_name": "Kato", "status": "new", "owner": charlie_membership.user.pk},
    )
    assert response.status_code == 200
    assert "owner" in response.context["form"].errors
    assert not Lead.objects.filter(family_name="Kato").exists()


def test_a_contact_page_lists_other_kinds_of_activities(
    ada_client: Client, organization: Any, ada_membership: Any
) -> None:
    contact = make_contact(organization, ada_membership.user, family_name="Mori")
    from kizuna.crm import services

    services.record_activity(
        record=contact,
        kind=ActivityKind.EMAIL_SENT,
        actor=ada_membership.user,
        summary="Spring offer",
    )
    page = ada_client.get(reverse("crm:contact-detail", args=[contact.pk])).content.decode()
    assert "Email sent</strong> — Spring offer" in page
