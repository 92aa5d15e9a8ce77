"""Survey demo data for `kizuna demo`: Ada's account with two portals, Carol's account.

Responses are written directly (bulk_create), not through the response service: the
demo must not enqueue webhook deliveries. A second run finds the accounts and stops.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.management.base import OutputWrapper
from django.urls import reverse
from django.utils import timezone

from kizuna.identity.models import User
from kizuna.survey.models import (
    Answer,
    Portal,
    Question,
    QuestionKind,
    Response,
    Section,
    Survey,
    SurveyAccount,
)
from kizuna.survey.results.services import rebuild_summary
from kizuna.survey.services import create_account

ADA_ACCOUNT = "Kizuna Demo Surveys"
CAROL_ACCOUNT = "Carol's Research"
DAYS = 60

# Makes one stored answer value for a question (None: left empty); demo pages list
# (kind, text, help text, required, options, maker) per question.
AnswerMaker = Callable[[random.Random, Question], Any]


def load(*, users: Mapping[str, User], stdout: OutputWrapper | Any = None) -> None:
    ada = users["ada"]
    carol = users["carol"]
    rng = random.Random(20261130)  # the same demo on every machine
    created = []
    if not SurveyAccount.objects.filter(name=ADA_ACCOUNT, members__user=ada).exists():
        _load_ada(ada, rng)
        created.append(ADA_ACCOUNT)
    if not SurveyAccount.objects.filter(name=CAROL_ACCOUNT, members__user=carol).exists():
        _load_carol(carol, rng)
        created.append(CAROL_ACCOUNT)
    if stdout is not None:
        if created:
            responses = Response.objects.filter(survey__portal__account__name__in=created).count()
            stdout.write(f"Survey: created {', '.join(created)} with {responses} sample responses.")
        else:
            stdout.write("Survey: demo accounts already present.")
        # Where to find the key, never the key: demo output ends up in logs and terminals.
        stdout.write(
            "Survey: for the CRM's \"another user's account\" method, sign in as "
            f"{carol.email} and copy her SC key from Survey > SC key ({sc_key_url()})."
        )


def sc_key_url() -> str:
    """The SC key page of the signed-in administrator's account, as a full URL."""
    return f"{settings.SURVEY_URL}{reverse('survey:survey_keys:sc-key')}"


# --- answer makers ---------------------------------------------------------------------------


def _weighted(weights: list[int]) -> AnswerMaker:
    def make(rng: random.Random, question: Question) -> Any:
        keys = [c["key"] for c in question.options["choices"]]
        return rng.choices(keys, weights=weights[: len(keys)])[0]

    return make


def _picks(rng: random.Random, question: Question) -> list[str]:
    keys = [c["key"] for c in question.options["choices"]]
    low = question.options.get("min_picks") or 1
    high = question.options.get("max_picks") or len(keys)
    picked = set(rng.sample(keys, rng.randint(low, high)))
    return [key for key in keys if key in picked]


def _scale(weights: list[int], low: int) -> AnswerMaker:
    def make(rng: random.Random, question: Question) -> int:
        return rng.choices(range(low, low + len(weights)), weights=weights)[0]

    return make


def _matrix(weights: list[int]) -> AnswerMaker:
    def make(rng: random.Random, question: Question) -> dict[str, str]:
        columns = [c["key"] for c in question.options["columns"]]
        return {
            row["key"]: rng.choices(columns, weights=weights[: len(columns)])[0]
            for row in question.options["rows"]
        }

    return make


def _text(pool: list[str], rate: float = 1.0) -> AnswerMaker:
    def make(rng: random.Random, question: Question) -> str | None:
        return rng.choice(pool) if rng.random() < rate else None

    return make


def _number(low: int, high: int) -> AnswerMaker:
    def make(rng: random.Random, question: Question) -> int:
        return rng.randint(low, high)

    return make


def _recent_date(rng: random.Random, question: Question) -> str:
    day = timezone.localdate() - datetime.timedelta(days=rng.randint(30, 3 * 365))
    return day.isoformat()


def _email(domains: list[str], rate: float = 0.6) -> AnswerMaker:
    def make(rng: random.Random, question: Question) -> str | None:
        if rng.random() >= rate:
            return None
        return f"user{rng.randint(100, 999)}@{rng.choice(domains)}"

    return make


def _items(labels: list[str], prefix: str) -> list[dict[str, str]]:
    return [{"key": f"{prefix}{index + 1}", "label": label} for index, label in enumerate(labels)]


# --- building ----------------------------------------------------------------------------------


