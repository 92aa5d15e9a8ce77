"""What the results pages compute: per-question summaries, responses over time, CSV rows.

Pure reads. Every function takes the already filtered queryset of responses so
that the date filter applies to everything on the page and in the export.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from operator import call
from typing import Any

import psycopg
from django.db import DatabaseError, connection, transaction
from django.db.models import Max, Min, QuerySet, Sum
from django.utils import formats, timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from kizuna.survey import validation
from kizuna.survey.models import Answer, Question, QuestionKind, Response, Survey
from kizuna.survey.results import charts
from kizuna.survey.results.models import DailyAnswerCount
from kizuna.survey.results.services import CHOICE_KINDS, MATRIX_SEPARATOR

TEXT_KINDS = {
    QuestionKind.SHORT_TEXT,
    QuestionKind.LONG_TEXT,
    QuestionKind.EMAIL,
    QuestionKind.DATE,
}
LATEST_TEXTS = 10
DAILY_SPAN_LIMIT = 92


@dataclass
class NpsScore:
    """Net Promoter Score: % promoters (9–10) minus % detractors (0–6)."""

    score: int
    promoters: int
    passives: int
    detractors: int
    promoters_percent: float
    passives_percent: float
    detractors_percent: float


@dataclass
class MatrixTable:
    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass
class QuestionSummary:
    """Everything the summary page shows for one question."""

    question: Question
    answered: int
    chart: SafeString | None = None
    average: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    nps: NpsScore | None = None
    texts: list[tuple[datetime.datetime, str]] = field(default_factory=list)
    matrix: MatrixTable | None = None


def all_questions(survey: Survey) -> list[Question]:
    """Every question ever asked, archived ones included (their answers still count)."""
    return list(survey.questions.order_by("is_archived", "position", "id"))


def filter_responses(
    responses: QuerySet[Response], *, date_from: datetime.date | None, date_to: datetime.date | None
) -> QuerySet[Response]:
    """Responses submitted on those days (inclusive) in the deployment's time zone."""
    zone = timezone.get_current_timezone()
    if date_from:
        start = datetime.datetime.combine(date_from, datetime.time.min, tzinfo=zone)
        responses = responses.filter(submitted_at__gte=start)
    if date_to:
        end = datetime.datetime.combine(
            date_to + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone
        )
        responses = responses.filter(submitted_at__lt=end)
    return responses


def _choice_bars(question: Question, counts: Mapping[str, int], answered: int) -> list[charts.Bar]:
    bars = []
    known = set()
    for choice in question.options.get("choices") or []:
        if not isinstance(choice, dict) or "key" not in choice:
            continue
        key = str(choice["key"])
        known.add(key)
        count = counts.get(key, 0)
        if choice.get("archived") and not count:
            continue
        label = str(choice.get("label", key))
        if choice.get("archived"):
            label = _("%(label)s (archived)") % {"label": label}
        bars.append(charts.Bar(label=label, count=count, percent=charts.percent(count, answered)))
    for key, count in counts.items():
        if key not in known and count:
            bars.append(charts.Bar(label=key, count=count, percent=charts.percent(count, answered)))
    return bars


def _scale_columns(low: int, high: int, counts: Mapping[str, int]) -> list[charts.Column]:
    columns = []
    for point in range(low, high + 1):
        css = ""
        if high == 10:
            css = "detractor" if point <= 6 else "passive" if point <= 8 else "promoter"
        columns.append(
            charts.Column(label=str(point), count=counts.get(str(point), 0), css_class=css)
        )
    return columns


def nps_score(numbers: list[float]) -> NpsScore | None:
    """The NPS of the given answers (0-10)."""
    if not numbers:
        return None
    promoters = sum(1 for n in numbers if n >= 9)
    detractors = sum(1 for n in numbers if n <= 6)
    return _nps(promoters, len(numbers) - promoters - detractors, detractors)


def _nps_of_counts(counts: Mapping[str, int]) -> NpsScore | None:
    """The NPS from the answers counted per scale point."""
    points = [(int(key), count) for key, count in counts.items() if key.lstrip("-").isdigit()]
    promoters = sum(count for point, count in points if point >= 9)
    detractors = sum(count for point, count in points if point <= 6)
    total = sum(count for _point, count in points)
    if not total:
        return None
    return _nps(promoters, total - promoters - detractors, detractors)


