"""Writes of the results: the summary counters, and deleting a response (moderation).

The counters (models.py) change in the transaction of the response they count: a submission
inserts its figures (`count_response`, called by the public submission), a deletion inserts
them negated, `merge_counters` keeps the rows few, and `rebuild_summary` recounts a survey from
its responses. On PostgreSQL a submission holds a shared advisory lock on its survey and a
rebuild or deletion an exclusive one, so a recount never races a submission; SQLite runs one
writing transaction at a time anyway.

Like every write other systems must hear about, a deletion publishes its webhook event in the
same transaction as the change it describes (DESIGN.md §3).
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from kizuna.survey.models import Answer, Question, QuestionKind, Response, Survey
from kizuna.survey.results.models import DailyAnswerCount
from kizuna.survey.webhooks.services import keep_deletion, publish_event, response_payload

MATRIX_SEPARATOR = "\x1f"
SCALE_KINDS = {QuestionKind.RATING, QuestionKind.NPS}
CHOICE_KINDS = {QuestionKind.SINGLE_CHOICE, QuestionKind.MULTIPLE_CHOICE, QuestionKind.DROPDOWN}
# PostgreSQL advisory lock keys of the counters: a prefix in the high 32 bits, the survey's id
_LOCK_PREFIX = 0x53524553 << 32
_MERGE_PREFIX = 0x5352454D << 32
# One submission in this many merges the counter rows of its day (after its commit)
MERGE_EVERY = 32
_chance = random.Random()
_TABLE = DailyAnswerCount._meta.db_table
_COLUMNS = "survey_id, question_id, day, key, count, numbers, total, minimum, maximum"
# PostgreSQL: the figures as one array per column, so the statement's text is the same for
# every submission and its parameters are a few arrays, not nine per row
_PG_INSERT = (
    f"INSERT INTO {_TABLE} (survey_id, day, question_id, key, count, numbers, total, minimum, "  # noqa: S608
    "maximum) SELECT %s::bigint, %s::date, f.* FROM unnest(%s::bigint[], %s::text[], "
    "%s::bigint[], %s::bigint[], %s::float8[], %s::float8[], %s::float8[]) AS f"
)

# One figure: key, count, numbers, total, minimum, maximum
Figure = tuple[str, int, int, float, float | None, float | None]
# Figures being added up, by (question id or None for the responses, key):
# [count, numbers, total, minimum, maximum]
Figures = dict[tuple[int | None, str], list[Any]]


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


def _add_up(figures: Figures, question_id: int | None, figure: Figure, sign: int = 1) -> None:
    key, count, numbers, total, minimum, maximum = figure
    summed = figures.setdefault((question_id, key), [0, 0, 0.0, None, None])
    summed[0] += sign * count
    summed[1] += sign * numbers
    summed[2] += sign * total
    if sign > 0 and minimum is not None:
        summed[3] = minimum if summed[3] is None else min(summed[3], minimum)
    if sign > 0 and maximum is not None:
        summed[4] = maximum if summed[4] is None else max(summed[4], maximum)


def _lock(survey_id: int, *, exclusive: bool) -> None:
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [_LOCK_PREFIX + survey_id])


def _pg_insert(
    *, survey_id: int, day: datetime.date, figures: Figures, shared_lock: bool
) -> tuple[str, list[Any]]:
    """The PostgreSQL INSERT of counter rows, and its parameters."""
    columns: list[list[Any]] = [[], [], [], [], [], [], []]
    for (question_id, key), (count, numbers, total, minimum, maximum) in figures.items():
        columns[0].append(question_id)
        columns[1].append(key)
        columns[2].append(count)
        columns[3].append(numbers)
        columns[4].append(total)
        columns[5].append(minimum)
        columns[6].append(maximum)
    sql = _PG_INSERT
    params: list[Any] = [survey_id, day, *columns]
    if shared_lock:
        sql += ", (SELECT pg_advisory_xact_lock_shared(%s)) AS survey_lock"
        params.append(_LOCK_PREFIX + survey_id)
    return sql, params


def _insert(*, survey_id: int, day: datetime.date, figures: Figures, shared_lock: bool) -> None:
    """Add counter rows (negative numbers take away) in one INSERT, which never waits for
    another transaction's rows as an UPDATE of a shared row would. `shared_lock`: the survey's
    shared advisory lock is taken by the same statement (PostgreSQL)."""
    if not figures:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                *_pg_insert(survey_id=survey_id, day=day, figures=figures, shared_lock=shared_lock)
            )
        else:
            rows = [
                [survey_id, question_id, day, key, *figure]
                for (question_id, key), figure in figures.items()
            ]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
            cursor.execute(
                f"INSERT INTO {_TABLE} ({_COLUMNS}) VALUES {values}",  # noqa: S608
                [value for row in rows for value in row],
            )


def _response_figures(answers: Iterable[tuple[Question, Any]]) -> Figures:
    figures: Figures = {(None, ""): [1, 0, 0.0, None, None]}
    for question, value in answers:
        if value is not None:
            for figure in answer_figures(question.kind, value):
                _add_up(figures, question.pk, figure)
    return figures


def _merge_now_and_then(*, survey_id: int, day: datetime.date) -> None:
    if _chance.random() * MERGE_EVERY < 1:
        transaction.on_commit(lambda: merge_counters(survey_id=survey_id, day=day))


def count_response(*, response: Response, answers: Iterable[tuple[Question, Any]]) -> None:
    """Add a new response and its answers to the summary counters: one statement in the
    caller's transaction. One submission in MERGE_EVERY then merges the rows of its day, after
    the commit, in a transaction of its own."""
    day = summary_day(response.submitted_at)
    survey_id = response.survey_id
    _insert(survey_id=survey_id, day=day, figures=_response_figures(answers), shared_lock=True)
    _merge_now_and_then(survey_id=survey_id, day=day)


def response_counting_insert(
    *, response: Response, answers: Iterable[tuple[Question, Any]]
) -> tuple[str, list[Any]]:
    """PostgreSQL: count_response() as an INSERT and its parameters, for the caller to run as
    the last part of the statement that stores the response (the public submission stores a
    response, its answers and its counters in one statement); call counted() after it ran."""
    return _pg_insert(
        survey_id=response.survey_id,
        day=summary_day(response.submitted_at),
        figures=_response_figures(answers),
        shared_lock=True,
    )


def counted(*, response: Response) -> None:
    """What follows response_counting_insert(): now and then a merge of the day's rows."""
    _merge_now_and_then(survey_id=response.survey_id, day=summary_day(response.submitted_at))


