"""merge_items: editing a list of choices, rows or columns keeps every answered key readable."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kizuna.survey.builder.services import merge_items

labels = st.lists(st.sampled_from(["A", "B", "C", "D", "E", "F"]), unique=True, max_size=6)


def items(names: list[str]) -> list[dict[str, Any]]:
    return [{"key": f"k{name}", "label": name} for name in names]


@given(before=labels, after=labels, used_names=labels)
def test_edits_keep_order_unique_keys_and_every_answered_key(
    before: list[str], after: list[str], used_names: list[str]
) -> None:
    existing = items(before)
    used = {f"k{name}" for name in used_names if name in before}
    merged = merge_items(existing, after, used)

    active = [item for item in merged.items if not item.get("archived")]
    assert [item["label"] for item in active] == after
    keys = [item["key"] for item in merged.items]
    assert len(keys) == len(set(keys))
    assert used <= set(keys)  # no answered key ever disappears
    by_key = {item["key"]: item for item in merged.items}
    for name in before:
        if name in after:  # an unchanged label keeps its key and stays active
            assert by_key[f"k{name}"]["label"] == name
            assert not by_key[f"k{name}"].get("archived")


def test_a_renamed_line_in_place_keeps_its_key() -> None:
    merged = merge_items(items(["A", "B", "C"]), ["A", "Bee", "C"], used={"kB"})
    assert [(i["key"], i["label"]) for i in merged.items] == [
        ("kA", "A"),
        ("kB", "Bee"),
        ("kC", "C"),
    ]
    assert merged.archived_labels == []


def test_a_removed_answered_line_is_archived_and_reported() -> None:
    merged = merge_items(items(["A", "B", "C"]), ["A", "C"], used={"kB"})
    assert merged.items[-1] == {"key": "kB", "label": "B", "archived": True}
    assert merged.archived_labels == ["B"]


def test_a_removed_unanswered_line_is_dropped() -> None:
    merged = merge_items(items(["A", "B", "C"]), ["A", "C"], used=set())
    assert [i["label"] for i in merged.items] == ["A", "C"]