def _nps(promoters: int, passives: int, detractors: int) -> NpsScore:
    total = promoters + passives + detractors
    return NpsScore(
        score=round(100 * (promoters - detractors) / total),
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        promoters_percent=charts.percent(promoters, total),
        passives_percent=charts.percent(passives, total),
        detractors_percent=charts.percent(detractors, total),
    )


def _matrix_table(question: Question, counts: Mapping[str, int]) -> MatrixTable:
    columns = [c for c in question.options.get("columns") or [] if isinstance(c, dict)]
    rows = []
    for row in question.options.get("rows") or []:
        if not isinstance(row, dict) or "key" not in row:
            continue
        cells = [counts.get(f"{row['key']}{MATRIX_SEPARATOR}{c.get('key')}", 0) for c in columns]
        rows.append(
            {"label": row.get("label", ""), "archived": bool(row.get("archived")), "cells": cells}
        )
    return MatrixTable(columns=[str(c.get("label", "")) for c in columns], rows=rows)


@dataclass
class _Figures:
    """A question's counters summed over the selected days."""

    answered: int = 0
    numbers: int = 0
    total: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _days(
    queryset: QuerySet[Any], date_from: datetime.date | None, date_to: datetime.date | None
) -> QuerySet[Any]:
    if date_from:
        queryset = queryset.filter(day__gte=date_from)
    if date_to:
        queryset = queryset.filter(day__lte=date_to)
    return queryset


def responses_per_day(
    survey: Survey, *, date_from: datetime.date | None, date_to: datetime.date | None
) -> dict[datetime.date, int]:
    """Responses of each day of the period that has any (one query on the counters)."""
    rows = (
        _days(DailyAnswerCount.objects.filter(survey=survey, question=None), date_from, date_to)
        .values("day")
        .annotate(responses=Sum("count"))
        .order_by("day")
        .values_list("day", "responses")
    )
    return {day: count for day, count in rows if count}


def _figures(
    survey: Survey, *, date_from: datetime.date | None, date_to: datetime.date | None
) -> dict[int, _Figures]:
    rows = (
        _days(DailyAnswerCount.objects.filter(survey=survey), date_from, date_to)
        .exclude(question=None)
        .values("question_id", "key")
        .annotate(
            answers=Sum("count"),
            number_count=Sum("numbers"),
            number_total=Sum("total"),
            smallest=Min("minimum"),
            largest=Max("maximum"),
        )
        .order_by("question_id", "key")
        .values_list(
            "question_id", "key", "answers", "number_count", "number_total", "smallest", "largest"
        )
    )
    figures: dict[int, _Figures] = {}
    for question_id, key, count, numbers, total, minimum, maximum in rows:
        figure = figures.setdefault(question_id, _Figures())
        if key:
            if count:
                figure.counts[key] = count
            continue
        figure.answered = count
        figure.numbers = numbers
        figure.total = total
        figure.minimum = minimum
        figure.maximum = maximum
    return figures


def summarize(
    survey: Survey, *, date_from: datetime.date | None, date_to: datetime.date | None
) -> list[QuestionSummary]:
    """One summary per question, in the survey's order, archived questions last.

    Read from the summary counters (models.py): a constant number of queries whatever the
    number of responses (one more per text question for its latest answers).
    """
    figures = _figures(survey, date_from=date_from, date_to=date_to)
    responses = filter_responses(
        Response.objects.filter(survey=survey), date_from=date_from, date_to=date_to
    )
    summaries = []
    with_texts: list[QuestionSummary] = []
    for question in all_questions(survey):
        figure = figures.get(question.pk) or _Figures()
        summary = QuestionSummary(question=question, answered=figure.answered)
        kind = question.kind
        if kind in CHOICE_KINDS:
            bars = _choice_bars(question, figure.counts, figure.answered)
            summary.chart = charts.bar_chart(bars, title=question.text)
        elif kind in {QuestionKind.RATING, QuestionKind.NPS, QuestionKind.NUMBER}:
            if figure.numbers:
                summary.average = round(figure.total / figure.numbers, 2)
                summary.minimum = figure.minimum
                summary.maximum = figure.maximum
            if kind == QuestionKind.RATING:
                summary.chart = charts.column_chart(
                    _scale_columns(1, 5, figure.counts), title=question.text
                )
            elif kind == QuestionKind.NPS:
                summary.nps = _nps_of_counts(figure.counts)
                summary.chart = charts.column_chart(
                    _scale_columns(0, 10, figure.counts), title=question.text
                )
        elif kind == QuestionKind.MATRIX:
            summary.matrix = _matrix_table(question, figure.counts)
        elif kind in TEXT_KINDS and figure.answered:
            with_texts.append(summary)
        summaries.append(summary)
    texts = latest_texts_of([summary.question for summary in with_texts], responses)
    for summary in with_texts:
        summary.texts = texts[summary.question.pk]
    return summaries


