"""create_account and register_members, the services other Survey parts call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from kizuna.identity.mailbox import SENT_BY_HEADER
from kizuna.identity.models import User
from kizuna.survey.models import AccountMember, MemberRole, Portal, SurveyAccount
from kizuna.survey.services import (
    SurveyRuleError,
    change_member_role,
    create_account,
    register_members,
    remove_member,
)
from kizuna.testing.personas import client_for, make_user


@pytest.mark.django_db
def test_create_account_makes_the_owner_administrator_with_a_first_portal() -> None:
    owner = make_user("yui@example.com", language="ja")
    account = create_account(name="  Yui Lab ", owner=owner)
    assert account.name == "Yui Lab"
    assert list(account.members.values_list("user__email", "role")) == [
        ("yui@example.com", MemberRole.ADMINISTRATOR)
    ]
    assert list(Portal.objects.filter(account=account).values_list("name", flat=True)) == [
        "マイポータル"
    ]


@pytest.mark.django_db
def test_create_account_names_the_portal_in_english_for_an_english_user() -> None:
    owner = make_user("ed@example.com", language="en")
    account = create_account(name="Ed", owner=owner)
    assert account.portals.get().name == "My portal"


def test_register_members_adds_known_users_and_invites_unknown_emails(
    account: SurveyAccount, ada_user: User, bob_user: User
) -> None:
    result = register_members(
        account=account,
        emails=["BOB@example.com", "new.person@example.com", "ada@example.com", "bob@example.com"],
        by=ada_user,
    )
    assert result.registered == ["bob@example.com", "new.person@example.com"]
    assert result.existing == ["ada@example.com"]
    assert result.invitation_failed == []
    newcomer = User.objects.get(email="new.person@example.com")
    assert not newcomer.has_usable_password()
    assert set(account.members.values_list("user__email", "role")) == {
        ("ada@example.com", MemberRole.ADMINISTRATOR),
        ("bob@example.com", MemberRole.MEMBER),
        ("new.person@example.com", MemberRole.MEMBER),
    }
    # Only the unknown email gets an invitation, with a working password-set link.
    assert [m.to for m in mail.outbox] == [["new.person@example.com"]]
    assert "Ada's Surveys" in mail.outbox[0].subject
    link = next(line for line in mail.outbox[0].body.splitlines() if "/reset/" in line)
    path = link.split("://", 1)[1].split("/", 1)[1]
    response = Client().get("/" + path, follow=True)
    assert response.status_code == 200
    assert b'name="new_password1"' in response.content


def test_a_member_invitation_names_the_inviting_administrator_in_x_kizuna_sent_by(
    account: SurveyAccount, ada_user: User
) -> None:
    register_members(account=account, emails=["new.person@example.com"], by=ada_user)

    [invitation] = mail.outbox
    assert invitation.to == ["new.person@example.com"]
    assert invitation.extra_headers == {
        "X-Kizuna-Mail-Kind": "survey-member-invitation",
        SENT_BY_HEADER: "ada@example.com",
    }
    assert invitation.message()[SENT_BY_HEADER] == "ada@example.com"


def test_a_member_invitation_without_an_inviter_carries_no_sent_by_header(
    account: SurveyAccount,
) -> None:
    register_members(account=account, emails=["new.person@example.com"], by=None)

    [invitation] = mail.outbox
    assert invitation.to == ["new.person@example.com"]
    assert SENT_BY_HEADER not in invitation.message()


@pytest.mark.django_db
def test_the_inviting_administrator_finds_the_invitation_without_its_link_in_the_local_mailbox(
    account: SurveyAccount, ada_user: User, bob_user: User, settings: Any, tmp_path: Path
) -> None:
    settings.EMAIL_BACKEND = "kizuna.identity.mailbox.MailboxBackend"
    settings.KIZUNA_MAILBOX_DIR = tmp_path / "mailbox"

    register_members(account=account, emails=["new.person@example.com"], by=ada_user)

    ada_sees = client_for(ada_user).get(reverse("identity:mailbox"))
    bob_sees = client_for(bob_user).get(reverse("identity:mailbox"))
    assert [m["to"] for m in ada_sees.context["messages_list"]] == ["new.person@example.com"]
    [copy] = ada_sees.context["messages_list"]
    page = client_for(ada_user).get(reverse("identity:mailbox-message", args=[copy["name"]]))
    assert "/accounts/password/reset/" not in page.content.decode()
    assert "[link shown only to the recipient]" in page.content.decode()
    assert list(bob_sees.context["messages_list"]) == []


def test_register_members_again_reports_everyone_as_existing(
    account: SurveyAccount, ada_user: User
) -> None:
    register_members(account=account, emails=["x@example.com"], by=ada_user)
    again = register_members(account=account, emails=["x@example.com"], by=ada_user)
    assert (again.registered, again.existing) == ([], ["x@example.com"])
    assert len(mail.outbox) == 1


def test_register_members_with_an_invalid_email_writes_nothing(
    account: SurveyAccount, ada_user: User
) -> None:
    with pytest.raises(ValidationError) as caught:
        register_members(account=account, emails=["ok@example.com", "nope"], by=ada_user)
    assert caught.value.messages == ["These are not valid email addresses: nope"]
    assert not User.objects.filter(email="ok@example.com").exists()
    assert account.members.count() == 1
    assert mail.outbox == []


def test_the_last_administrator_cannot_be_demoted_or_removed(
    account: SurveyAccount, ada_user: User
) -> None:
    ada_member = AccountMember.objects.get(account=account, user=ada_user)
    with pytest.raises(SurveyRuleError):
        change_member_role(member=ada_member, role=MemberRole.MEMBER, by=ada_user)
    with pytest.raises(SurveyRuleError):
        remove_member(member=ada_member, by=ada_user)
    ada_member.refresh_from_db()
    assert ada_member.role == MemberRole.ADMINISTRATOR


def test_an_administrator_can_step_down_once_another_exists(
    account: SurveyAccount, ada_user: User, bob_member: AccountMember
) -> None:
    change_member_role(member=bob_member, role=MemberRole.ADMINISTRATOR, by=ada_user)
    ada_member = AccountMember.objects.get(account=account, user=ada_user)
    change_member_role(member=ada_member, role=MemberRole.MEMBER, by=ada_user)
    ada_member.refresh_from_db()
    assert ada_member.role == MemberRole.MEMBER
