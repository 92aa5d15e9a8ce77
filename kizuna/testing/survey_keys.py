"""The small Survey world of the SC key, API, webhook and audit tests.

Their conftest.py files star-import this module: here `account` is a bare account "Kizuna
Demo" (no portal until `portal` makes "Customers"), `carol_account` a bare "Carol Research",
and `survey` a three-question survey. The personas are those of kizuna/testing/personas.py
(`ada_member` administers `account`, `bob_member` is a plain member, `carol_member`
administers `carol_account`; Charlie has no Survey account at all).
"""

from __future__ import annotations

from typing import Any

import pytest

from kizuna.identity.models import User
from kizuna.survey.models import (
    Answer,
    Invitation,
    Portal,
    Question,
    Response,
    Survey,
    SurveyAccount,
)
from kizuna.testing.survey import add_member, sc_headers

__all__ = [
    "account",
    "add_member",
    "carol_account",
    "make_response",
    "portal",
    "sc_headers",
    "survey",
]


@pytest.fixture
def account(ada: User) -> SurveyAccount:
    return SurveyAccount.objects.create(name="Kizuna Demo", created_by=ada)


@pytest.fixture
def carol_account(carol: User) -> SurveyAccount:
    return SurveyAccount.objects.create(name="Carol Research", created_by=carol)


@pytest.fixture
def portal(account: SurveyAccount) -> Portal:
    return Portal.objects.create(account=account, name="Customers")


@pytest.fixture
def survey(portal: Portal, ada: User) -> Survey:
    survey = Survey.objects.create(
        portal=portal, title="Satisfaction", public_id="satisfaction01", created_by=ada
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