def latest_texts(
    question: Question, responses: QuerySet[Response]
) -> list[tuple[datetime.datetime, str]]:
    """The question's latest answers, newest first (one query over all its answers)."""
    rows = (
        Answer.objects.filter(question=question, response__in=responses)
        .order_by("-response__submitted_at", "-response_id")
        .values_list("response__submitted_at", "value")[:LATEST_TEXTS]
    )
    return [
        (submitted_at, validation.answer_display(question, value)) for submitted_at, value in rows
    ]


# How many of the newest responses each round looks into for text answers
_TEXT_ROUNDS = (200, 5_000, 100_000, None)


def latest_texts_of(
    questions: list[Question], responses: QuerySet[Response]
) -> dict[int, list[tuple[datetime.datetime, str]]]:
    """The latest answers of each of `questions`, newest first, as `latest_texts` gives them.

    Reads the newest responses by the index (survey, submitted_at) and their answers of these
    questions, in rounds of more responses until each question has its answers: two queries
    for all the questions when they are often answered, whatever the number of responses
    (SQLite's planner would otherwise read every answer of the question and sort them).
    """
    found: dict[int, list[tuple[datetime.datetime, Any, str]]] = {}
    wanted = {question.pk: question for question in questions}
    newest = responses.order_by("-submitted_at", "-id").values_list("id", "submitted_at")
    for limit in _TEXT_ROUNDS:
        if not wanted:
            break
        submitted = dict(newest[:limit] if limit else newest)
        rows = Answer.objects.filter(
            question_id__in=list(wanted), response_id__in=list(submitted)
        ).values_list("question_id", "response_id", "value")
        texts: dict[int, list[tuple[datetime.datetime, Any, str]]] = {}
        for question_id, response_id, value in rows:
            display = validation.answer_display(wanted[question_id], value)
            texts.setdefault(question_id, []).append((submitted[response_id], response_id, display))
        for question_id in list(wanted):
            latest = sorted(texts.get(question_id, []), reverse=True)[:LATEST_TEXTS]
            if len(latest) == LATEST_TEXTS or limit is None or len(submitted) < limit:
                found[question_id] = latest
                del wanted[question_id]
    return {
        question_id: [(submitted_at, display) for submitted_at, _id, display in texts]
        for question_id, texts in found.items()
    }


def responses_over_time(per_day: Mapping[datetime.date, int]) -> SafeString | None:
    """Responses per day (per month over long spans), gaps filled with zero."""
    if not per_day:
        return None
    first, last = min(per_day), max(per_day)
    columns = []
    if (last - first).days < DAILY_SPAN_LIMIT:
        day = first
        while day <= last:
            # month/day reads the same in Japanese and English and fits under a column
            columns.append(
                charts.Column(
                    label=f"{day.month}/{day.day}",
                    count=per_day.get(day, 0),
                    title=formats.date_format(day, "SHORT_DATE_FORMAT"),
                )
            )
            day += datetime.timedelta(days=1)
        title = _("Responses per day")
    else:
        per_month: Counter[tuple[int, int]] = Counter()
        for day, count in per_day.items():
            per_month[(day.year, day.month)] += count
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            label = formats.date_format(datetime.date(year, month, 1), "YEAR_MONTH_FORMAT")
            columns.append(charts.Column(label=label, count=per_month[(year, month)], title=label))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        title = _("Responses per month")
    label_every = max(math.ceil(len(columns) / 15), 1)
    return charts.column_chart(columns, title=title, label_every=label_every)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def csv_cell(text: str) -> str:
    """A cell a spreadsheet will not run: text that looks like a formula gets a leading '."""
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


