"""`kizuna demo` for Survey: Ada's account with two portals and every question kind, Carol's."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import OutputWrapper
from django.utils import timezone

from kizuna.identity.models import User
from kizuna.survey import demo
from kizuna.survey.keys.services import KEY_PREFIX, get_or_create_key
from kizuna.survey.models import (
    AccountMember,
    Answer,
    MemberRole,
    Question,
    QuestionKind,
    Response,
    Survey,
    SurveyAccount,
)
from kizuna.survey.validation import answer_display, validate_answer


def demo_users(**users: User) -> dict[str, User]:
    return users


def as_raw(value: Any) -> Any:
    """What a respondent would have posted to get `value` stored."""
    if isinstance(value, dict):
        return {row: [column] for row, column in value.items()}
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def test_demo_loads_ada_and_carol_accounts_once(
    ada: User, bob: User, carol: User, charlie: User
) -> None:
    users = demo_users(ada=ada, bob=bob, carol=carol, charlie=charlie)
    out = io.StringIO()
    demo.load(users=users, stdout=OutputWrapper(out))
    assert out.getvalue().splitlines()[0] == (
        "Survey: created Kizuna Demo Surveys, Carol's Research with 469 sample responses."
    )

    ada_member = AccountMember.objects.get(user=ada)
    assert (ada_member.account.name, ada_member.role) == (
        "Kizuna Demo Surveys",
        MemberRole.ADMINISTRATOR,
    )
    assert sorted(ada_member.account.portals.values_list("name", flat=True)) == [
        "Events",
        "顧客満足度",
    ]
    carol_member = AccountMember.objects.get(user=carol)
    assert carol_member.account.name == "Carol's Research"
    assert carol_member.account.portals.count() == 1
    assert Survey.objects.filter(portal__account=carol_member.account).count() == 1
    assert not AccountMember.objects.filter(user__in=[bob, charlie]).exists()

    ada_surveys = Survey.objects.filter(portal__account=ada_member.account)
    languages = set(ada_surveys.values_list("language", flat=True))
    assert languages == {"ja", "en"}
    for language in ("ja", "en"):
        survey = ada_surveys.filter(language=language).order_by("-id").last()
        assert survey is not None
        kinds = set(survey.questions.values_list("kind", flat=True))
        assert kinds == set(QuestionKind.values), language

    responses = Response.objects.filter(survey__portal__account=ada_member.account)
    assert responses.count() == 424
    oldest = responses.order_by("submitted_at").first()
    assert oldest is not None
    assert (timezone.now() - oldest.submitted_at).days < 60

    again = io.StringIO()
    demo.load(users=users, stdout=OutputWrapper(again))
    assert again.getvalue().splitlines()[0] == "Survey: demo accounts already present."
    assert Response.objects.count() == 469
    assert AccountMember.objects.filter(user=ada).count() == 1


def test_every_demo_answer_is_one_a_respondent_could_have_given(
    ada: User, bob: User, carol: User, charlie: User
) -> None:
    demo.load(users=demo_users(ada=ada, bob=bob, carol=carol, charlie=charlie))
    answers = Answer.objects.select_related("question")
    assert answers.count() > 3000
    for answer in answers:
        assert validate_answer(answer.question, as_raw(answer.value)) == answer.value
        assert answer_display(answer.question, answer.value) != ""
    for question in Question.objects.filter(is_required=True):
        unanswered = Response.objects.filter(survey=question.survey_id).exclude(
            answers__question=question
        )
        assert not unanswered.exists(), question.text


@pytest.mark.parametrize("run", ["first", "second"])
def test_demo_says_where_carols_sc_key_is_without_printing_it(
    settings: Any, ada: User, bob: User, carol: User, charlie: User, run: str
) -> None:
    settings.SURVEY_URL = "http://127.0.0.1:8000"
    users = demo_users(ada=ada, bob=bob, carol=carol, charlie=charlie)
    keys: list[str] = []
    if run == "second":
        demo.load(users=users)
        members = AccountMember.objects.filter(user__in=[ada, carol])
        keys = [get_or_create_key(member=member).reveal() for member in members]
    out = io.StringIO()

    demo.load(users=users, stdout=OutputWrapper(out))

    assert out.getvalue().splitlines()[1] == (
        "Survey: for the CRM's \"another user's account\" method, sign in as carol@example.com"
        " and copy her SC key from Survey > SC key (http://127.0.0.1:8000/survey/settings/sc-key/)."
    )
    assert len(out.getvalue().splitlines()) == 2
    assert KEY_PREFIX not in out.getvalue()
    assert len(keys) == (2 if run == "second" else 0)
    assert not any(key in out.getvalue() for key in keys)


@pytest.mark.django_db
def test_kizuna_demo_command_includes_the_survey_data() -> None:
    out = io.StringIO()
    call_command("demo", stdout=out)
    assert "Survey: created" in out.getvalue()
    assert sorted(SurveyAccount.objects.values_list("name", flat=True)) == [
        "Carol's Research",
        "Kizuna Demo Surveys",
    ]
