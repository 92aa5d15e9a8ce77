"""Writes of the results: the summary counters, and deleting a response (moderation).

The counters (models.py) change in the transaction of the response they count: a submission
adds its figures (`count_response`, called by the public submission), a deletion takes them
away, and `rebuild_summary` recounts a survey from its responses. On PostgreSQL a submission
holds a shared advisory lock on its survey and a rebuild or deletion an exclusive one, so a
recount never races a submission; SQLite runs one writing transaction at a time anyway.

Like every write other systems must hear about, a deletion publishes its webhook event in the
same transaction as the change it describes (DESIGN.md §3).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from kizuna.survey.models import Answer, Question, QuestionKind, Response, Survey
from kizuna.survey.results.models import DailyAnswerCount, DailyResponseCount
from kizuna.survey.webhooks.services import publish_event, response_payload

MATRIX_SEPARATOR = "\x1f"
SCALE_KINDS = {QuestionKind.RATING, QuestionKind.NPS}
NUMBER_KINDS = {QuestionKind.RATING, QuestionKind.NPS, QuestionKind.NUMBER}
CHOICE_KINDS = {QuestionKind.SINGLE_CHOICE, QuestionKind.MULTIPLE_CHOICE, QuestionKind.DROPDOWN}
# PostgreSQL advisory lock keys of the counters: this prefix in the high 32 bits, the survey's id
_LOCK_PREFIX = 0x53524553 << 32

# One figure: key, count, numbers, total, minimum, maximum
Figure = tuple[str, int, int, float, float | None, float | None]


def summary_day(moment: datetime.datetime) -> datetime.date:
    """The day a response counts on: its date in the deployment's time zone."""
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def answer_figures(kind: str, value: Any) -> Iterator[Figure]:
    """What one answer adds to its question's counters (the summary reads them back)."""
    if is_number(value):
        number = float(value)
        yield ("", 1, 1, number, number, number)
    else:
        yield ("", 1, 0, 0.0, None, None)
    if kind in CHOICE_KINDS:
        for key in value if isinstance(value, list) else [value]:
            yield (str(key), 1, 0, 0.0, None, None)
    elif kind in SCALE_KINDS and is_number(value):
        yield (str(int(value)), 1, 0, 0.0, None, None)
    elif kind == QuestionKind.MATRIX and isinstance(value, dict):
        for row_key, column_key in value.items():
            yield (f"{row_key}{MATRIX_SEPARATOR}{column_key}", 1, 0, 0.0, None, None)


def _lock(survey_id: int, *, exclusive: bool) -> None:
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [_LOCK_PREFIX + survey_id])


def _add(
    *, survey_id: int, day: datetime.date, responses: int, figures: Mapping[tuple[int, str], Any]
) -> None:
    """Add to (or with negative numbers take from) the counters of one survey and day.

    Rows are written in one order (question, key) by every transaction, so two submissions
    never wait for each other crosswise (no deadlock).
    """
    responses_table = DailyResponseCount._meta.db_table
    answers_table = DailyAnswerCount._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            # table names from the models; every value a parameter
            f"INSERT INTO {responses_table} (survey_id, day, count) VALUES (%s, %s, %s) "  # noqa: S608
            f"ON CONFLICT (survey_id, day) DO UPDATE "
            f"SET count = {responses_table}.count + excluded.count",
            [survey_id, day, responses],
        )
        if not figures:
            return
        rows = sorted(figures.items())
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
        params: list[Any] = []
        for (question_id, key), (count, numbers, total, minimum, maximum) in rows:
            params += [survey_id, question_id, day, key, count, numbers, total, minimum, maximum]
        t = answers_table
        cursor.execute(
            f"INSERT INTO {t} (survey_id, question_id, day, key, count, numbers, total, "  # noqa: S608
            f"minimum, maximum) VALUES {values} "
            f"ON CONFLICT (question_id, day, key) DO UPDATE SET "
            f"count = {t}.count + excluded.count, "
            f"numbers = {t}.numbers + excluded.numbers, "
            f"total = {t}.total + excluded.total, "
            f"minimum = CASE WHEN excluded.minimum < {t}.minimum THEN excluded.minimum "
            f"ELSE COALESCE({t}.minimum, excluded.minimum) END, "
            f"maximum = CASE WHEN excluded.maximum > {t}.maximum THEN excluded.maximum "
            f"ELSE COALESCE({t}.maximum, excluded.maximum) END",
            params,
        )


def _accumulate(
    figures: dict[tuple[int, str], list[Any]], question_id: int, kind: str, value: Any, sign: int
) -> None:
    for key, count, numbers, total, minimum, maximum in answer_figures(kind, value):
        figure = figures.setdefault((question_id, key), [0, 0, 0.0, None, None])
        figure[0] += sign * count
        figure[1] += sign * numbers
        figure[2] += sign * total
        if sign > 0 and minimum is not None:
            figure[3] = minimum if figure[3] is None else min(figure[3], minimum)
            figure[4] = maximum if figure[4] is None else max(figure[4], maximum)