def merge_counters(*, survey_id: int, day: datetime.date) -> None:
    """Merge the counter rows of a survey's day and the day before into one row per figure.

    DELETE ... RETURNING hands each row to exactly one merge, whatever else runs: rows that
    submissions insert meanwhile stay as they are, to be merged next time, and the sums never
    change. On PostgreSQL a merge or deletion already running for the survey makes this one a
    no-op.
    """
    days = [day - datetime.timedelta(days=1), day]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_MERGE_PREFIX + survey_id])
            if not cursor.fetchone()[0]:
                return
        cursor.execute(
            f"DELETE FROM {_TABLE} WHERE survey_id = %s AND day IN (%s, %s) "  # noqa: S608
            f"RETURNING day, question_id, key, count, numbers, total, minimum, maximum",
            [survey_id, *days],
        )
        by_day: dict[datetime.date, Figures] = {}
        for merged_day, question_id, *figure in cursor.fetchall():
            _add_up(by_day.setdefault(_as_date(merged_day), {}), question_id, tuple(figure))
        for merged_day, figures in sorted(by_day.items()):
            kept = {
                key: figure
                for key, figure in figures.items()
                if figure[0] or figure[1] or figure[3] is not None
            }
            _insert(survey_id=survey_id, day=merged_day, figures=kept, shared_lock=False)


