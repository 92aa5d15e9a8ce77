"""Server-rendered SVG charts for the results pages.

Our own small renderer rather than a chart library: the SVG comes from
templates (so every label is escaped), carries no script and no inline style,
and is styled by class names from a static stylesheet, which the strict
Content-Security-Policy allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

LABEL_LIMIT = 60
BAR_CHART_WIDTH = 600
COLUMN_CHART_WIDTH = 600
COLUMN_CHART_HEIGHT = 180


@dataclass(frozen=True)
class Bar:
    """One row of a bar chart: a choice and how many picked it."""

    label: str
    count: int
    percent: float
    css_class: str = ""


@dataclass(frozen=True)
class Column:
    """One column of a column chart (a rating value, an NPS score, a day)."""

    label: str
    count: int
    css_class: str = ""
    title: str = ""


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _short(label: str) -> str:
    return label if len(label) <= LABEL_LIMIT else label[: LABEL_LIMIT - 1] + "…"


def bar_chart(bars: Sequence[Bar], *, title: str) -> SafeString:
    """Horizontal bars, one per choice, each with its label above and count and % beside."""
    row_height = 44
    bar_area = BAR_CHART_WIDTH - 130
    peak = max((bar.count for bar in bars), default=0)
    rows = []
    for index, bar in enumerate(bars):
        top = index * row_height
        width = round(bar_area * bar.count / peak, 1) if peak else 0
        rows.append(
            {
                "label": _short(bar.label),
                "full_label": bar.label,
                "count": bar.count,
                "percent": bar.percent,
                "css_class": bar.css_class,
                "label_y": top + 14,
                "bar_y": top + 20,
                "width": max(width, 1 if bar.count else 0),
                "value_x": width + 8,
            }
        )
    height = max(len(bars) * row_height, row_height)
    svg = render_to_string(
        "survey/results/bar_chart.svg",
        {"rows": rows, "title": title, "width": BAR_CHART_WIDTH, "height": height},
    )
    return mark_safe(svg)  # noqa: S308 - rendered by a template with autoescaping


def column_chart(columns: Sequence[Column], *, title: str, label_every: int = 1) -> SafeString:
    """Vertical columns over a baseline with their labels under it (scales, days)."""
    plot_top, plot_height = 18, COLUMN_CHART_HEIGHT - 44
    count = max(len(columns), 1)
    slot = COLUMN_CHART_WIDTH / count
    bar_width = max(min(slot * 0.7, 48), 1)
    peak = max((column.count for column in columns), default=0)
    drawn = []
    for index, column in enumerate(columns):
        height = round(plot_height * column.count / peak, 1) if peak else 0
        x = index * slot + (slot - bar_width) / 2
        drawn.append(
            {
                "label": column.label,
                "show_label": index % max(label_every, 1) == 0,
                "count": column.count,
                "title": column.title or column.label,
                "css_class": column.css_class,
                "x": round(x, 1),
                "width": round(bar_width, 1),
                "y": round(plot_top + plot_height - height, 1),
                "height": height,
                "center": round(x + bar_width / 2, 1),
                "value_y": round(plot_top + plot_height - height - 4, 1),
                "label_y": plot_top + plot_height + 16,
            }
        )
    svg = render_to_string(
        "survey/results/column_chart.svg",
        {
            "columns": drawn,
            "title": title,
            "width": COLUMN_CHART_WIDTH,
            "height": COLUMN_CHART_HEIGHT,
            "baseline": plot_top + plot_height,
            "show_values": len(columns) <= 31,
        },
    )
    return mark_safe(svg)  # noqa: S308 - rendered by a template with autoescaping
