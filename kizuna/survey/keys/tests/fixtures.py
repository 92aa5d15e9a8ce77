"""Survey personas for the SC key, webhook and API tests.

Ada administers account "Kizuna Demo" (Bob is a plain member of it); Carol
administers another account; Charlie has no Survey account at all.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from kizuna.identity.models import User
from kizuna.survey.models import (
    AccountMember,
    Answer,
    Invitation,
    MemberRole,
    Portal,
    Question,
    Response,
    Survey,
    SurveyAccount,
)
from kizuna.testing.personas import client_for


@pytest.fixture
def account(ada_user: User) -> SurveyAccount:
    return SurveyAccount.objects.create(name="Kizuna Demo", created_by=ada_user)


def add_member(account: SurveyAccount, user: User, role: str) -> AccountMember:
    return AccountMember.objects.create(account=account, user=user, role=role)


@pytest.fixture
def ada(account: SurveyAccount, ada_user: User) -> AccountMember:
    return add_member(account, ada_user, MemberRole.ADMINISTRATOR)


@pytest.fixture
def bob(account: SurveyAccount, bob_user: User) -> AccountMember:
    return add_member(account, bob_user, MemberRole.MEMBER)


@pytest.fixture
def other_account(carol_user: User) -> SurveyAccount:
    return SurveyAccount.objects.create(name="Carol Research", created_by=carol_user)


@pytest.fixture
def carol(other_account: SurveyAccount, carol_user: User) -> AccountMember:
    return add_member(other_account, carol_user, MemberRole.ADMINISTRATOR)


# Each persona's signed-in browser; Charlie is a user with no Survey account at all.
@pytest.fixture
def ada_client(ada: AccountMember) -> Client:
    return client_for(ada.user)


@pytest.fixture
def bob_client(bob: AccountMember) -> Client:
    return client_for(bob.user)


@pytest.fixture
def carol_client(carol: AccountMember) -> Client:
    return client_for(carol.user)


@pytest.fixture
def charlie_client(charlie_user: User) -> Client:
    return client_for(charlie_user)


@pytest.fixture
def portal(account: SurveyAccount) -> Portal:
    return Portal.objects.create(account=account, name="Customers")


@pytest.fixture
def survey(portal: Portal, ada_user: User) -> Survey:
    survey = Survey.objects.create(
        portal=portal, title="Satisfaction", public_id="satisfaction01", created_by=ada_user
    )
    Question.objects.create(
        survey=survey,
        position=0,
        kind="single_choice",
        text="How was it?",
        is_required=True,
        options={"choices": [{"key": "good", "label": "Good"}, {"key": "bad", "label": "Bad"}]},
    )
    Question.objects.create(survey=survey, position=1, kind="long_text", text="Anything else?")
    Question.objects.create(survey=survey, position=2, kind="nps", text="Recommend us?")
    return survey


def make_response(survey: Survey, *, reference: str = "lead:42", **fields: Any) -> Response:
    """A completed response through an invitation, with an answer to every question."""
    invitation = Invitation.objects.create(
        survey=survey, recipient_reference=reference, email="erin@example.com", name="Erin"
    )
    response = Response.objects.create(
        survey=survey,
        invitation=invitation,
        recipient_reference=reference,
        language="ja",
        **fields,
    )
    values = {"single_choice": "good", "long_text": "素晴らしい", "nps": 9}
    for question in survey.questions.filter(kind__in=values):
        Answer.objects.create(response=response, question=question, value=values[question.kind])
    return response


def sc_headers(member: AccountMember) -> dict[str, Any]:
    """Test client headers authenticating as `member` with their SC key (created if needed)."""
    from kizuna.survey.keys.services import get_or_create_key

    key = get_or_create_key(member=member)
    return {"HTTP_X_SC_EMAIL": member.user.email, "HTTP_X_SC_KEY": key.reveal()}


@pytest.fixture
def ada_api(ada: AccountMember) -> dict[str, Any]:
    return sc_headers(ada)


@pytest.fixture
def carol_api(carol: AccountMember) -> dict[str, Any]:
    return sc_headers(carol)
