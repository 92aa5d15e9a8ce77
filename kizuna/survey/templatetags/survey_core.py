"""Template helpers of the Survey core pages."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from kizuna.survey import validation
from kizuna.survey.models import Question

register = template.Library()


@register.simple_tag
def maybe_url(name: str, *args: Any) -> str:
    """The URL of `name`, or "" when that page is not part of this deployment (yet)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


@register.filter
def question_summary(question: Question) -> str:
    """What a respondent can answer, in one line: the choices, a range, rows × columns."""
    options = question.options or {}
    kind = question.kind
    if kind in {"single_choice", "multiple_choice", "dropdown"}:
        text = " · ".join(c["label"] for c in validation.active_choices(question))
        low, high = options.get("min_picks"), options.get("max_picks")
        if kind == "multiple_choice" and (low or high):
            picks = _("picks: %(low)s–%(high)s") % {"low": low or 0, "high": high or "∞"}
            text = f"{text} ({picks})"
        return text
    if kind == "number" and (options.get("min") is not None or options.get("max") is not None):
        return _("range: %(low)s–%(high)s") % {
            "low": options.get("min", "−∞"),
            "high": options.get("max", "∞"),
        }
    if kind == "matrix":
        rows = " · ".join(r["label"] for r in validation.active_rows(question))
        columns = " · ".join(c["label"] for c in validation.active_columns(question))
        return f"{rows} × {columns}"
    return ""
