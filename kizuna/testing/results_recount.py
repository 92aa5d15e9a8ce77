"""The straightforward summary and export the fast ones must equal: every answer loaded and
counted (or displayed) in Python, as the results pages computed them before the counters and
the export's grouped answers (docs/adr/0005)."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from kizuna.survey import validation
from kizuna.survey.models import Answer, QuestionKind, Response, Survey
from kizuna.survey.results import charts
from kizuna.survey.results.summaries import (
    CHOICE_KINDS,
    TEXT_KINDS,
    MatrixTable,
    QuestionSummary,
    all_questions,
    csv_cell,
    latest_texts,
    nps_score,
)
from kizuna.survey.results.summaries import _choice_bars as choice_bars_of_counts


def _choice_bars(question: Any, values: list[Any]) -> list[charts.Bar]:
    counts: Counter[str] = Counter()
    for value in values:
        for key in value if isinstance(value, list) else [value]:
            counts[str(key)] += 1
    return choice_bars_of_counts(question, counts, len(values))


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


def _matrix_table(question: Any, values: list[Any]) -> MatrixTable:
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


def recount(survey: Survey, responses: QuerySet[Response]) -> list[QuestionSummary]:
    values_by_question: dict[int, list[Any]] = {}
    for question_id, value in Answer.objects.filter(response__in=responses).values_list(
        "question_id", "value"
    ):
        values_by_question.setdefault(question_id, []).append(value)
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


def responses_per_day(responses: QuerySet[Response]) -> dict[datetime.date, int]:
    zone = timezone.get_current_timezone()
    return dict(
        responses.order_by()
        .annotate(day=TruncDate("submitted_at", tzinfo=zone))
        .values("day")
        .annotate(count=Count("id"))
        .values_list("day", "count")
    )


def export_rows(survey: Survey, responses: QuerySet[Response]) -> list[list[str]]:
    """The CSV export's rows (the header left out): each response's answers loaded as objects
    and displayed one by one."""
    questions = all_questions(survey)
    zone = timezone.get_current_timezone()
    rows = []
    for response in responses.order_by("submitted_at", "id").prefetch_related("answers"):
        values = {answer.question_id: answer.value for answer in response.answers.all()}
        row = [
            str(response.pk),
            response.submitted_at.astimezone(zone).isoformat(timespec="seconds"),
            csv_cell(response.language),
        ]
        if not survey.is_anonymous:
            row.append(csv_cell(response.recipient_reference))
        row += [
            csv_cell(validation.answer_display(question, values[question.pk]))
            if question.pk in values
            else ""
            for question in questions
        ]
        rows.append(row)
    return rows