EXPORT_BATCH = 2000
_CACHE_LIMIT = 10_000
_CACHED_KINDS = CHOICE_KINDS | {
    QuestionKind.RATING,
    QuestionKind.NPS,
    QuestionKind.MATRIX,
    QuestionKind.NUMBER,
}
_NEEDS_QUOTES = re.compile('[",\r\n]').search


def _csv_field(text: str) -> str:
    """`text` as a field of a CSV line, quoted as csv.writer quotes it (QUOTE_MINIMAL)."""
    if _NEEDS_QUOTES(text):
        return '"' + text.replace('"', '""') + '"'
    return text


class _CachedCells(dict[str | None, str]):
    """One question's CSV fields by the answer's stored JSON text, computed on first sight.

    The answers of a choice, scale, matrix or number question take few distinct values: a
    field is then one dictionary lookup. Bounded: emptied when it grows past the limit.
    """

    def __init__(self, question: Question) -> None:
        super().__init__({None: ""})
        self.question = question

    def __missing__(self, raw: str) -> str:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
            self[None] = ""
        display = validation.answer_display(self.question, json.loads(raw))
        cell = self[raw] = _csv_field(csv_cell(display))
        return cell


class _PlainCells(dict[str, str]):
    """CSV fields of short texts that repeat (a response's language), by the text."""

    def __missing__(self, text: str) -> str:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        cell = self[text] = _csv_field(csv_cell(text))
        return cell


# A text answer's stored JSON text that is its CSV field once its quotes are taken off: a
# string holding no escape and no comma that does not start like a formula
_PLAIN_TEXT = re.compile(r'"[^=+\-@\\,"][^\\,"]*"').fullmatch


def _text_cell(raw: str | None) -> str:
    """The CSV field of a text answer (short or long text, email, date): its stored JSON text
    read without a JSON decoder when it is a string holding no escape."""
    if raw is None:
        return ""
    if _PLAIN_TEXT(raw):
        return raw[1:-1]
    text = raw[1:-1] if raw[:1] == '"' and "\\" not in raw else str(json.loads(raw))
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        text = "'" + text
    return _csv_field(text)


def _cell_of(question: Question) -> Callable[[str | None], str]:
    if question.kind in _CACHED_KINDS:
        return _CachedCells(question).__getitem__
    if question.kind in TEXT_KINDS:
        return _text_cell

    def computed(raw: str | None) -> str:  # a kind of no known shape: decoded every time
        if raw is None:
            return ""
        return _csv_field(csv_cell(validation.answer_display(question, json.loads(raw))))

    return computed


_MINUTE = datetime.timedelta(minutes=1)
_NO_TIME = datetime.timedelta(0)
# One hour of local times: the local "YYYY-MM-DDTHH:" at the hour's start and at the next
# local hour, the local minute at the start, the offset ("+09:00")
_Hour = tuple[str, str, int, str]


