"""What the results pages compute: per-question summaries, responses over time, CSV rows.

Pure reads. Every function takes the already filtered queryset of responses so
that the date filter applies to everything on the page and in the export.
"""

from __future__ import annotations

import datetime
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import formats, timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from kizuna.survey import validation
from kizuna.survey.models import Answer, Question, QuestionKind, Response, Survey
from kizuna.survey.results import charts

TEXT_KINDS = {
    QuestionKind.SHORT_TEXT,
    QuestionKind.LONG_TEXT,
    QuestionKind.EMAIL,
    QuestionKind.DATE,
}
CHOICE_KINDS = {QuestionKind.SINGLE_CHOICE, QuestionKind.MULTIPLE_CHOICE, QuestionKind.DROPDOWN}
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


def _values_by_question(responses: QuerySet[Response]) -> dict[int, list[Any]]:
    values: dict[int, list[Any]] = {}
    rows = Answer.objects.filter(response__in=responses).values_list("question_id", "value")
    for question_id, value in rows.iterator(chunk_size=2000):
        values.setdefault(question_id, []).append(value)
    return values


def _choice_bars(question: Question, values: list[Any]) -> list[charts.Bar]:
    counts: Counter[str] = Counter()
    for value in values:
        for key in value if isinstance(value, list) else [value]:
            counts[str(key)] += 1
    bars = []
    known = set()
    for choice in question.options.get("choices") or []:
        if not isinstance(choice, dict) or "key" not in choice:
            continue
        key = str(choice["key"])
        known.add(key)
        if choice.get("archived") and not counts[key]:
            continue
        label = str(choice.get("label", key))
        if choice.get("archived"):
            label = _("%(label)s (archived)") % {"label": label}
        bars.append(
            charts.Bar(
                label=label, count=counts[key], percent=charts.percent(counts[key], len(values))
            )
        )
    for key, count in counts.items():
        if key not in known:
            bars.append(
                charts.Bar(label=key, count=count, percent=charts.percent(count, len(values)))
            )
    return bars


def _numbers(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _scale_columns(low: int, high: int, numbers: list[float]) -> list[charts.Column]:
    counts = Counter(int(n) for n in numbers)
    columns = []
    for point in range(low, high + 1):
        css = ""
        if high == 10:
            css = "detractor" if point <= 6 else "passive" if point <= 8 else "promoter"
        columns.append(charts.Column(label=str(point), count=counts[point], css_class=css))
    return columns


def nps_score(numbers: list[float]) -> NpsScore | None:
    if not numbers:
        return None
    promoters = sum(1 for n in numbers if n >= 9)
    detractors = sum(1 for n in numbers if n <= 6)
    passives = len(numbers) - promoters - detractors
    total = len(numbers)
    return NpsScore(
        score=round(100 * (promoters - detractors) / total),
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        promoters_percent=charts.percent(promoters, total),
        passives_percent=charts.percent(passives, total),
        detractors_percent=charts.percent(detractors, total),
    )


def _matrix_table(question: Question, values: list[Any]) -> MatrixTable:
    columns = [c for c in question.options.get("columns") or [] if isinstance(c, dict)]
    counts: Counter[tuple[str, str]] = Counter()
    for value in values:
        if isinstance(value, dict):
            for row_key, column_key in value.items():
                counts[(str(row_key), str(column_key))] += 1
    rows = []
    for row in question.options.get("rows") or []:
        if not isinstance(row, dict) or "key" not in row:
            continue
        cells = [counts[(str(row["key"]), str(c.get("key")))] for c in columns]
        rows.append(
            {"label": row.get("label", ""), "archived": bool(row.get("archived")), "cells": cells}
        )
    return MatrixTable(columns=[str(c.get("label", "")) for c in columns], rows=rows)


def summarize(survey: Survey, responses: QuerySet[Response]) -> list[QuestionSummary]:
    """One summary per question, in the survey's order, archived questions last."""
    values_by_question = _values_by_question(responses)
    summaries = []
    for question in all_questions(survey):
        values = values_by_question.get(question.pk, [])
        summary = QuestionSummary(question=question, answered=len(values))
        kind = question.kind
        if kind in CHOICE_KINDS:
            summary.chart = charts.bar_chart(_choice_bars(question, values), title=question.text)
        elif kind in {QuestionKind.RATING, QuestionKind.NPS, QuestionKind.NUMBER}:
            numbers = _numbers(values)
            if numbers:
                summary.average = round(sum(numbers) / len(numbers), 2)
                summary.minimum = min(numbers)
                summary.maximum = max(numbers)
            if kind == QuestionKind.RATING:
                summary.chart = charts.column_chart(
                    _scale_columns(1, 5, numbers), title=question.text
                )
            elif kind == QuestionKind.NPS:
                summary.nps = nps_score(numbers)
                summary.chart = charts.column_chart(
                    _scale_columns(0, 10, numbers), title=question.text
                )
        elif kind == QuestionKind.MATRIX:
            summary.matrix = _matrix_table(question, values)
        elif kind in TEXT_KINDS:
            summary.texts = latest_texts(question, responses)
        summaries.append(summary)
    return summaries


def latest_texts(
    question: Question, responses: QuerySet[Response]
) -> list[tuple[datetime.datetime, str]]:
    rows = (
        Answer.objects.filter(question=question, response__in=responses)
        .order_by("-response__submitted_at")
        .values_list("response__submitted_at", "value")[:LATEST_TEXTS]
    )
    return [
        (submitted_at, validation.answer_display(question, value)) for submitted_at, value in rows
    ]


def responses_over_time(responses: QuerySet[Response]) -> SafeString | None:
    """Responses per day (per month over long spans), gaps filled with zero."""
    zone = timezone.get_current_timezone()
    per_day = dict(
        responses.order_by()
        .annotate(day=TruncDate("submitted_at", tzinfo=zone))
        .values("day")
        .annotate(count=Count("id"))
        .values_list("day", "count")
    )
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


def csv_rows(survey: Survey, responses: QuerySet[Response]) -> Iterator[list[str]]:
    """The header, then one row per response: one column per question, labels not keys."""
    questions = all_questions(survey)
    header = [_("Response ID"), _("Submitted at"), _("Language")]
    if not survey.is_anonymous:
        header.append(_("Recipient reference"))
    for question in questions:
        text = question.text
        if question.is_archived:
            text = _("%(label)s (archived)") % {"label": text}
        header.append(text)
    yield [csv_cell(cell) for cell in header]
    zone = timezone.get_current_timezone()
    batch: list[Response] = []

    def rows_of(batch: list[Response]) -> Iterator[list[str]]:
        answers: dict[tuple[Any, int], Any] = {
            (response_id, question_id): value
            for response_id, question_id, value in Answer.objects.filter(
                response__in=batch
            ).values_list("response_id", "question_id", "value")
        }
        for response in batch:
            row = [
                str(response.pk),
                response.submitted_at.astimezone(zone).isoformat(timespec="seconds"),
                response.language,
            ]
            if not survey.is_anonymous:
                row.append(response.recipient_reference)
            for question in questions:
                value = answers.get((response.pk, question.pk))
                row.append(validation.answer_display(question, value))
            yield [csv_cell(cell) for cell in row]

    for response in responses.order_by("submitted_at", "id").iterator(chunk_size=500):
        batch.append(response)
        if len(batch) == 500:
            yield from rows_of(batch)
            batch = []
    if batch:
        yield from rows_of(batch)
