"""A respondent's way through the pages of a survey, until the response is submitted.

A survey's sections are its pages. The answers typed on the pages seen so far and
the moment the respondent first saw the form are kept in the session, one entry per
survey and invitation (or per survey for the public link), so Next and Back lose
nothing; Submit validates every page again.

What is kept is bounded (issue 9.4): an answer larger than the question accepts on
submit is never kept, nor a page that would take the whole progress past
MAX_PROGRESS_CHARACTERS; and a visitor who is not signed in keeps it for
ANONYMOUS_PROGRESS_SECONDS, not for the two weeks of a signed-in session.
"""

from __future__ import annotations

import datetime
import json
import secrets
from collections.abc import Mapping
from typing import Any

from django.contrib.auth import SESSION_KEY as USER_SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext

from kizuna.survey import validation
from kizuna.survey.models import Invitation, Question, QuestionKind, Survey
from kizuna.survey.public.definitions import Definition, Page, definition_of

STARTED_SALT = "kizuna.survey.started"
PROGRESS_PREFIX = "survey_progress"
# The answers of every page together, in characters of their JSON: room for five long texts
# at their limit, while a session row stays far from the megabytes a script could send.
MAX_PROGRESS_CHARACTERS = 50_000
# How long an anonymous respondent's unfinished answers stay: to finish the same day.
ANONYMOUS_PROGRESS_SECONDS = 24 * 3600


def raw_answer(question: Question, data: QueryDict) -> list[str] | dict[str, list[str]]:
    """The respondent's input for one question, in the shape validation expects."""
    name = f"q{question.pk}"
    if question.kind == QuestionKind.MATRIX:
        return {
            row["key"]: data.getlist(f"{name}-{row['key']}")
            for row in validation.active_rows(question)
        }
    return data.getlist(name)


def validate_answers(
    questions: list[Question], raw_answers: Mapping[str, Any]
) -> tuple[dict[Question, Any], dict[str, list[str]]]:
    """The validated value of each question, and the messages of those that are not valid."""
    values: dict[Question, Any] = {}
    errors: dict[str, list[str]] = {}
    for question in questions:
        raw = raw_answers.get(str(question.pk))
        if raw is None:
            raw = {} if question.kind == QuestionKind.MATRIX else []
        try:
            values[question] = validation.validate_answer(question, raw)
        except ValidationError as error:
            errors[str(question.pk)] = list(error.messages)
    return values, errors


def signed_start(moment: datetime.datetime) -> str:
    """The form's hidden `started`: the moment it was first drawn and a nonce of its own, signed.

    The nonce makes each start value good for one response through the shared link: a bot that
    keeps one value from long ago to skip the minimum time gets one submission out of it
    (services.submit_response stores the nonce, unique).
    """
    return signing.dumps([moment.isoformat(), secrets.token_hex(12)], salt=STARTED_SALT)


def _new_started() -> str:
    return signed_start(timezone.now())


def _read_start(started: str) -> tuple[datetime.datetime, str] | None:
    """The moment and nonce of a `started` value we signed (it cannot be forged), or None."""
    try:
        moment, nonce = signing.loads(started, salt=STARTED_SALT)
        return datetime.datetime.fromisoformat(moment), str(nonce)
    except (signing.BadSignature, TypeError, ValueError):
        return None


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False))


class InvalidPage(Exception):
    """A page whose answers are not valid (yet): `number` counts from 1."""

    def __init__(self, number: int, errors: dict[str, list[str]]) -> None:
        super().__init__(number)
        self.number = number
        self.errors = errors


