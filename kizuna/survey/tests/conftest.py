"""Survey personas: Ada administers "Ada's Surveys", Bob is a plain member of it, Carol is an
outsider with her own account, and an anonymous client is signed out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.test import Client
from django.utils import translation

from kizuna.testing.personas import client_for

if TYPE_CHECKING:
    from kizuna.identity.models import User
    from kizuna.survey.models import AccountMember, Portal, Survey, SurveyAccount


@pytest.fixture
def account(ada_user: User) -> SurveyAccount:
    from kizuna.survey.services import create_account

    with translation.override("en"):  # users without a language get the active one's portal name
        return create_account(name="Ada's Surveys", owner=ada_user)


@pytest.fixture
def portal(account: SurveyAccount) -> Portal:
    return account.portals.get()


@pytest.fixture
def bob_member(account: SurveyAccount, bob_user: User) -> AccountMember:
    from kizuna.survey.models import AccountMember, MemberRole

    return AccountMember.objects.create(account=account, user=bob_user, role=MemberRole.MEMBER)


@pytest.fixture
def carol_account(carol_user: User) -> SurveyAccount:
    from kizuna.survey.services import create_account

    with translation.override("en"):
        return create_account(name="Carol's Research", owner=carol_user)


@pytest.fixture
def survey(portal: Portal, ada_user: User) -> Survey:
    from kizuna.survey.models import Survey

    return Survey.objects.create(
        portal=portal, title="Customer satisfaction", language="en", created_by=ada_user
    )


@pytest.fixture
def ada(account: SurveyAccount, ada_user: User) -> Client:
    """Ada, the account's administrator."""
    return client_for(ada_user)


@pytest.fixture
def bob(bob_member: AccountMember, bob_user: User) -> Client:
    """Bob, a plain member of Ada's account."""
    return client_for(bob_user)


@pytest.fixture
def carol(carol_account: SurveyAccount, carol_user: User) -> Client:
    """Carol, administrator of another account: an outsider to Ada's."""
    return client_for(carol_user)


@pytest.fixture
def anonymous(db: None) -> Client:
    return Client()