def _survey(
    *,
    portal: Portal,
    owner: User,
    title: str,
    description: str,
    language: str,
    thank_you: str,
    pages: list[tuple[str, list[tuple[Any, ...]]]],
    responses: int,
    rng: random.Random,
    is_open: bool = True,
) -> Survey:
    survey = Survey.objects.create(
        portal=portal,
        title=title,
        description=description,
        language=language,
        thank_you_message=thank_you,
        is_open=is_open,
        created_by=owner,
        created_at=timezone.now() - datetime.timedelta(days=DAYS + 5),
        modified_at=timezone.now() - datetime.timedelta(days=DAYS + rng.randint(1, 4)),
    )
    makers: list[tuple[Question, AnswerMaker]] = []
    position = 0
    for page_index, (section_title, specs) in enumerate(pages):
        section = None
        if section_title:
            section = Section.objects.create(
                survey=survey, title=section_title, position=page_index
            )
        for kind, text, help_text, required, options, maker in specs:
            question = Question.objects.create(
                survey=survey,
                section=section,
                position=position,
                kind=kind,
                text=text,
                help_text=help_text,
                is_required=required,
                options=options,
            )
            position += 1
            makers.append((question, maker))
    _responses(survey, makers, responses, rng)
    return survey


def _responses(
    survey: Survey, makers: list[tuple[Question, AnswerMaker]], count: int, rng: random.Random
) -> None:
    now = timezone.now()
    rows: list[Response] = []
    for _ in range(count):
        # More responses in recent weeks, as after a reminder email.
        age = datetime.timedelta(seconds=int(DAYS * 86400 * rng.random() ** 1.4))
        submitted = now - age
        rows.append(
            Response(
                survey=survey,
                language=survey.language,
                started_at=submitted - datetime.timedelta(seconds=rng.randint(45, 900)),
                submitted_at=submitted,
            )
        )
    Response.objects.bulk_create(rows, batch_size=500)
    answers: list[Answer] = []
    for response in rows:
        for question, maker in makers:
            if not question.is_required and rng.random() < 0.15:
                continue
            value = maker(rng, question)
            if value is not None:
                answers.append(Answer(response=response, question=question, value=value))
    Answer.objects.bulk_create(answers, batch_size=1000)
    rebuild_summary(survey=survey)  # written in bulk, not submitted: count them once


def _load_ada(ada: User, rng: random.Random) -> None:
    account = create_account(name=ADA_ACCOUNT, owner=ada)
    satisfaction = account.portals.get()
    satisfaction.name = "顧客満足度"
    satisfaction.save(update_fields=["name"])
    events = Portal.objects.create(account=account, name="Events")
    _japanese_survey(satisfaction, ada, rng)
    _english_survey(events, ada, rng)
    _survey(
        portal=events,
        owner=ada,
        title="Spring workshop sign-up",
        description="Tell us which sessions you will attend.",
        language="en",
        thank_you="See you at the workshop!",
        pages=[
            (
                "",
                [
                    (QuestionKind.SHORT_TEXT, "Your name", "", True, {}, _text(_EN_NAMES)),
                    (
                        QuestionKind.EMAIL,
                        "Email address",
                        "",
                        True,
                        {},
                        _email(["example.com", "example.org"], rate=1.0),
                    ),
                    (
                        QuestionKind.MULTIPLE_CHOICE,
                        "Sessions",
                        "",
                        True,
                        {
                            "choices": _items(
                                ["Keynote", "Survey design 101", "Integrations lab"], "s"
                            )
                        },
                        _picks,
                    ),
                ],
            )
        ],
        responses=24,
        rng=rng,
        is_open=False,
    )
    Survey.objects.create(
        portal=events,
        title="Autumn meetup: ideas (draft)",
        description="What should the next meetup be about?",
        language="en",
        is_open=False,
        created_by=ada,
    )