class ResponseProgress:
    """The pages of `survey` and what the respondent typed on them, kept in `session`.

    `answers` maps question ids to raw input; `started` is the signed moment the
    respondent first saw the form, carried in the form so that it survives a session
    that expired meanwhile.
    """

    def __init__(self, session: SessionBase, *, survey: Survey, invitation: Invitation | None):
        self.session = session
        self.definition: Definition = definition_of(survey)
        self.pages: list[Page] = self.definition.pages
        owner = f"i{invitation.pk}" if invitation else "anon"
        self.key = f"{PROGRESS_PREFIX}:{survey.pk}:{owner}"
        saved: dict[str, Any] = session.get(self.key) or {}
        self.answers: dict[str, Any] = dict(saved.get("answers") or {})
        self._started: str = saved.get("started") or ""
        self.typed: dict[str, Any] = {}
        # The signed start read once, and the answers validated once, per request (each
        # costs as much as a statement: issue 11); both are dropped when what they read changes.
        self._read: tuple[str, tuple[datetime.datetime, str] | None] | None = None
        self._validated: tuple[dict[Question, Any], dict[int, dict[str, list[str]]]] | None = None

    @property
    def page_count(self) -> int:
        return len(self.pages)

    def page_number(self, raw: str | None) -> int:
        """A page number from the request, kept within the survey's pages."""
        try:
            number = int(raw or 1)
        except ValueError:
            number = 1
        return min(max(number, 1), self.page_count)

    def take(self, data: QueryDict, *, number: int) -> dict[str, list[str]]:
        """Take what was typed on page `number`, and the form's start time if we signed it.

        Returns the messages of the answers too large to keep (validation.validate_bounds),
        which are not taken; if the page would take the whole progress past
        MAX_PROGRESS_CHARACTERS, nothing of it is taken. Everything typed stays in `typed`
        for the page drawn in answer.
        """
        started = str(data.get("started", ""))
        if started and self._start_of(started) is not None:
            self.started = started
        questions = self.pages[number - 1].questions
        self.typed = {str(q.pk): raw_answer(q, data) for q in questions}
        refused: dict[str, list[str]] = {}
        taken = {}
        for question in questions:
            raw = self.typed[str(question.pk)]
            try:
                validation.validate_bounds(question, raw)
            except ValidationError as error:
                refused[str(question.pk)] = list(error.messages)
            else:
                taken[str(question.pk)] = raw
        answers = {**self.answers, **taken}
        if _size(answers) > MAX_PROGRESS_CHARACTERS and taken:
            longest = max(taken, key=lambda pk: _size(taken[pk]))
            message = gettext(
                "Your answers to this survey are too long to keep together: shorten this one."
            )
            return {**refused, longest: [*refused.get(longest, []), message]}
        self.answers = answers
        self._validated = None
        return refused

    def shown(self, question: Question) -> Any:
        """What the page shows in the question's field: what was just typed, else what is kept."""
        key = str(question.pk)
        return self.typed[key] if key in self.typed else self.answers.get(key, [])

    def is_blank(self, number: int) -> bool:
        """True when nothing was typed or kept for page `number`'s questions."""
        return not any(self.shown(question) for question in self.pages[number - 1].questions)

    def _validate(self) -> tuple[dict[Question, Any], dict[int, dict[str, list[str]]]]:
        """Every page's valid answers, and the messages of each page in error by number."""
        if self._validated is None:
            values: dict[Question, Any] = {}
            errors: dict[int, dict[str, list[str]]] = {}
            for number, page in enumerate(self.pages, start=1):
                page_values, page_errors = validate_answers(page.questions, self.answers)
                values.update(page_values)
                if page_errors:
                    errors[number] = page_errors
            self._validated = (values, errors)
        return self._validated

    def errors_on(self, number: int) -> dict[str, list[str]]:
        """The messages of the questions of page `number` whose answers are not valid."""
        return dict(self._validate()[1].get(number, {}))

    def values(self) -> dict[Question, Any]:
        """Every page's validated answers, or InvalidPage naming the first page in error."""
        values, errors = self._validate()
        if errors:
            number = min(errors)
            raise InvalidPage(number, dict(errors[number]))
        return dict(values)

    @property
    def started(self) -> str:
        """The signed moment the respondent first saw the form: signed when first needed (a
        submission carries its own)."""
        if not self._started:
            self._started = _new_started()
        return self._started

    @started.setter
    def started(self, value: str) -> None:
        self._started = value

    def _start_of(self, started: str) -> tuple[datetime.datetime, str] | None:
        """The moment and nonce of `started`, read (its signature checked) once."""
        if self._read is None or self._read[0] != started:
            self._read = (started, _read_start(started))
        return self._read[1]

    @property
    def started_at(self) -> datetime.datetime | None:
        read = self._start_of(self.started)
        return read[0] if read else None

    @property
    def start_nonce(self) -> str | None:
        """The nonce of the signed start (what makes one form good for one response)."""
        read = self._start_of(self.started)
        return read[1] if read else None

    def keep(self) -> None:
        """Save the answers so far, for the next page or a later visit.

        A visitor who is not signed in keeps them for ANONYMOUS_PROGRESS_SECONDS: the
        session then ends that much after its last change (the worker deletes expired ones).
        """
        self.session[self.key] = {"answers": self.answers, "started": self.started}
        if USER_SESSION_KEY not in self.session:
            self.session.set_expiry(ANONYMOUS_PROGRESS_SECONDS)

    def forget(self) -> None:
        self.session.pop(self.key, None)
