"""Settings > Audit log: administrators read who did what, newest first, filtered by action and
person, in English and Japanese; Bob gets 403, Charlie sees only his own organization's entries.
Changes made through the pages and the API are recorded with the signed-in user as actor."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm import services
from kizuna.crm.api.services import create_api_token
from kizuna.crm.audit.models import AuditAction, AuditEntry
from kizuna.crm.audit.services import record
from kizuna.crm.models import Lead, Membership, Organization, Role
from kizuna.identity.models import User
from kizuna.lib.audit import ENTRIES_PER_PAGE

pytestmark = pytest.mark.django_db

LOG = reverse("crm_audit:log")


@pytest.fixture
def history(
    ada: User,
    ada_membership: Membership,
    bob: User,
    bob_membership: Membership,
    organization: Organization,
    charlie: User,
    charlie_membership: Membership,
    other_organization: Organization,
) -> None:
    """Ada renames the organization, Bob deletes his lead; Charlie renames his own organization."""
    services.rename_organization(organization=organization, name="Kizuna KK", by=ada)
    lead = services.create_lead(
        organization=organization, by=bob, values={"family_name": "Sato", "owner": bob}
    )
    services.delete_records(organization=organization, module="leads", ids=[lead.pk], by=bob)
    services.rename_organization(organization=other_organization, name="Sato KK", by=charlie)


def sentences(response: Any) -> list[str]:
    return [entry.sentence() for entry in response.context["entries"]]


@pytest.mark.parametrize("persona,status", [("ada", 200), ("bob", 403), ("charlie", 200)])
def test_the_audit_log_is_for_administrators(
    personas: dict[str, Client], history: None, persona: str, status: int
) -> None:
    response = personas[persona].get(LOG)
    assert response.status_code == status
    if persona == "bob":
        assert b"Kizuna KK" not in response.content


def test_signed_out_visitors_are_sent_to_sign_in(anonymous_client: Client) -> None:
    response = anonymous_client.get(LOG)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login"))


def test_ada_reads_her_organizations_entries_newest_first_as_sentences(
    ada_client: Client, history: None
) -> None:
    response = ada_client.get(LOG)
    assert sentences(response) == [
        "Bob Smith deleted the lead “Sato”.",
        "Ada Lovelace renamed the organization from “Kizuna Demo” to “Kizuna KK”.",
    ]
    page = response.content.decode()
    assert "Ada Lovelace renamed the organization from “Kizuna Demo” to “Kizuna KK”." in page
    assert "Sato KK" not in page


@pytest.mark.usefixtures("ada_membership")
def test_charlie_sees_only_his_own_organizations_entries(
    charlie_client: Client, history: None, ada: User
) -> None:
    response = charlie_client.get(LOG)
    assert sentences(response) == [
        "Charlie Sato renamed the organization from “Sato Trading” to “Sato KK”."
    ]
    assert "Bob Smith" not in response.content.decode()
    # Ada has no entry in his organization: she is no choice there, and asking for her is refused.
    response = charlie_client.get(LOG, {"person": ada.pk})
    assert response.status_code == 400
    assert response.context["entries"] == []


@pytest.mark.usefixtures("bob_membership")
def test_filtering_by_action_and_by_person(ada_client: Client, history: None, bob: User) -> None:
    by_action = ada_client.get(LOG, {"action": AuditAction.ORGANIZATION_RENAMED})
    assert sentences(by_action) == [
        "Ada Lovelace renamed the organization from “Kizuna Demo” to “Kizuna KK”."
    ]

    by_person = ada_client.get(LOG, {"person": bob.pk})
    assert sentences(by_person) == ["Bob Smith deleted the lead “Sato”."]
    choices = [label for _value, label in by_person.context["form"].fields["person"].choices]
    assert choices == ["Everyone", "Ada Lovelace", "Bob Smith"]

    nothing = ada_client.get(LOG, {"action": "import.started", "person": str(bob.pk)})
    assert nothing.status_code == 200
    assert "Nothing matches these filters." in nothing.content.decode()


def test_an_unknown_action_is_a_clear_error_not_a_crash(ada_client: Client, history: None) -> None:
    response = ada_client.get(LOG, {"action": "members.exploded"})
    assert response.status_code == 400
    assert "These filters are not valid here: choose from the lists." in response.content.decode()


def test_the_log_in_japanese(
    ada: User, ada_client: Client, bob_membership: Membership, history: None
) -> None:
    services.change_role(membership=bob_membership, role=Role.ADMINISTRATOR, by=ada)
    AuditEntry.objects.update(created_at=datetime(2026, 12, 1, 9, 5, tzinfo=ZoneInfo("UTC")))
    response = ada_client.get(LOG, headers={"accept-language": "ja"})
    page = response.content.decode()
    assert "<h2>監査ログ</h2>" in page
    assert "Ada Lovelace が組織名を「Kizuna Demo」から「Kizuna KK」に変更しました。" in page
    assert "Ada Lovelace が Bob Smith の権限を「管理者」に変更しました。" in page
    assert "Bob Smith がリード「Sato」を削除しました。" in page
    assert "メンバーの権限の変更" in page  # the action's label
    assert "2026/12/01 18:05" in page  # Tokyo time, Japanese format
    assert (
        "12/01/2026 6:05 PM"
        in ada_client.get(LOG, headers={"accept-language": "en"}).content.decode()
    )


def test_older_entries_are_on_the_next_pages_with_the_filters_kept(
    ada: User, ada_client: Client, organization: Organization
) -> None:
    for number in range(ENTRIES_PER_PAGE + 2):
        record(
            organization=organization,
            actor=ada,
            action=AuditAction.ORGANIZATION_RENAMED,
            data={"old": f"Name {number}", "new": f"Name {number + 1}"},
        )
    first = ada_client.get(LOG, {"action": AuditAction.ORGANIZATION_RENAMED})
    assert len(first.context["entries"]) == ENTRIES_PER_PAGE
    assert first.context["entries"][0].data["old"] == f"Name {ENTRIES_PER_PAGE + 1}"
    older = first.context["older_query"]
    assert "action=organization.renamed" in older

    second = ada_client.get(f"{LOG}?{older}")
    assert [entry.data["old"] for entry in second.context["entries"]] == ["Name 1", "Name 0"]
    assert second.context["older_query"] == ""
    assert 'href="?action=organization.renamed">Newest</a>' in second.content.decode()


def test_the_settings_tabs_link_to_the_audit_log(ada_client: Client) -> None:
    page = ada_client.get(reverse("crm:settings")).content.decode()
    assert f'<a href="{LOG}">Audit log</a>' in page
    assert (
        f'<a href="{LOG}" aria-current="page">Audit log</a>' in ada_client.get(LOG).content.decode()
    )


# Changes made through the pages and the API: the signed-in user is the actor.


def test_a_role_change_on_the_members_page_is_recorded_once(
    ada: User, ada_client: Client, bob_membership: Membership
) -> None:
    ada_client.post(
        reverse("crm:member-role", args=[bob_membership.pk]),
        {f"m{bob_membership.pk}-role": Role.ADMINISTRATOR},
    )
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.target_id) == (
        AuditAction.MEMBER_ROLE_CHANGED,
        ada,
        bob_membership.pk,
    )


def test_bob_cannot_change_a_role_and_nothing_is_recorded(
    bob_client: Client, ada_membership: Membership
) -> None:
    response = bob_client.post(
        reverse("crm:member-role", args=[ada_membership.pk]),
        {f"m{ada_membership.pk}-role": Role.STANDARD},
    )
    assert response.status_code == 403
    assert AuditEntry.objects.count() == 0


def test_a_bulk_delete_from_the_list_is_one_entry(
    ada: User, ada_client: Client, organization: Organization
) -> None:
    leads = [
        services.create_lead(organization=organization, by=ada, values={"family_name": name})
        for name in ("Sato", "Suzuki", "Ito")
    ]
    ids = [lead.pk for lead in leads]
    response = ada_client.post(
        reverse("crm:lead-bulk"), {"action": "delete", "ids": ids, "confirm": "yes"}
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.data) == (
        AuditAction.RECORDS_DELETED,
        ada,
        {"module": "leads", "count": 3, "ids": ids},
    )


@pytest.mark.usefixtures("bob_membership")
def test_a_delete_through_the_api_names_the_token_owner(
    bob: User, organization: Organization
) -> None:
    lead = services.create_lead(
        organization=organization, by=bob, values={"family_name": "Sato", "owner": bob}
    )
    token = create_api_token(user=bob, organization=organization, name="script")[1]
    response = Client().delete(
        f"/crm/api/v1/leads/{lead.pk}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 204
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.target_id, entry.target_repr) == (
        AuditAction.RECORDS_DELETED,
        bob,
        lead.pk,
        "Sato",
    )
    assert not Lead.objects.filter(pk=lead.pk).exists()
