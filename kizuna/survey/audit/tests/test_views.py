"""Settings > Audit log of a Survey account: its administrators read who did what, newest first,
filtered by action and person, in English and Japanese. A plain member gets 403, a user without
a Survey account 404, and Carol sees only her own account's entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.identity.models import User
from kizuna.survey import services
from kizuna.survey.audit.models import AuditAction, AuditEntry
from kizuna.survey.keys import services as key_services
from kizuna.survey.models import AccountMember, MemberRole, Portal, SurveyAccount

pytestmark = pytest.mark.django_db

LOG = reverse("survey:survey_audit:log")


@pytest.fixture
def history(
    account: SurveyAccount,
    ada_member: Any,
    bob_member: Any,
    portal: Portal,
    ada: User,
    carol_member: Any,
    carol_account: SurveyAccount,
    carol: User,
) -> None:
    """Ada regenerates her SC key and makes Bob an administrator, who renames a portal; Carol
    creates a portal in her own account; then Bob is a plain member again."""
    key_services.regenerate_key(member=ada_member, by=ada)
    services.change_member_role(member=bob_member, role=MemberRole.ADMINISTRATOR, by=ada)
    services.rename_portal(portal=portal, name="Clients", by=bob_member.user)
    services.create_portal(account=carol_account, name="Research", by=carol)
    AccountMember.objects.filter(pk=bob_member.pk).update(role=MemberRole.MEMBER)


def sentences(response: Any) -> list[str]:
    return [entry.sentence() for entry in response.context["entries"]]


def test_ada_reads_her_accounts_entries_newest_first(ada_client: Client, history: None) -> None:
    response = ada_client.get(LOG)
    assert response.status_code == 200
    assert sentences(response) == [
        "Bob Smith renamed the portal “Customers” to “Clients”.",
        "Ada Lovelace changed bob@example.com's role to Administrator.",
        "Ada Lovelace regenerated the SC key of ada@example.com: the old key no longer works.",
    ]
    assert "Research" not in response.content.decode()


def test_bob_a_plain_member_gets_403(bob_client: Client, history: None) -> None:
    response = bob_client.get(LOG)
    assert response.status_code == 403
    assert b"Clients" not in response.content


def test_carol_sees_only_her_own_accounts_entries(
    carol_client: Client, history: None, ada: User
) -> None:
    response = carol_client.get(LOG)
    assert sentences(response) == ["Carol Tanaka created the portal “Research”."]
    # Ada has no entry in Carol's account: asking for her is refused, nothing is shown.
    response = carol_client.get(LOG, {"person": ada.pk})
    assert response.status_code == 400
    assert response.context["entries"] == []


def test_a_user_without_a_survey_account_gets_404_and_visitors_sign_in(
    charlie_client: Client, client: Client, history: None
) -> None:
    assert charlie_client.get(LOG).status_code == 404
    response = client.get(LOG)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login"))


def test_filtering_by_action_and_by_person(
    ada_client: Client, history: None, ada: User, bob: User
) -> None:
    by_action = ada_client.get(LOG, {"action": AuditAction.SC_KEY_REGENERATED})
    assert sentences(by_action) == [
        "Ada Lovelace regenerated the SC key of ada@example.com: the old key no longer works."
    ]
    by_person = ada_client.get(LOG, {"person": bob.pk})
    assert sentences(by_person) == ["Bob Smith renamed the portal “Customers” to “Clients”."]
    both = ada_client.get(LOG, {"action": "portal.renamed", "person": str(ada.pk)})
    assert both.context["entries"] == []
    assert "Nothing matches these filters." in both.content.decode()


def test_the_log_in_japanese(ada_client: Client, history: None) -> None:
    AuditEntry.objects.update(created_at=datetime(2026, 12, 1, 9, 5, tzinfo=ZoneInfo("UTC")))
    page = ada_client.get(LOG, headers={"accept-language": "ja"}).content.decode()
    assert "<h1>監査ログ</h1>" in page
    assert "Bob Smith がポータル名を「Customers」から「Clients」に変更しました。" in page
    assert "Ada Lovelace が bob@example.com の権限を「管理者」に変更しました。" in page
    assert "SCキーの再生成" in page  # the action's label
    assert "2026/12/01 18:05" in page


def test_the_subnav_links_to_the_audit_log_for_administrators_only(
    ada_client: Client, bob_client: Client
) -> None:
    home = reverse("survey:home")
    assert f'<a href="{LOG}">Audit log</a>' in ada_client.get(home).content.decode()
    assert LOG not in bob_client.get(home).content.decode()
    current = ada_client.get(LOG).content.decode()
    assert f'<a href="{LOG}" aria-current="page">Audit log</a>' in current


# Changes made through the pages: the signed-in administrator is the actor.


def test_creating_a_portal_on_its_page_is_recorded(
    ada_client: Client, account: SurveyAccount, ada: User
) -> None:
    response = ada_client.post(reverse("survey:portals"), {"name": "Events"})
    assert response.status_code == 302
    entry = AuditEntry.objects.get()
    portal = Portal.objects.get(account=account, name="Events")
    assert (entry.account, entry.action, entry.actor, entry.target_id) == (
        account,
        AuditAction.PORTAL_CREATED,
        ada,
        portal.pk,
    )


def test_regenerating_the_sc_key_on_its_page_is_recorded_and_bob_cannot(
    ada_client: Client, bob_client: Client, ada_member: Any, ada: User
) -> None:
    url = reverse("survey:survey_keys:regenerate")
    assert bob_client.post(url).status_code == 403
    assert AuditEntry.objects.count() == 0
    assert ada_client.post(url).status_code == 302
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.target_id) == (
        AuditAction.SC_KEY_REGENERATED,
        ada,
        ada_member.pk,
    )