class _LocalTimes(dict[str, _Hour | None]):
    """Submission times as the export writes them, `isoformat(timespec="seconds")` in the
    deployment's time zone ("2026-12-07T10:02:03+09:00"), from the UTC times its queries read
    ("2026-12-07 01:02:03"). Worked out once per UTC hour: a time is then its minute and second
    after the hour's local date and hour (a datetime per row was a quarter of the export's
    Python time). An hour in which the offset changes, or an offset with seconds, is converted
    time by time."""

    def __init__(self, zone: datetime.tzinfo) -> None:
        super().__init__()
        self.zone = zone

    def local(self, utc: str) -> str:
        hour = self[utc[:13]]
        if hour is None:
            moment = datetime.datetime.fromisoformat(utc).replace(tzinfo=datetime.UTC)
            return moment.astimezone(self.zone).isoformat(timespec="seconds")
        at_start, next_hour, minute, offset = hour
        if not minute:
            return at_start + utc[14:19] + offset
        minute += int(utc[14:16])
        if minute < 60:
            return f"{at_start}{minute:02d}{utc[16:19]}{offset}"
        return f"{next_hour}{minute - 60:02d}{utc[16:19]}{offset}"

    def __missing__(self, utc_hour: str) -> _Hour | None:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        start = datetime.datetime.fromisoformat(utc_hour + ":00").replace(tzinfo=datetime.UTC)
        local = start.astimezone(self.zone)
        last = (start + datetime.timedelta(seconds=3599)).astimezone(self.zone)
        offset = local.utcoffset()
        hour: _Hour | None = None
        if offset is not None and offset == last.utcoffset() and offset % _MINUTE == _NO_TIME:
            text = local.isoformat(timespec="seconds")
            after = local + datetime.timedelta(minutes=60 - local.minute)
            hour = (text[:14], after.isoformat()[:14], local.minute, text[19:])
        self[utc_hour] = hour
        return hour


# The export's planner settings (ADR 0005, second pass): no JIT compilation and no parallel
# workers, which the planner chose for the export's earlier queries and which cost more than
# those queries (a cursor's query never runs in parallel anyway), and 32 MB for its sorts.
_EXPORT_PLANNER = {"jit": "off", "max_parallel_workers_per_gather": "0", "work_mem": "32MB"}


@contextmanager
def _planned_for_export() -> Iterator[None]:
    """Within: the export's planner settings for this connection (PostgreSQL), set once for
    the whole export, and given back after it (the connection is kept between requests)."""
    if connection.vendor != "postgresql":
        yield
        return
    names = list(_EXPORT_PLANNER)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(names)),
            [part for name in names for part in (name, _EXPORT_PLANNER[name])],
        )
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config(name, reset_val, false) FROM pg_settings "
                    "WHERE name = ANY(%s)",
                    [names],
                )
        except DatabaseError:
            pass  # a broken connection or transaction takes the settings away with it


# A row of the export's queries: the response id ("0f3c...-..."), its UTC time
# ("2026-12-07 01:02:03"), language, recipient reference, then its answers' stored JSON texts
# in the order of the questions (None where not answered)
_Row = tuple[Any, ...]
_RESPONSE_FIELDS = ("id", "submitted_at", "language", "recipient_reference")


def _answer_columns(question_ids: list[int], value: str) -> str:
    return ", ".join(
        f"max(CASE WHEN question_id = %s THEN {value} END) AS q{index}"
        for index in range(len(question_ids))
    )


def _rows_postgresql(
    responses: QuerySet[Response], question_ids: list[int]
) -> Iterator[list[_Row]]:
    """The export's rows in batches, from one query read through a server-side cursor in one
    transaction (one snapshot): each response's answers found by its id and grouped into its
    row by the database, the time written in UTC by the database. The fetches are pipelined:
    the next batch is asked for before this one is written, so that the database reads it
    meanwhile (1.5 times the responses per second on a loaded machine, ADR 0005)."""
    selected, params = responses.order_by().values_list(*_RESPONSE_FIELDS).query.sql_with_params()
    answers = ", a.*" if question_ids else ""
    lateral = ""
    if question_ids:
        columns = _answer_columns(question_ids, "value::text")
        lateral = (
            f"CROSS JOIN LATERAL (SELECT {columns} FROM {Answer._meta.db_table} "  # noqa: S608
            "WHERE response_id = r.id) AS a"
        )
    sql = (
        "SELECT r.id::text, to_char(r.submitted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), "  # noqa: S608
        f"r.language, r.recipient_reference{answers} FROM ({selected}) AS r {lateral} "
        "ORDER BY r.submitted_at, r.id"
    )
    fetch = f"FETCH FORWARD {EXPORT_BATCH} FROM kizuna_export"
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"DECLARE kizuna_export NO SCROLL CURSOR FOR {sql}", [*params, *question_ids]
            )
        raw = connection.connection
        with raw.pipeline() if psycopg.Pipeline.is_supported() else nullcontext():
            current = raw.cursor()
            current.execute(fetch)
            while True:
                ahead = raw.cursor()
                ahead.execute(fetch)
                batch = current.fetchall()
                if not batch:
                    break
                yield batch
                current = ahead
        with connection.cursor() as cursor:  # within a caller's transaction, an export again
            cursor.execute("CLOSE kizuna_export")


