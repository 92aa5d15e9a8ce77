"""The Survey side of the personas (kizuna/testing/personas.py): the accounts and members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.utils import translation

if TYPE_CHECKING:
    from kizuna.identity.models import User
    from kizuna.survey.models import AccountMember, Portal, SurveyAccount


def add_member(account: SurveyAccount, user: User, role: str) -> AccountMember:
    """`user` in `account` with `role`; the membership they already have there otherwise."""
    from kizuna.survey.models import AccountMember

    member, _ = AccountMember.objects.get_or_create(
        account=account, user=user, defaults={"role": role}
    )
    return member


@pytest.fixture
def account(ada: User) -> SurveyAccount:
    """Ada's account "Ada's Surveys", with its first portal."""
    from kizuna.survey.services import create_account

    with translation.override("en"):  # users without a language get the active one's portal name
        return create_account(name="Ada's Surveys", owner=ada)


@pytest.fixture
def portal(account: SurveyAccount) -> Portal:
    return account.portals.get()


@pytest.fixture
def carol_account(carol: User) -> SurveyAccount:
    """Carol's account "Carol's Research": another account, outside Ada's."""
    from kizuna.survey.services import create_account

    with translation.override("en"):
        return create_account(name="Carol's Research", owner=carol)


@pytest.fixture
def ada_member(account: SurveyAccount, ada: User) -> AccountMember:
    """Ada administers `account`."""
    from kizuna.survey.models import MemberRole

    return add_member(account, ada, MemberRole.ADMINISTRATOR)


@pytest.fixture
def bob_member(account: SurveyAccount, bob: User) -> AccountMember:
    """Bob is a plain member of `account`."""
    from kizuna.survey.models import MemberRole

    return add_member(account, bob, MemberRole.MEMBER)


@pytest.fixture
def carol_member(carol_account: SurveyAccount, carol: User) -> AccountMember:
    """Carol administers `carol_account`."""
    from kizuna.survey.models import MemberRole

    return add_member(carol_account, carol, MemberRole.ADMINISTRATOR)


def sc_headers(member: AccountMember) -> dict[str, Any]:
    """Test client headers authenticating as `member` with their SC key (created if needed)."""
    from kizuna.survey.keys.services import get_or_create_key

    key = get_or_create_key(member=member)
    return {"HTTP_X_SC_EMAIL": member.user.email, "HTTP_X_SC_KEY": key.reveal()}


@pytest.fixture
def ada_sc_headers(ada_member: AccountMember) -> dict[str, Any]:
    return sc_headers(ada_member)


@pytest.fixture
def carol_sc_headers(carol_member: AccountMember) -> dict[str, Any]:
    return sc_headers(carol_member)