def _japanese_survey(portal: Portal, owner: User, rng: random.Random) -> Survey:
    agree = ["不満", "やや不満", "普通", "やや満足", "満足"]
    return _survey(
        portal=portal,
        owner=owner,
        title="お客様満足度アンケート 2026",
        description=(
            "いつも Kizuna をご利用いただきありがとうございます。"
            "サービス向上のため、ご意見をお聞かせください（所要時間：約3分）。"
        ),
        language="ja",
        thank_you=(
            "ご回答ありがとうございました。いただいたご意見は今後のサービス改善に活用いたします。"
        ),
        pages=[
            (
                "",
                [
                    (
                        QuestionKind.RATING,
                        "Kizuna の総合的な満足度を教えてください。",
                        "1 = 不満、5 = 満足",
                        True,
                        {},
                        _scale([4, 8, 22, 38, 28], 1),
                    ),
                    (
                        QuestionKind.NPS,
                        "Kizuna を友人や同僚に勧める可能性はどのくらいありますか？",
                        "",
                        True,
                        {},
                        _scale([2, 1, 2, 3, 4, 8, 10, 18, 22, 16, 14], 0),
                    ),
                    (
                        QuestionKind.SINGLE_CHOICE,
                        "ご利用中のプランを選んでください。",
                        "",
                        True,
                        {
                            "choices": _items(
                                [
                                    "フリー",
                                    "スタンダード",
                                    "プロフェッショナル",
                                    "エンタープライズ",
                                ],
                                "p",
                            )
                        },
                        _weighted([30, 40, 22, 8]),
                    ),
                    (
                        QuestionKind.MULTIPLE_CHOICE,
                        "よく使う機能を選んでください（3つまで）。",
                        "",
                        False,
                        {
                            "choices": _items(
                                [
                                    "リード管理",
                                    "連絡先",
                                    "メールテンプレート",
                                    "アンケート",
                                    "レポート",
                                ],
                                "f",
                            ),
                            "min_picks": 1,
                            "max_picks": 3,
                        },
                        _picks,
                    ),
                    (
                        QuestionKind.DROPDOWN,
                        "所在地（地域）",
                        "",
                        False,
                        {
                            "choices": _items(
                                [
                                    "北海道",
                                    "東北",
                                    "関東",
                                    "中部",
                                    "近畿",
                                    "中国",
                                    "四国",
                                    "九州・沖縄",
                                ],
                                "r",
                            )
                        },
                        _weighted([4, 5, 40, 12, 20, 6, 3, 10]),
                    ),
                ],
            ),
            (
                "サポートについて",
                [
                    (
                        QuestionKind.MATRIX,
                        "サポート窓口の対応を評価してください。",
                        "",
                        True,
                        {
                            "rows": _items(
                                ["対応の速さ", "説明の分かりやすさ", "問題の解決"], "row"
                            ),
                            "columns": _items(agree, "col"),
                        },
                        _matrix([3, 7, 25, 35, 30]),
                    ),
                    (
                        QuestionKind.NUMBER,
                        "Kizuna を利用している社員数を教えてください。",
                        "おおよその人数で構いません。",
                        False,
                        {"min": 1, "max": 10000},
                        _number(3, 400),
                    ),
                    (
                        QuestionKind.DATE,
                        "Kizuna の導入日",
                        "分かる範囲でご記入ください。",
                        False,
                        {},
                        _recent_date,
                    ),
                ],
            ),
            (
                "最後に",
                [
                    (
                        QuestionKind.SHORT_TEXT,
                        "会社名",
                        "",
                        False,
                        {},
                        _text(
                            [
                                "株式会社さくら商事",
                                "青葉システム",
                                "みなと物流",
                                "ひかり工房",
                                "山田製作所",
                            ]
                        ),
                    ),
                    (
                        QuestionKind.LONG_TEXT,
                        "改善してほしい点や、ご意見があればお聞かせください。",
                        "",
                        False,
                        {},
                        _text(_JA_COMMENTS, rate=0.5),
                    ),
                    (
                        QuestionKind.EMAIL,
                        "担当者からの連絡を希望される場合は、メールアドレスをご記入ください。",
                        "",
                        False,
                        {},
                        _email(["example.co.jp", "example.jp"]),
                    ),
                ],
            ),
        ],
        responses=260,
        rng=rng,
    )


