"""Bulk actions on the selected rows of a list: owner, status, delete (mail adds "Send email")."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm import extensions
from kizuna.crm.models import Activity, ActivityKind, Contact, Lead, LeadStatus, Organization
from kizuna.crm.tests.conftest import make_contact, make_lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_leads(organization: Organization, ada_membership: Any) -> list[Lead]:
    return [make_lead(organization, ada_membership.user, family_name=f"L{i}") for i in range(3)]


@pytest.mark.parametrize("persona", ["ada", "bob"])
def test_members_change_the_owner_of_selected_leads(
    personas: dict[str, Client], persona: str, three_leads: list[Lead], bob_membership: Any
) -> None:
    chosen = three_leads[:2]
    response = personas[persona].post(
        reverse("crm:lead-bulk") + "?status=new",
        {"action": "owner", "owner": bob_membership.user.pk, "ids": [lead.pk for lead in chosen]},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("crm:lead-list") + "?status=new"
    owners = dict(Lead.objects.values_list("family_name", "owner_id"))
    assert owners == {"L0": bob_membership.user.pk, "L1": bob_membership.user.pk, "L2": None}
    edited = Activity.objects.filter(kind=ActivityKind.EDITED).order_by("lead_id")
    assert [(a.lead_id, a.data) for a in edited] == [
        (chosen[0].pk, {"fields": ["owner"]}),
        (chosen[1].pk, {"fields": ["owner"]}),
    ]


def test_charlie_changes_nothing_in_another_organization(
    charlie_client: Client, charlie_membership: Any, three_leads: list[Lead]
) -> None:
    response = charlie_client.post(
        reverse("crm:lead-bulk"),
        {
            "action": "owner",
            "owner": charlie_membership.user.pk,
            "ids": [lead.pk for lead in three_leads],
        },
    )
    assert response.status_code == 404
    response = charlie_client.post(
        reverse("crm:lead-bulk"),
        {"action": "status", "status": "qualified", "ids": [lead.pk for lead in three_leads]},
    )
    assert response.status_code == 404
    assert set(Lead.objects.values_list("status", "owner")) == {(LeadStatus.NEW, None)}
    assert not Activity.objects.filter(kind=ActivityKind.EDITED).exists()


def test_signed_out_visitors_are_sent_to_sign_in(
    anonymous_client: Client, three_leads: list[Lead]
) -> None:
    response = anonymous_client.post(
        reverse("crm:lead-bulk"),
        {"action": "delete", "confirm": "yes", "ids": [lead.pk for lead in three_leads]},
    )
    assert response.status_code == 302
    assert Lead.objects.count() == 3


def test_status_change_leaves_converted_leads_alone(
    bob_client: Client, three_leads: list[Lead], ada_membership: Any
) -> None:
    from kizuna.crm import services

    services.convert_lead(lead=three_leads[0], by=ada_membership.user)
    response = bob_client.post(
        reverse("crm:lead-bulk"),
        {"action": "status", "status": "qualified", "ids": [lead.pk for lead in three_leads]},
    )
    assert response.status_code == 302
    assert dict(Lead.objects.values_list("family_name", "status")) == {
        "L0": LeadStatus.CONVERTED,
        "L1": LeadStatus.QUALIFIED,
        "L2": LeadStatus.QUALIFIED,
    }


def test_delete_asks_for_confirmation_first(ada_client: Client, three_leads: list[Lead]) -> None:
    ids = [three_leads[0].pk, three_leads[2].pk]
    response = ada_client.post(reverse("crm:lead-bulk"), {"action": "delete", "ids": ids})
    assert response.status_code == 200
    assert "Delete 2 records?" in response.content.decode()
    assert Lead.objects.count() == 3

    response = ada_client.post(
        reverse("crm:lead-bulk"),
        {"action": "delete", "confirm": "yes", "ids": ",".join(map(str, ids))},
    )
    assert response.status_code == 302
    assert list(Lead.objects.values_list("family_name", flat=True)) == ["L1"]
    assert set(Activity.objects.values_list("lead_id", flat=True)) == {three_leads[1].pk}


def test_delete_of_contacts_keeps_other_organizations_rows(
    charlie_client: Client, organization: Organization, ada_membership: Any, charlie_membership: Any
) -> None:
    mine = make_contact(
        charlie_membership.organization, charlie_membership.user, family_name="Mine"
    )
    theirs = make_contact(organization, ada_membership.user, family_name="Theirs")
    response = charlie_client.post(
        reverse("crm:contact-bulk"),
        {"action": "delete", "confirm": "yes", "ids": [mine.pk, theirs.pk]},
    )
    assert response.status_code == 302
    assert list(Contact.objects.values_list("family_name", flat=True)) == ["Theirs"]


def test_an_empty_selection_shows_the_list_again_with_an_error(
    ada_client: Client, three_leads: list[Lead]
) -> None:
    response = ada_client.post(reverse("crm:lead-bulk") + "?q=L", {"action": "owner"})
    assert response.status_code == 400
    content = response.content.decode()
    assert "Select at least one record." in content
    assert len(response.context["page"].rows) == 3


def test_a_missing_owner_keeps_the_selection(ada_client: Client, three_leads: list[Lead]) -> None:
    response = ada_client.post(
        reverse("crm:lead-bulk"), {"action": "owner", "owner": "", "ids": [three_leads[1].pk]}
    )
    assert response.status_code == 400
    assert "Choose the new owner." in response.content.decode()
    selected = [row.pk for row, is_selected in response.context["rows"] if is_selected]
    assert selected == [three_leads[1].pk]


def test_registered_bulk_actions_appear_as_buttons(
    ada_client: Client, three_leads: list[Lead], monkeypatch: Any
) -> None:
    monkeypatch.setattr(extensions, "_bulk_actions", [])
    extensions.register_bulk_action(
        extensions.BulkAction(
            key="tag",
            label="Tag them",
            url_name="crm:lead-list",
            is_available=lambda request, module: module == "leads",
        )
    )
    leads_page = ada_client.get(reverse("crm:lead-list")).content.decode()
    assert f'formaction="{reverse("crm:lead-list")}"' in leads_page
    assert "Tag them" in leads_page
    make_contact(three_leads[0].organization, None, family_name="C")
    assert "Tag them" not in ada_client.get(reverse("crm:contact-list")).content.decode()