def count_response(*, response: Response, answers: Iterable[tuple[Question, Any]]) -> None:
    """Add a new response and its answers to the summary counters (in the caller's
    transaction, as its last statements: the counter rows stay locked until the commit)."""
    figures: dict[tuple[int, str], list[Any]] = {}
    for question, value in answers:
        if value is not None:
            _accumulate(figures, question.pk, question.kind, value, 1)
    _lock(response.survey_id, exclusive=False)
    _add(
        survey_id=response.survey_id,
        day=summary_day(response.submitted_at),
        responses=1,
        figures=figures,
    )


def _uncount_response(response: Response) -> None:
    """Take a response about to be deleted out of the counters; the minimum and maximum it
    held are recounted from the day's other answers."""
    _lock(response.survey_id, exclusive=True)
    day = summary_day(response.submitted_at)
    figures: dict[tuple[int, str], list[Any]] = {}
    numbers: dict[int, float] = {}
    for question_id, kind, value in response.answers.values_list(
        "question_id", "question__kind", "value"
    ):
        _accumulate(figures, question_id, kind, value, -1)
        if is_number(value):
            numbers[question_id] = float(value)
    _add(survey_id=response.survey_id, day=day, responses=-1, figures=figures)
    start, end = _day_bounds(day)
    for question_id, number in numbers.items():
        bucket = DailyAnswerCount.objects.filter(question_id=question_id, day=day, key="")
        extremes = bucket.values_list("minimum", "maximum").first() or ()
        if number not in extremes:
            continue
        others = [
            float(value)
            for value in Answer.objects.filter(
                question_id=question_id,
                response__survey_id=response.survey_id,
                response__submitted_at__gte=start,
                response__submitted_at__lt=end,
            )
            .exclude(response=response)
            .values_list("value", flat=True)
            .iterator(chunk_size=2000)
            if is_number(value)
        ]
        bucket.update(minimum=min(others, default=None), maximum=max(others, default=None))


def _day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    zone = timezone.get_default_timezone()
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(
        day + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone
    )
    return start, end


def rebuild_summary(*, survey: Survey) -> int:
    """Recount a survey's summary counters from its responses; returns the responses counted.

    For when the counters are in doubt: after changing KIZUNA_TIME_ZONE, restoring a backup, or
    writing responses by other means than the submission (demo data, a bulk load).
    """
    zone = timezone.get_default_timezone()
    with transaction.atomic():
        _lock(survey.pk, exclusive=True)
        DailyAnswerCount.objects.filter(survey=survey).delete()
        DailyResponseCount.objects.filter(survey=survey).delete()
        per_day = (
            Response.objects.filter(survey=survey)
            .order_by()
            .annotate(day=TruncDate("submitted_at", tzinfo=zone))
            .values("day")
            .annotate(count=Count("id"))
            .values_list("day", "count")
        )
        DailyResponseCount.objects.bulk_create(
            DailyResponseCount(survey=survey, day=day, count=count) for day, count in per_day
        )
        kinds = dict(Question.objects.filter(survey=survey).values_list("pk", "kind"))
        figures: dict[tuple[int, datetime.date, str], list[Any]] = {}
        rows = Answer.objects.filter(response__survey=survey).values_list(
            "response__submitted_at", "question_id", "value"
        )
        day_of: dict[datetime.datetime, datetime.date] = {}
        for submitted_at, question_id, value in rows.iterator(chunk_size=5000):
            day = day_of.get(submitted_at)
            if day is None:
                day = day_of[submitted_at] = summary_day(submitted_at)
                if len(day_of) > 100_000:
                    day_of.clear()
            for key, count, numbers, total, minimum, maximum in answer_figures(
                kinds[question_id], value
            ):
                figure = figures.get((question_id, day, key))
                if figure is None:
                    figures[(question_id, day, key)] = [count, numbers, total, minimum, maximum]
                    continue
                figure[0] += count
                figure[1] += numbers
                figure[2] += total
                if minimum is not None:
                    figure[3] = minimum if figure[3] is None else min(figure[3], minimum)
                    figure[4] = maximum if figure[4] is None else max(figure[4], maximum)
        DailyAnswerCount.objects.bulk_create(
            (
                DailyAnswerCount(
                    survey=survey,
                    question_id=question_id,
                    day=day,
                    key=key,
                    count=count,
                    numbers=numbers,
                    total=total,
                    minimum=minimum,
                    maximum=maximum,
                )
                for (question_id, day, key), (count, numbers, total, minimum, maximum) in (
                    figures.items()
                )
            ),
            batch_size=2000,
        )
        return sum(count for _day, count in per_day)


def delete_response(*, response: Response) -> None:
    """Delete a response and its answers, and tell subscribers (`response.deleted`).

    The invitation stays completed: deleting is moderation, not an invitation
    to answer again.
    """
    survey = response.survey
    with transaction.atomic():
        payload = response_payload(response)
        publish_event(account=survey.portal.account, event_type="response.deleted", payload=payload)
        _uncount_response(response)
        response.delete()