def _english_survey(portal: Portal, owner: User, rng: random.Random) -> Survey:
    return _survey(
        portal=portal,
        owner=owner,
        title="Kizuna Meetup 2026: feedback",
        description=(
            "Thanks for coming to the meetup! Five minutes of your time helps us plan the next one."
        ),
        language="en",
        thank_you="Thank you! See you at the next meetup.",
        pages=[
            (
                "",
                [
                    (
                        QuestionKind.RATING,
                        "How would you rate the meetup overall?",
                        "",
                        True,
                        {},
                        _scale([2, 5, 18, 40, 35], 1),
                    ),
                    (
                        QuestionKind.NPS,
                        "How likely are you to recommend the meetup to a colleague?",
                        "",
                        True,
                        {},
                        _scale([1, 1, 1, 2, 3, 6, 8, 16, 24, 20, 18], 0),
                    ),
                    (
                        QuestionKind.SINGLE_CHOICE,
                        "How did you hear about the meetup?",
                        "",
                        True,
                        {
                            "choices": _items(
                                ["Email", "Social media", "A colleague", "Our website"], "h"
                            )
                        },
                        _weighted([40, 25, 20, 15]),
                    ),
                    (
                        QuestionKind.MULTIPLE_CHOICE,
                        "Which talks did you attend?",
                        "Pick all that apply.",
                        True,
                        {
                            "choices": _items(
                                [
                                    "Keynote",
                                    "CRM tips",
                                    "Survey design",
                                    "Integrations",
                                    "Roadmap Q&A",
                                ],
                                "t",
                            ),
                            "min_picks": 1,
                        },
                        _picks,
                    ),
                    (
                        QuestionKind.DROPDOWN,
                        "Your role",
                        "",
                        False,
                        {
                            "choices": _items(
                                ["Sales", "Support", "Marketing", "Engineering", "Other"], "role"
                            )
                        },
                        _weighted([30, 20, 20, 20, 10]),
                    ),
                ],
            ),
            (
                "The venue and sessions",
                [
                    (
                        QuestionKind.MATRIX,
                        "How satisfied were you with…",
                        "",
                        True,
                        {
                            "rows": _items(["The venue", "The food", "The length of talks"], "row"),
                            "columns": _items(
                                [
                                    "Very unsatisfied",
                                    "Unsatisfied",
                                    "Neutral",
                                    "Satisfied",
                                    "Very satisfied",
                                ],
                                "col",
                            ),
                        },
                        _matrix([3, 8, 20, 40, 29]),
                    ),
                    (
                        QuestionKind.NUMBER,
                        "How many Kizuna meetups have you attended (including this one)?",
                        "",
                        False,
                        {"min": 1, "max": 50},
                        _number(1, 6),
                    ),
                    (
                        QuestionKind.DATE,
                        "When would suit you for the next meetup?",
                        "",
                        False,
                        {},
                        _recent_date,
                    ),
                    (QuestionKind.SHORT_TEXT, "Company", "", False, {}, _text(_EN_COMPANIES)),
                    (
                        QuestionKind.LONG_TEXT,
                        "What should we do differently next time?",
                        "",
                        False,
                        {},
                        _text(_EN_COMMENTS, rate=0.5),
                    ),
                    (
                        QuestionKind.EMAIL,
                        "Email, if you want the slides",
                        "",
                        False,
                        {},
                        _email(["example.com", "example.org"]),
                    ),
                ],
            ),
        ],
        responses=140,
        rng=rng,
    )


def _load_carol(carol: User, rng: random.Random) -> None:
    account = create_account(name=CAROL_ACCOUNT, owner=carol)
    portal = account.portals.get()
    portal.name = "Field studies"
    portal.save(update_fields=["name"])
    _survey(
        portal=portal,
        owner=carol,
        title="Remote work habits",
        description="A short study of how teams work from home.",
        language="en",
        thank_you="Thank you for taking part in this study.",
        pages=[
            (
                "",
                [
                    (
                        QuestionKind.NUMBER,
                        "How many days a week do you work from home?",
                        "",
                        True,
                        {"min": 0, "max": 7},
                        _number(0, 5),
                    ),
                    (
                        QuestionKind.SINGLE_CHOICE,
                        "Where do you usually work at home?",
                        "",
                        True,
                        {"choices": _items(["A separate room", "A shared room", "Anywhere"], "w")},
                        _weighted([45, 35, 20]),
                    ),
                    (
                        QuestionKind.RATING,
                        "How productive do you feel at home?",
                        "",
                        True,
                        {},
                        _scale([5, 10, 25, 35, 25], 1),
                    ),
                    (
                        QuestionKind.LONG_TEXT,
                        "What is the hardest part of working remotely?",
                        "",
                        False,
                        {},
                        _text(_EN_REMOTE, rate=0.6),
                    ),
                ],
            )
        ],
        responses=45,
        rng=rng,
    )


_EN_NAMES = ["Sam Lee", "Priya Patel", "Tom Becker", "Mia Rossi", "Ken Ito", "Lea Martin"]
_EN_COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella Labs", "Stark Logistics"]
_EN_COMMENTS = [
    "More time for questions after each talk, please.",
    "The integrations lab was the highlight. More hands-on sessions!",
    "Start a little later; the morning trains were packed.",
    "Please share the slides before the event.",
    "Great event, nothing to change.",
    "A vegetarian lunch option would be nice.",
]
_EN_REMOTE = [
    "Staying in touch with the team.",
    "Knowing when to stop working.",
    "Noise at home.",
    "Slow internet connection.",
]
_JA_COMMENTS = [
    "レポート画面をもっと見やすくしてほしいです。",
    "アンケートの結果を CSV で出力できて助かっています。",
    "スマートフォンからの操作性を改善してほしいです。",
    "サポートの対応がいつも丁寧で満足しています。",
    "メールテンプレートの種類を増やしてほしいです。",
    "特にありません。今後も期待しています。",
]