def _rows_sqlite(responses: QuerySet[Response], question_ids: list[int]) -> Iterator[list[_Row]]:
    """The export's rows in batches: responses by their (submitted_at, id) order after the
    last of the previous batch, then that batch's answers in one query grouped by response."""
    selected, params = responses.order_by().values_list(*_RESPONSE_FIELDS).query.sql_with_params()
    first = (
        "SELECT r.id, substr(r.submitted_at, 1, 19), r.language, r.recipient_reference, "  # noqa: S608
        f"r.submitted_at || '' FROM ({selected}) AS r "
    )
    # the first condition alone lets the index (survey, submitted_at) start there
    after_last = first + "WHERE r.submitted_at >= %s AND (r.submitted_at > %s OR r.id > %s) "
    order = "ORDER BY r.submitted_at, r.id LIMIT %s"
    answers_of = (
        f"SELECT response_id, {_answer_columns(question_ids, 'value')} "  # noqa: S608
        f"FROM {Answer._meta.db_table} WHERE response_id IN "
    )
    unanswered = (None,) * len(question_ids)
    last: _Row | None = None
    while True:
        with connection.cursor() as cursor:
            if last is None:
                cursor.execute(first + order, [*params, EXPORT_BATCH])
            else:
                cursor.execute(
                    after_last + order, [*params, last[4], last[4], last[0], EXPORT_BATCH]
                )
            batch = cursor.fetchall()
            if not batch:
                return
            last = batch[-1]
            by_response: dict[str, _Row] = {}
            if question_ids:
                ids = [row[0] for row in batch]
                marks = ", ".join(["%s"] * len(ids))
                cursor.execute(f"{answers_of}({marks}) GROUP BY response_id", [*question_ids, *ids])
                by_response = {row[0]: row[1:] for row in cursor.fetchall()}
        yield [
            (str(uuid.UUID(hex=row[0])), *row[1:4], *by_response.get(row[0], unanswered))
            for row in batch
        ]


def csv_lines(survey: Survey, responses: QuerySet[Response]) -> Generator[str, None, None]:
    """The CSV text: a header, then one row per response, one column per question (labels, not
    keys), in chunks of EXPORT_BATCH rows (each chunk a write to the client).

    The rows come from the database in their (submitted_at, id) order, each with its answers'
    stored JSON texts in the columns' order (`_rows_postgresql`, `_rows_sqlite`), so memory
    stays flat whatever the count and the work left to Python is a lookup per field for
    choice, scale, matrix and number answers (few distinct values), a slice for text, and the
    time placed after its hour's local date (`_LocalTimes`). Fields are quoted as csv.writer
    quotes them.
    """
    questions = all_questions(survey)
    header = [_("Response ID"), _("Submitted at"), _("Language")]
    if not survey.is_anonymous:
        header.append(_("Recipient reference"))
    for question in questions:
        text = question.text
        if question.is_archived:
            text = _("%(label)s (archived)") % {"label": text}
        header.append(text)
    yield ",".join(_csv_field(csv_cell(cell)) for cell in header) + "\r\n"
    times = _LocalTimes(timezone.get_current_timezone())
    languages = _PlainCells()
    with_reference = not survey.is_anonymous
    cells = [_cell_of(question) for question in questions]
    question_ids = [question.pk for question in questions]
    rows = _rows_postgresql if connection.vendor == "postgresql" else _rows_sqlite
    with _planned_for_export():
        for batch in rows(responses, question_ids):
            lines = []
            for row in batch:
                fields = [row[0], times.local(row[1]), languages[row[2]]]
                if with_reference:
                    fields.append(_csv_field(csv_cell(row[3])) if row[3] else "")
                fields += map(call, cells, row[4:])
                lines.append(",".join(fields))
            lines.append("")
            yield "\r\n".join(lines)
