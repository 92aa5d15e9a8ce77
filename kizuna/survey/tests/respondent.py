"""Builders for the public-page, submission and results tests: a survey with every kind."""

from __future__ import annotations

import datetime
from typing import Any

from django.test import Client
from django.utils import timezone

from kizuna.survey.models import Question, Section, Survey
from kizuna.survey.public.progress import signed_start

CHOICES = [
    {"key": "a", "label": "Apple"},
    {"key": "b", "label": "Banana"},
    {"key": "c", "label": "Cherry"},
    {"key": "old", "label": "Durian", "archived": True},
]
ROWS = [{"key": "speed", "label": "Speed"}, {"key": "price", "label": "Price"}]
COLUMNS = [{"key": "good", "label": "Good"}, {"key": "bad", "label": "Bad"}]


def add_question(survey: Survey, kind: str, text: str = "", **fields: Any) -> Question:
    options: dict[str, Any] = fields.pop("options", {})
    if kind in {"single_choice", "multiple_choice", "dropdown"} and "choices" not in options:
        options = {"choices": CHOICES, **options}
    if kind == "matrix" and "rows" not in options:
        options = {"rows": ROWS, "columns": COLUMNS, **options}
    position = survey.questions.count()
    return Question.objects.create(
        survey=survey,
        kind=kind,
        text=text or f"Question about {kind}",
        options=options,
        position=position,
        **fields,
    )


def one_page_survey(survey: Survey, kind: str, *, required: bool = True, **fields: Any) -> Question:
    return add_question(survey, kind, is_required=required, **fields)


def two_page_survey(survey: Survey) -> tuple[Question, Question]:
    first = Section.objects.create(survey=survey, title="About you", position=0)
    second = Section.objects.create(survey=survey, title="About us", position=1)
    name = add_question(survey, "short_text", "Your name", section=first, is_required=True)
    rating = add_question(survey, "rating", "How are we doing?", section=second, is_required=True)
    return name, rating


def opened_ago(seconds: float) -> str:
    """The signed start time a form drawn `seconds` ago carries (its hidden `started`)."""
    return signed_start(timezone.now() - datetime.timedelta(seconds=seconds))


def post(client: Client, url: str, data: dict[str, Any], **extra: Any) -> Any:
    """Submit the (last) page of a form with `data` as the respondent's input, as a person
    does: a minute after the form was drawn."""
    return client.post(
        url, {"page": "1", "action": "submit", "started": opened_ago(60), **data}, **extra
    )
