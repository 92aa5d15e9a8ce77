"""What the results pages compute: per-question summaries, responses over time, CSV rows.

Pure reads. Every function takes the already filtered queryset of responses so
that the date filter applies to everything on the page and in the export.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connection
from django.db.models import Max, Min, Q, QuerySet, Sum
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
_DISPLAY_CACHE_LIMIT = 10_000
_CACHED_KINDS = CHOICE_KINDS | {
    QuestionKind.RATING,
    QuestionKind.NPS,
    QuestionKind.MATRIX,
    QuestionKind.NUMBER,
}


class _CachedCells(dict[str | None, str]):
    """One question's CSV cells by the answer's stored JSON text, computed on first sight.

    The answers of a choice, scale, matrix or number question take few distinct values: a
    cell is then one dictionary lookup. Bounded: emptied when it grows past the limit.
    """

    def __init__(self, question: Question) -> None:
        super().__init__({None: ""})
        self.question = question

    def __missing__(self, raw: str) -> str:
        if len(self) >= _DISPLAY_CACHE_LIMIT:
            self.clear()
            self[None] = ""
        cell = self[raw] = csv_cell(validation.answer_display(self.question, json.loads(raw)))
        return cell


def _text_cell(raw: str | None) -> str:
    """The CSV cell of a text answer (short or long text, email, date): its stored JSON text
    read without a JSON decoder when it is a string holding no escape."""
    if raw is None:
        return ""
    text = raw[1:-1] if raw[:1] == '"' and "\\" not in raw else str(json.loads(raw))
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _cell_of(question: Question) -> Callable[[str | None], str]:
    if question.kind in _CACHED_KINDS:
        return _CachedCells(question).__getitem__
    if question.kind in TEXT_KINDS:
        return _text_cell

    def computed(raw: str | None) -> str:  # a kind of no known shape: decoded every time
        if raw is None:
            return ""
        return csv_cell(validation.answer_display(question, json.loads(raw)))

    return computed


# How PostgreSQL plans the export's queries. The planner overestimates the answers of an id
# array (about 4 times, the ids being random): it then starts parallel workers and JIT-compiles
# the query, which cost more than the query, and sorts the answers to group them, as too many
# for a hash table (a batch of 2,000 at load 20: 311 ms, 123 ms without the workers and JIT,
# 79 ms hashed). A batch is bounded, so is the memory its hash table takes.
_EXPORT_PLANNER = {"jit": "off", "max_parallel_workers_per_gather": "0", "work_mem": "32MB"}


@contextmanager
def _planned_for_export() -> Iterator[None]:
    """Within: the export's planner settings for this connection (PostgreSQL), set once for
    all the batches rather than in a transaction of each (each statement a round trip)."""
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


def _answers_of(response_ids: list[Any], question_ids: list[int]) -> dict[str, tuple[Any, ...]]:
    """The given responses' answers, by the response id's hex digits: for each, its answers'
    stored JSON texts in the order of `question_ids` (None where not answered).

    One query by the index (response, question), grouped into one row per response by the
    database; the ids as one array parameter on PostgreSQL.
    """
    table = Answer._meta.db_table
    postgresql = connection.vendor == "postgresql"
    value = "value::text" if postgresql else "value"
    columns = ", ".join([f"max(CASE WHEN question_id = %s THEN {value} END)"] * len(question_ids))
    with connection.cursor() as cursor:
        if postgresql:
            cursor.execute(
                f"SELECT replace(response_id::text, '-', ''), {columns} "  # noqa: S608
                f"FROM {table} WHERE response_id = ANY(%s) GROUP BY response_id",
                [*question_ids, response_ids],
            )
        else:
            marks = ", ".join(["%s"] * len(response_ids))
            cursor.execute(
                f"SELECT response_id, {columns} FROM {table} "  # noqa: S608
                f"WHERE response_id IN ({marks}) GROUP BY response_id",
                [*question_ids, *(response_id.hex for response_id in response_ids)],
            )
        return {row[0]: row[1:] for row in cursor.fetchall()}


def csv_lines(survey: Survey, responses: QuerySet[Response]) -> Generator[str, None, None]:
    """The CSV text: a header, then one row per response, one column per question (labels, not
    keys), in chunks of many rows (each chunk a write to the client).

    Responses are read in batches by their (submitted_at, id) order and each batch's answers in
    one query, one row per response with its values as stored JSON text in the columns' order,
    so memory stays flat whatever the count and the work left to Python is a lookup per cell
    for choice, scale, matrix and number answers (few distinct values) and a slice for text.
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
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([csv_cell(cell) for cell in header])
    yield buffer.getvalue()
    zone = timezone.get_current_timezone()
    question_ids = [question.pk for question in questions]
    cells = [_cell_of(question) for question in questions]
    unanswered: tuple[None, ...] = (None,) * len(questions)
    with_reference = not survey.is_anonymous
    fields = ("id", "submitted_at", "language", "recipient_reference")
    ordered = responses.order_by("submitted_at", "id").values_list(*fields)
    after: tuple[datetime.datetime, Any] | None = None
    with _planned_for_export():
        while True:
            page = ordered
            if after is not None:
                # the first condition alone lets the index (survey, submitted_at) start there
                page = page.filter(submitted_at__gte=after[0]).filter(
                    Q(submitted_at__gt=after[0]) | Q(id__gt=after[1])
                )
            batch = list(page[:EXPORT_BATCH])
            if not batch:
                return
            after = (batch[-1][1], batch[-1][0])
            answers = _answers_of([row[0] for row in batch], question_ids) if questions else {}
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            rows = []
            for response_id, submitted_at, language, reference in batch:
                row = [
                    str(response_id),
                    submitted_at.astimezone(zone).isoformat(timespec="seconds"),
                    csv_cell(language),
                ]
                if with_reference:
                    row.append(csv_cell(reference))
                values = answers.get(response_id.hex, unanswered)
                row += [cell(raw) for cell, raw in zip(cells, values, strict=True)]
                rows.append(row)
            writer.writerows(rows)
            yield buffer.getvalue()