def _as_date(value: Any) -> datetime.date:
    """A date column as a raw cursor returns it (SQLite: text)."""
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(value)


def _uncount_response(response: Response) -> None:
    """Take a response about to be deleted out of the counters; the minimum and maximum it
    held are recounted from the day's other answers. Submissions and merges of the survey
    wait meanwhile (PostgreSQL)."""
    _lock(response.survey_id, exclusive=True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_MERGE_PREFIX + response.survey_id])
    day = summary_day(response.submitted_at)
    figures: Figures = {(None, ""): [-1, 0, 0.0, None, None]}
    numbers: dict[int, float] = {}
    for question_id, kind, value in response.answers.values_list(
        "question_id", "question__kind", "value"
    ):
        for figure in answer_figures(kind, value):
            _add_up(figures, question_id, figure, sign=-1)
        if is_number(value):
            numbers[question_id] = float(value)
    start, end = _day_bounds(day)
    for question_id, number in numbers.items():
        rows = DailyAnswerCount.objects.filter(
            survey_id=response.survey_id, day=day, question_id=question_id, key=""
        )
        held = rows.aggregate(smallest=Min("minimum"), largest=Max("maximum"))
        if number not in (held["smallest"], held["largest"]):
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
        # nothing else writes these rows meanwhile (the locks): the recount replaces them
        rows.update(minimum=None, maximum=None)
        answered = figures[(question_id, "")]
        answered[3], answered[4] = min(others, default=None), max(others, default=None)
    _insert(survey_id=response.survey_id, day=day, figures=figures, shared_lock=False)


def _day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    zone = timezone.get_default_timezone()
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=zone)
    return start, datetime.datetime.combine(
        day + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone
    )


def rebuild_summary(*, survey: Survey) -> int:
    """Recount a survey's summary counters from its responses; returns the responses counted.

    For when the counters are in doubt: after changing KIZUNA_TIME_ZONE, restoring a backup, or
    writing responses by other means than the submission (demo data, a bulk load). Submissions
    to the survey wait meanwhile (PostgreSQL).
    """
    with transaction.atomic():
        _lock(survey.pk, exclusive=True)
        DailyAnswerCount.objects.filter(survey=survey).delete()
        kinds = dict(Question.objects.filter(survey=survey).values_list("pk", "kind"))
        by_day: dict[datetime.date, Figures] = {}
        day_of: dict[Any, datetime.date] = {}
        responses = Response.objects.filter(survey=survey).values_list("pk", "submitted_at")
        for response_id, submitted_at in responses.iterator(chunk_size=5000):
            day = day_of[response_id] = summary_day(submitted_at)
            _add_up(by_day.setdefault(day, {}), None, ("", 1, 0, 0.0, None, None))
        rows = Answer.objects.filter(response__survey=survey).values_list(
            "response_id", "question_id", "value"
        )
        for response_id, question_id, value in rows.iterator(chunk_size=5000):
            figures = by_day[day_of[response_id]]
            for figure in answer_figures(kinds[question_id], value):
                _add_up(figures, question_id, figure)
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
                for day, figures in by_day.items()
                for (question_id, key), (count, numbers, total, minimum, maximum) in (
                    figures.items()
                )
            ),
            batch_size=2000,
        )
        return len(day_of)


def delete_response(*, response: Response) -> None:
    """Delete a response and its answers, and tell subscribers (`response.deleted`, and
    GET /responses/deleted for those that miss the event).

    The invitation stays completed: deleting is moderation, not an invitation
    to answer again.
    """
    survey = response.survey
    with transaction.atomic():
        payload = response_payload(response)
        publish_event(account=survey.portal.account, event_type="response.deleted", payload=payload)
        keep_deletion(response=response)
        _uncount_response(response)
        response.delete()
