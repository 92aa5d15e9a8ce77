"""create_account and the member rules, services other Survey parts call (invitations:
test_member_invitations.py)."""

from __future__ import annotations

import pytest

from kizuna.identity.models import User
from kizuna.survey.models import AccountMember, MemberRole, Portal, SurveyAccount
from kizuna.survey.services import (
    SurveyRuleError,
    change_member_role,
    create_account,
    remove_member,
)
from kizuna.testing.personas import make_user


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


def test_the_last_administrator_cannot_be_demoted_or_removed(
    account: SurveyAccount, ada: User
) -> None:
    ada_member = AccountMember.objects.get(account=account, user=ada)
    with pytest.raises(SurveyRuleError):
        change_member_role(member=ada_member, role=MemberRole.MEMBER, by=ada)
    with pytest.raises(SurveyRuleError):
        remove_member(member=ada_member, by=ada)
    ada_member.refresh_from_db()
    assert ada_member.role == MemberRole.ADMINISTRATOR


def test_an_administrator_can_step_down_once_another_exists(
    account: SurveyAccount, ada: User, bob_member: AccountMember
) -> None:
    change_member_role(member=bob_member, role=MemberRole.ADMINISTRATOR, by=ada)
    ada_member = AccountMember.objects.get(account=account, user=ada)
    change_member_role(member=ada_member, role=MemberRole.MEMBER, by=ada)
    ada_member.refresh_from_db()
    assert ada_member.role == MemberRole.MEMBER
