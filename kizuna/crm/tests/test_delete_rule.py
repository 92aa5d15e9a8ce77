"""The delete rule (Membership.may_delete): administrators delete any lead or contact of
their organization, a standard member only the records they own. The same rule holds on
the record's delete page, in the list's bulk delete and in the API (api/tests)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.models import Activity, Contact, Lead, Membership, Organization
from kizuna.crm.tests.conftest import make_contact, make_lead

pytestmark = pytest.mark.django_db

DENIED = "Only administrators and the record&#x27;s owner can delete it."


@pytest.fixture
def adas_lead(organization: Organization, ada_membership: Membership) -> Lead:
    return make_lead(
        organization, ada_membership.user, family_name="Ada's", owner=ada_membership.user
    )


@pytest.fixture
def bobs_lead(organization: Organization, bob_membership: Membership) -> Lead:
    return make_lead(
        organization, bob_membership.user, family_name="Bob's", owner=bob_membership.user
    )


@pytest.fixture
def unowned_contact(organization: Organization, ada_membership: Membership) -> Contact:
    return make_contact(organization, ada_membership.user, family_name="Nobody's")


def _lead_names() -> list[str]:
    return sorted(Lead.objects.values_list("family_name", flat=True))


# One record's delete page


@pytest.mark.parametrize("record", ["adas_lead", "bobs_lead"])
def test_delete_rule_administrators_delete_any_record(
    ada_client: Client, request: pytest.FixtureRequest, record: str
) -> None:
    lead = request.getfixturevalue(record)
    assert ada_client.get(reverse("crm:lead-delete", args=[lead.pk])).status_code == 200
    response = ada_client.post(reverse("crm:lead-delete", args=[lead.pk]))
    assert response.status_code == 302
    assert not Lead.objects.filter(pk=lead.pk).exists()
    assert not Activity.objects.filter(lead_id=lead.pk).exists()


def test_delete_rule_administrators_delete_records_without_owner(
    ada_client: Client, unowned_contact: Contact
) -> None:
    response = ada_client.post(reverse("crm:contact-delete", args=[unowned_contact.pk]))
    assert response.status_code == 302
    assert not Contact.objects.exists()


def test_delete_rule_standard_members_delete_their_own_records(
    bob_client: Client, bobs_lead: Lead, adas_lead: Lead
) -> None:
    response = bob_client.post(reverse("crm:lead-delete", args=[bobs_lead.pk]))
    assert response.status_code == 302
    assert _lead_names() == ["Ada's"]


@pytest.mark.parametrize("method", ["get", "post"])
def test_delete_rule_standard_members_get_403_on_other_peoples_records(
    bob_client: Client, adas_lead: Lead, unowned_contact: Contact, method: str
) -> None:
    for url in (
        reverse("crm:lead-delete", args=[adas_lead.pk]),
        reverse("crm:contact-delete", args=[unowned_contact.pk]),
    ):
        response = getattr(bob_client, method)(url)
        assert response.status_code == 403
        assert DENIED in response.content.decode()
    assert _lead_names() == ["Ada's"]
    assert list(Contact.objects.values_list("family_name", flat=True)) == ["Nobody's"]
    assert Activity.objects.filter(lead_id=adas_lead.pk).count() == 1


def test_delete_rule_refusal_is_translated(bob_client: Client, adas_lead: Lead) -> None:
    response = bob_client.post(
        reverse("crm:lead-delete", args=[adas_lead.pk]), HTTP_ACCEPT_LANGUAGE="ja"
    )
    assert response.status_code == 403
    assert "削除できるのは管理者とデータの所有者だけです。" in response.content.decode()


def test_delete_rule_other_organizations_get_404(charlie_client: Client, adas_lead: Lead) -> None:
    url = reverse("crm:lead-delete", args=[adas_lead.pk])
    assert charlie_client.get(url).status_code == 404
    assert charlie_client.post(url).status_code == 404
    assert _lead_names() == ["Ada's"]


def test_delete_rule_signed_out_visitors_are_sent_to_sign_in(
    anonymous_client: Client, adas_lead: Lead
) -> None:
    response = anonymous_client.post(reverse("crm:lead-delete", args=[adas_lead.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login"))
    assert _lead_names() == ["Ada's"]


@pytest.mark.parametrize(
    "persona,record,shown",
    [
        ("ada", "adas_lead", True),
        ("ada", "bobs_lead", True),
        ("bob", "bobs_lead", True),
        ("bob", "adas_lead", False),
    ],
)
def test_delete_rule_detail_page_shows_delete_only_when_allowed(
    personas: dict[str, Client],
    request: pytest.FixtureRequest,
    persona: str,
    record: str,
    shown: bool,
) -> None:
    lead = request.getfixturevalue(record)
    content = personas[persona].get(reverse("crm:lead-detail", args=[lead.pk])).content.decode()
    assert (f'href="{reverse("crm:lead-delete", args=[lead.pk])}"' in content) is shown


# Bulk delete


def _bulk_delete(client: Client, ids: list[int], *, confirm: bool, **headers: Any) -> Any:
    data = {"action": "delete", "ids": ",".join(map(str, ids))}
    if confirm:
        data["confirm"] = "yes"
    return client.post(reverse("crm:lead-bulk"), data, **headers)


def test_delete_rule_bulk_administrators_delete_every_selected_record(
    ada_client: Client, adas_lead: Lead, bobs_lead: Lead
) -> None:
    response = _bulk_delete(ada_client, [adas_lead.pk, bobs_lead.pk], confirm=True)
    assert response.status_code == 302
    assert _lead_names() == []


def test_delete_rule_bulk_standard_members_delete_only_their_own_and_are_told(
    bob_client: Client, adas_lead: Lead, bobs_lead: Lead
) -> None:
    ids = [adas_lead.pk, bobs_lead.pk]
    confirm_page = _bulk_delete(bob_client, ids, confirm=False)
    assert confirm_page.status_code == 200
    content = confirm_page.content.decode()
    assert "Delete 1 record?" in content
    assert "1 selected record is left: only administrators and its owner can delete it." in (
        content
    )
    assert [record.pk for record in confirm_page.context["records"]] == [bobs_lead.pk]

    response = _bulk_delete(bob_client, ids, confirm=True)
    assert response.status_code == 302
    assert _lead_names() == ["Ada's"]
    page = bob_client.get(response["Location"]).content.decode()
    assert "1 record was deleted." in page
    assert "1 selected record was left: only administrators and its owner can delete it." in page


def test_delete_rule_bulk_tells_in_japanese_how_many_were_left(
    bob_client: Client, organization: Organization, ada_membership: Membership, bobs_lead: Lead
) -> None:
    others = [
        make_lead(organization, ada_membership.user, family_name=f"A{i}", owner=ada_membership.user)
        for i in (1, 2)
    ]
    ids = [bobs_lead.pk, *(lead.pk for lead in others)]
    response = _bulk_delete(bob_client, ids, confirm=True, HTTP_ACCEPT_LANGUAGE="ja")
    assert response.status_code == 302
    page = bob_client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "選択した2件のデータは削除されませんでした" in page
    assert _lead_names() == ["A1", "A2"]


@pytest.mark.parametrize("confirm", [False, True])
def test_delete_rule_bulk_with_nothing_allowed_deletes_nothing(
    bob_client: Client, adas_lead: Lead, confirm: bool
) -> None:
    response = _bulk_delete(bob_client, [adas_lead.pk], confirm=confirm)
    assert response.status_code == 403
    assert DENIED in response.content.decode()
    selected = [row.pk for row, is_selected in response.context["rows"] if is_selected]
    assert selected == [adas_lead.pk]
    assert _lead_names() == ["Ada's"]


def test_delete_rule_bulk_other_organizations_get_404(
    charlie_client: Client, adas_lead: Lead
) -> None:
    assert _bulk_delete(charlie_client, [adas_lead.pk], confirm=True).status_code == 404
    assert _lead_names() == ["Ada's"]


def test_delete_rule_bulk_signed_out_visitors_are_sent_to_sign_in(
    anonymous_client: Client, adas_lead: Lead
) -> None:
    response = _bulk_delete(anonymous_client, [adas_lead.pk], confirm=True)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login"))
    assert _lead_names() == ["Ada's"]
