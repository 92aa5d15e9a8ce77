"""Validation and display of one answer, per question kind (pure: no database writes).

How to call it from a response form (one field name per question, e.g. f"q{question.pk}"):

    raw = request.POST.getlist(f"q{question.pk}")               # every kind but matrix
    raw = {row["key"]: request.POST.getlist(f"q{question.pk}-{row['key']}")
           for row in active_rows(question)}                    # matrix: row key -> list
    value = validate_answer(question, raw)   # raises django ValidationError (translated)
    if value is not None:
        Answer(question=question, value=value, ...)

`validate_answer` returns None when an optional question is left empty (store no
Answer then). The stored value by kind:

- single_choice, dropdown: the choice key (str)
- multiple_choice: list of choice keys, in the question's choice order
- short_text, long_text: the stripped text (str)
- number: int, or float when it has a fraction
- email: the address, domain lower-cased (str)
- date: ISO date "YYYY-MM-DD" (str)
- rating (1–5), nps (0–10): int
- matrix: {row key: column key}

`answer_display(question, value)` turns a stored value back into text for people,
using the labels of archived choices, rows and columns too, so that old answers
stay readable after the question is edited.

Only non-archived choices, rows and columns are accepted as new answers.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Protocol

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

SHORT_TEXT_MAX_LENGTH = 500
LONG_TEXT_MAX_LENGTH = 10_000
NUMBER_LIMIT = Decimal("1e15")  # beyond this a float loses whole units


class QuestionLike(Protocol):
    """What validation needs from a question (a Question model or a test double)."""

    kind: str
    is_required: bool
    options: Any


RawAnswer = Sequence[str] | Mapping[str, Sequence[str] | str]


def all_items(question: QuestionLike, name: str) -> list[dict[str, Any]]:
    """Every item of options[name] ("choices", "rows", "columns"), archived ones included."""
    items = (question.options or {}).get(name) or []
    return [item for item in items if isinstance(item, dict) and "key" in item]


def active_choices(question: QuestionLike) -> list[dict[str, Any]]:
    """The choices a respondent may pick (archived ones only stay for old answers)."""
    return [c for c in all_items(question, "choices") if not c.get("archived")]


def active_rows(question: QuestionLike) -> list[dict[str, Any]]:
    return [r for r in all_items(question, "rows") if not r.get("archived")]


def active_columns(question: QuestionLike) -> list[dict[str, Any]]:
    return [c for c in all_items(question, "columns") if not c.get("archived")]


def _labels(question: QuestionLike, name: str) -> dict[str, str]:
    return {str(item["key"]): str(item.get("label", "")) for item in all_items(question, name)}


def _int_option(question: QuestionLike, name: str) -> int | None:
    """The option as an integer; None when it is missing, empty or not a number."""
    value: Any = (question.options or {}).get(name)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _number_option(question: QuestionLike, name: str) -> Decimal | None:
    """The option as a Decimal; None when it is missing, empty or not a number."""
    value = (question.options or {}).get(name)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _required() -> ValidationError:
    return ValidationError(_("This question requires an answer."), code="required")


def _strings(raw: RawAnswer) -> list[str]:
    if isinstance(raw, Mapping):
        raise ValidationError(_("This answer is not valid."), code="invalid")
    if isinstance(raw, str):
        raw = [raw]
    return [str(part).strip() for part in raw if str(part).strip()]


def validate_answer(question: QuestionLike, raw: RawAnswer) -> Any:
    """The value to store for `raw`, None for an empty optional answer; ValidationError if bad."""
    if question.kind == "matrix":
        return _validate_matrix(question, raw)
    parts = _strings(raw)
    if not parts:
        if question.is_required:
            raise _required()
        return None
    validator = _VALIDATORS.get(question.kind)
    if validator is None:
        raise ValidationError(_("This answer is not valid."), code="invalid")
    return validator(question, parts)


def validate_bounds(question: QuestionLike, raw: RawAnswer) -> None:
    """ValidationError when `raw` is larger than any valid answer of the question can be.

    What a respondent keeps between pages is checked with this rather than validate_answer:
    an unfinished answer may be kept, an oversized one is never kept (the limits are the
    same as on submit).
    """
    lists = list(raw.values()) if isinstance(raw, Mapping) else [raw]
    # Each answer (each row of a matrix) as submit reads it: trimmed, empty parts dropped.
    answers = [_strings(_as_list(value)) for value in lists]
    limit = LONG_TEXT_MAX_LENGTH if question.kind == "long_text" else SHORT_TEXT_MAX_LENGTH
    longest = max((len(part) for parts in answers for part in parts), default=0)
    if longest > limit:
        raise ValidationError(
            _("Write at most %(limit)d characters (this answer has %(length)d)."),
            code="too_long",
            params={"limit": limit, "length": longest},
        )
    if question.kind == "multiple_choice":
        # A choice picked twice counts once, as on submit.
        if any(len(set(parts)) > len(active_choices(question)) for parts in answers):
            raise ValidationError(_("Pick only from the offered choices."), code="invalid_choice")
    elif any(len(parts) > 1 for parts in answers):
        raise ValidationError(_("Give one answer only."), code="too_many")


def _one(parts: list[str]) -> str:
    if len(parts) > 1:
        raise ValidationError(_("Give one answer only."), code="too_many")
    return parts[0]


def _validate_choice(question: QuestionLike, parts: list[str]) -> str:
    key = _one(parts)
    if key not in {c["key"] for c in active_choices(question)}:
        raise ValidationError(_("Pick one of the offered choices."), code="invalid_choice")
    return key


def _validate_multiple(question: QuestionLike, parts: list[str]) -> list[str]:
    order = [c["key"] for c in active_choices(question)]
    picked = set(parts)
    if not picked <= set(order):
        raise ValidationError(_("Pick only from the offered choices."), code="invalid_choice")
    min_picks = _int_option(question, "min_picks")
    max_picks = _int_option(question, "max_picks")
    if min_picks is not None and len(picked) < min_picks:
        raise ValidationError(
            _("Pick more choices: the minimum is %(count)d."),
            code="too_few",
            params={"count": min_picks},
        )
    if max_picks is not None and len(picked) > max_picks:
        raise ValidationError(
            _("Pick fewer choices: the maximum is %(count)d."),
            code="too_many",
            params={"count": max_picks},
        )
    return [key for key in order if key in picked]


def _validate_text(question: QuestionLike, parts: list[str], *, limit: int) -> str:
    text = _one(parts)
    if len(text) > limit:
        raise ValidationError(
            _("Write at most %(limit)d characters (this answer has %(length)d)."),
            code="too_long",
            params={"limit": limit, "length": len(text)},
        )
    if "\x00" in text:
        # PostgreSQL cannot store it, and no keyboard types it: refuse it, saying what it is.
        raise ValidationError(
            _(
                "This answer contains a NUL character, which cannot be saved. Remove it and "
                "send again."
            ),
            code="null_character",
        )
    return text


def _validate_number(question: QuestionLike, parts: list[str]) -> int | float:
    text = _one(parts).replace(",", "").replace("，", "")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValidationError(_("Enter a number."), code="invalid") from None
    if not number.is_finite() or abs(number) >= NUMBER_LIMIT:
        raise ValidationError(_("Enter a number."), code="invalid")
    minimum = _number_option(question, "min")
    maximum = _number_option(question, "max")
    if minimum is not None and number < minimum:
        raise ValidationError(
            _("Enter a number of at least %(min)s."), code="too_small", params={"min": minimum}
        )
    if maximum is not None and number > maximum:
        raise ValidationError(
            _("Enter a number of at most %(max)s."), code="too_large", params={"max": maximum}
        )
    if number == number.to_integral_value():
        return int(number)
    return float(number)


def _validate_email(question: QuestionLike, parts: list[str]) -> str:
    address = _one(parts)
    try:
        validate_email(address)
    except ValidationError:
        raise ValidationError(_("Enter a valid email address."), code="invalid") from None
    local, _at, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def _validate_date(question: QuestionLike, parts: list[str]) -> str:
    text = _one(parts)
    try:
        day = datetime.date.fromisoformat(text.replace("/", "-"))
    except ValueError:
        raise ValidationError(_("Enter a date as YYYY-MM-DD."), code="invalid") from None
    return day.isoformat()


def _validate_scale(question: QuestionLike, parts: list[str], *, low: int, high: int) -> int:
    text = _one(parts)
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ValidationError(
            _("Pick a value from %(low)d to %(high)d."),
            code="out_of_range",
            params={"low": low, "high": high},
        )
    return value


def _validate_matrix(question: QuestionLike, raw: RawAnswer) -> dict[str, str] | None:
    if not isinstance(raw, Mapping):
        raise ValidationError(_("This answer is not valid."), code="invalid")
    rows = active_rows(question)
    columns = {c["key"] for c in active_columns(question)}
    unknown_rows = set(raw) - {r["key"] for r in rows}
    answers: dict[str, str] = {}
    for row_key in unknown_rows:
        if _strings(_as_list(raw[row_key])):
            raise ValidationError(_("This answer is not valid."), code="invalid")
    for row in rows:
        parts = _strings(_as_list(raw.get(row["key"], [])))
        if not parts:
            continue
        column = _one(parts)
        if column not in columns:
            raise ValidationError(
                _("Pick one of the offered columns in “%(row)s”."),
                code="invalid_choice",
                params={"row": row.get("label", "")},
            )
        answers[row["key"]] = column
    if not answers:
        if question.is_required:
            raise _required()
        return None
    if question.is_required:
        missing = [r.get("label", "") for r in rows if r["key"] not in answers]
        if missing:
            raise ValidationError(
                _("Answer every row (missing: %(rows)s)."),
                code="incomplete",
                params={"rows": ", ".join(missing)},
            )
    return answers


def _as_list(value: Sequence[str] | str) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


_VALIDATORS: dict[str, Any] = {
    "single_choice": _validate_choice,
    "dropdown": _validate_choice,
    "multiple_choice": _validate_multiple,
    # Partials, not closures: each call goes through the function itself (mutation testing
    # switches mutants per call, docs/mutation.md).
    "short_text": partial(_validate_text, limit=SHORT_TEXT_MAX_LENGTH),
    "long_text": partial(_validate_text, limit=LONG_TEXT_MAX_LENGTH),
    "number": _validate_number,
    "email": _validate_email,
    "date": _validate_date,
    "rating": partial(_validate_scale, low=1, high=5),
    "nps": partial(_validate_scale, low=0, high=10),
}


def answer_labels(question: QuestionLike, value: Any) -> dict[str, list[dict[str, Any]] | None]:
    """The labels of an answer as data, for programs (webhooks and the API), beside its text:
    `choices` [{"key", "label"}] picked (choice kinds), `rows` [{"key", "label", "column":
    {"key", "label"}}] answered (matrix, in the question's row order); None for other kinds.
    Archived labels are included; a key without any label stands for itself."""
    choices: list[dict[str, Any]] | None = None
    rows: list[dict[str, Any]] | None = None
    kind = question.kind
    if kind in {"single_choice", "dropdown", "multiple_choice"} and value is not None:
        labels = _labels(question, "choices")
        keys = value if isinstance(value, list) else [value]
        choices = [{"key": str(key), "label": labels.get(str(key), str(key))} for key in keys]
    elif kind == "matrix" and isinstance(value, dict):
        row_labels = _labels(question, "rows")
        columns = _labels(question, "columns")
        ordered = [key for key in row_labels if key in value]
        ordered += [key for key in value if key not in row_labels]
        rows = [
            {
                "key": key,
                "label": row_labels.get(key, key),
                "column": {
                    "key": str(value[key]),
                    "label": columns.get(str(value[key]), str(value[key])),
                },
            }
            for key in ordered
        ]
    return {"choices": choices, "rows": rows}


def answer_display(question: QuestionLike, value: Any) -> str:
    """A stored answer as text, with the labels it had (archived ones included)."""
    if value is None:
        return ""
    kind = question.kind
    if kind in {"single_choice", "dropdown"}:
        return _labels(question, "choices").get(str(value), str(value))
    if kind == "multiple_choice":
        labels = _labels(question, "choices")
        keys = value if isinstance(value, list) else [value]
        return ", ".join(labels.get(str(key), str(key)) for key in keys)
    if kind == "matrix" and isinstance(value, dict):
        rows = _labels(question, "rows")
        columns = _labels(question, "columns")
        ordered = [key for key in rows if key in value] + [k for k in value if k not in rows]
        return "; ".join(
            f"{rows.get(key, key)}: {columns.get(str(value[key]), str(value[key]))}"
            for key in ordered
        )
    return str(value)
