"""Member changes racing each other on PostgreSQL: the account always keeps an administrator."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core import mail

from kizuna.identity.models import User
from kizuna.survey.models import AccountMember, MemberRole, SurveyAccount
from kizuna.survey.services import SurveyRuleError, change_member_role, invite_members
from kizuna.testing.races import require_postgresql, run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_administrators_demoting_each_other_at_once_leave_one_administrator(
    account: SurveyAccount, ada: User, bob_member: AccountMember
) -> None:
    require_postgresql()
    bob_member.role = MemberRole.ADMINISTRATOR
    bob_member.save(update_fields=["role"])
    ada_member = AccountMember.objects.get(account=account, user=ada)

    def demote(member_pk: int) -> Callable[[], None]:
        def action() -> None:
            member = AccountMember.objects.select_related("account").get(pk=member_pk)
            change_member_role(member=member, role=MemberRole.MEMBER, by=ada)

        return action

    errors = run_together(demote(ada_member.pk), demote(bob_member.pk))

    assert [type(error) for error in errors] == [SurveyRuleError]
    assert account.members.filter(role=MemberRole.ADMINISTRATOR).count() == 1


def test_inviting_the_same_address_three_times_at_once_makes_one_invitation_and_one_email(
    account: SurveyAccount, ada: User
) -> None:
    require_postgresql("needs PostgreSQL unique constraints under concurrency")
    statuses: list[str] = []

    def invite() -> None:
        [outcome] = invite_members(account=account, emails=["twice@example.com"], by=ada)
        statuses.append(str(outcome.status))

    errors = run_together(invite, invite, invite)

    assert errors == []
    assert sorted(statuses) == ["already_invited", "already_invited", "invited"]
    assert account.member_invitations.filter(email="twice@example.com").count() == 1
    assert [m.to for m in mail.outbox] == [["twice@example.com"]]
    assert not account.members.filter(user__email="twice@example.com").exists()
