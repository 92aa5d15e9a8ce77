"""charts.py: SVG that is escaped, script-free, style-free (CSP) and proportional."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kizuna.survey.results import charts
from kizuna.survey.results.summaries import nps_score

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own renderer's output


def rects(root: ET.Element, css_class: str = "chart-bar") -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == css_class]


def test_bar_chart_draws_bars_proportional_to_counts_with_count_and_percent() -> None:
    svg = charts.bar_chart(
        [charts.Bar("Apple", 4, 80.0), charts.Bar("Banana", 1, 20.0), charts.Bar("Cherry", 0, 0.0)],
        title="Fruit",
    )

    root = parse(svg)
    bars = [
        float(r.get("width", "")) for r in root.iter(f"{SVG}rect") if r.get("class") == "chart-bar"
    ]
    values = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "chart-value"]
    assert bars == [470.0, 117.5, 0.0]
    assert values == ["4 (80.0%)", "1 (20.0%)", "0 (0.0%)"]
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Fruit"


def test_chart_labels_are_escaped_and_the_svg_has_no_script_or_style() -> None:
    svg = charts.bar_chart([charts.Bar('<script>alert("x")</script>', 1, 100.0)], title="<b>t</b>")

    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "style" not in svg
    assert "href" not in svg
    parse(svg)  # well-formed


def test_long_labels_are_shortened_but_kept_whole_in_the_tooltip() -> None:
    label = "x" * 100

    svg = charts.bar_chart([charts.Bar(label, 1, 100.0)], title="t")

    assert ("x" * 59 + "…") in svg
    assert f"<title>{label}: 1 (100.0%)</title>" in svg


def test_column_chart_marks_nps_groups_with_classes() -> None:
    columns = [
        charts.Column(label=str(n), count=1, css_class="promoter" if n > 8 else "detractor")
        for n in range(11)
    ]

    svg = charts.column_chart(columns, title="NPS")

    root = parse(svg)
    classes = [g.get("class", "").split() for g in root.iter(f"{SVG}g")]
    assert [c[1] for c in classes] == ["detractor"] * 9 + ["promoter"] * 2
    heights = {r.get("height") for r in rects(root)}
    assert heights == {"136.0"}


def test_column_chart_of_nothing_draws_flat_columns() -> None:
    svg = charts.column_chart([charts.Column("1", 0), charts.Column("2", 0)], title="Empty")

    assert [r.get("height") for r in rects(parse(svg))] == ["0", "0"]


def test_nps_is_percent_promoters_minus_percent_detractors() -> None:
    score = nps_score([10, 9, 9, 8, 7, 6, 0, 10, 10, 3])

    assert score is not None
    assert (score.promoters, score.passives, score.detractors) == (5, 2, 3)
    assert score.score == 20
    assert (score.promoters_percent, score.passives_percent, score.detractors_percent) == (
        50.0,
        20.0,
        30.0,
    )
    assert nps_score([]) is None
