"""Each question kind's validation, good and bad input (validate_answer, validate_bounds,
answer_display, answer_labels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st

from kizuna.survey.validation import (
    answer_display,
    answer_labels,
    validate_answer,
    validate_bounds,
)


@dataclass
class Q:
    kind: str
    is_required: bool = False
    options: dict[str, Any] = field(default_factory=dict)


CHOICES = {
    "choices": [
        {"key": "a", "label": "Apple"},
        {"key": "b", "label": "Banana"},
        {"key": "c", "label": "Cherry"},
        {"key": "old", "label": "Durian", "archived": True},
    ]
}
MATRIX: dict[str, list[dict[str, Any]]] = {
    "rows": [
        {"key": "r1", "label": "Speed"},
        {"key": "r2", "label": "Price"},
        {"key": "gone", "label": "Taste", "archived": True},
    ],
    "columns": [{"key": "c1", "label": "Bad"}, {"key": "c2", "label": "Good"}],
}
THIRD_ROW = {"key": "r3", "label": "Comfort"}


def error_code(question: Q, raw: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        validate_answer(question, raw)
    return str(caught.value.code)


@pytest.mark.parametrize("kind", ["single_choice", "dropdown", "short_text", "number", "email"])
def test_empty_optional_answer_is_none(kind: str) -> None:
    assert validate_answer(Q(kind), []) is None
    assert validate_answer(Q(kind), ["  "]) is None


@pytest.mark.parametrize(
    "kind", ["single_choice", "multiple_choice", "long_text", "date", "rating", "nps"]
)
def test_empty_required_answer_is_refused(kind: str) -> None:
    assert error_code(Q(kind, is_required=True, options=CHOICES), []) == "required"


def test_required_message_is_translated_to_japanese() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_answer(Q("short_text", is_required=True), [])
    with translation.override("ja"):
        assert caught.value.messages == ["この質問は回答必須です。"]


def test_single_choice_accepts_an_active_key() -> None:
    assert validate_answer(Q("single_choice", options=CHOICES), ["b"]) == "b"


def test_single_choice_refuses_unknown_archived_and_several_keys() -> None:
    question = Q("single_choice", options=CHOICES)
    assert error_code(question, ["zzz"]) == "invalid_choice"
    assert error_code(question, ["old"]) == "invalid_choice"
    assert error_code(question, ["a", "b"]) == "too_many"


def test_dropdown_behaves_as_single_choice() -> None:
    question = Q("dropdown", options=CHOICES)
    assert validate_answer(question, ["c"]) == "c"
    assert error_code(question, ["x"]) == "invalid_choice"


def test_multiple_choice_keeps_choice_order_and_drops_duplicates() -> None:
    question = Q("multiple_choice", options=CHOICES)
    assert validate_answer(question, ["c", "a", "c"]) == ["a", "c"]


def test_multiple_choice_enforces_min_and_max_picks() -> None:
    question = Q("multiple_choice", options={**CHOICES, "min_picks": 2, "max_picks": 2})
    assert validate_answer(question, ["a", "b"]) == ["a", "b"]
    assert error_code(question, ["a"]) == "too_few"
    assert error_code(question, ["a", "b", "c"]) == "too_many"
    assert error_code(question, ["a", "old"]) == "invalid_choice"


def test_short_text_is_stripped_and_limited_to_500_characters() -> None:
    question = Q("short_text")
    assert validate_answer(question, ["  hello  "]) == "hello"
    assert validate_answer(question, ["x" * 500]) == "x" * 500
    assert error_code(question, ["x" * 501]) == "too_long"


def test_long_text_keeps_line_breaks_and_is_limited_to_10000_characters() -> None:
    question = Q("long_text")
    assert validate_answer(question, ["one\ntwo"]) == "one\ntwo"
    assert error_code(question, ["x" * 10_001]) == "too_long"


def test_number_accepts_integers_decimals_and_thousands_separators() -> None:
    question = Q("number")
    assert validate_answer(question, ["42"]) == 42
    assert validate_answer(question, ["-1.5"]) == -1.5
    assert validate_answer(question, ["1,200"]) == 1200
    assert validate_answer(question, ["3.0"]) == 3


def test_number_refuses_text_infinity_and_bounds() -> None:
    question = Q("number", options={"min": 0, "max": 10})
    assert validate_answer(question, ["10"]) == 10
    assert error_code(question, ["ten"]) == "invalid"
    assert error_code(question, ["Infinity"]) == "invalid"
    assert error_code(question, ["NaN"]) == "invalid"
    assert error_code(question, ["-1"]) == "too_small"
    assert error_code(question, ["10.5"]) == "too_large"


def test_email_is_checked_and_its_domain_lower_cased() -> None:
    question = Q("email")
    assert validate_answer(question, ["Ada@Example.COM"]) == "Ada@example.com"
    assert error_code(question, ["not-an-address"]) == "invalid"
    assert error_code(question, ["a@b@c"]) == "invalid"


def test_date_accepts_iso_dates_only() -> None:
    question = Q("date")
    assert validate_answer(question, ["2026-02-28"]) == "2026-02-28"
    assert validate_answer(question, ["2026/03/01"]) == "2026-03-01"
    assert error_code(question, ["2026-02-30"]) == "invalid"
    assert error_code(question, ["yesterday"]) == "invalid"


@pytest.mark.parametrize(("kind", "low", "high"), [("rating", 1, 5), ("nps", 0, 10)])
def test_scales_accept_their_range_only(kind: str, low: int, high: int) -> None:
    question = Q(kind)
    assert validate_answer(question, [str(low)]) == low
    assert validate_answer(question, [str(high)]) == high
    assert error_code(question, [str(low - 1)]) == "out_of_range"
    assert error_code(question, [str(high + 1)]) == "out_of_range"
    assert error_code(question, ["2.5"]) == "out_of_range"


def test_matrix_maps_rows_to_columns() -> None:
    question = Q("matrix", options=MATRIX)
    assert validate_answer(question, {"r1": ["c2"], "r2": "c1"}) == {"r1": "c2", "r2": "c1"}
    assert validate_answer(question, {"r1": [], "r2": []}) is None


def test_matrix_refuses_unknown_columns_archived_rows_and_lists() -> None:
    question = Q("matrix", options=MATRIX)
    assert error_code(question, {"r1": ["c9"]}) == "invalid_choice"
    assert error_code(question, {"gone": ["c1"]}) == "invalid"
    assert error_code(question, ["c1"]) == "invalid"


def test_required_matrix_needs_every_active_row() -> None:
    question = Q("matrix", is_required=True, options=MATRIX)
    assert error_code(question, {"r1": ["c1"]}) == "incomplete"
    assert error_code(question, {}) == "required"
    assert validate_answer(question, {"r1": ["c1"], "r2": ["c1"]}) == {"r1": "c1", "r2": "c1"}


def test_non_matrix_refuses_a_mapping() -> None:
    assert error_code(Q("short_text"), {"a": "b"}) == "invalid"


def test_answer_display_uses_labels_including_archived_ones() -> None:
    assert answer_display(Q("single_choice", options=CHOICES), "old") == "Durian"
    assert answer_display(Q("multiple_choice", options=CHOICES), ["a", "c"]) == "Apple, Cherry"
    assert (
        answer_display(Q("matrix", options=MATRIX), {"gone": "c2", "r1": "c1"})
        == "Speed: Bad; Taste: Good"
    )
    assert answer_display(Q("number"), 1.5) == "1.5"
    assert answer_display(Q("nps"), 7) == "7"
    assert answer_display(Q("short_text"), None) == ""


@given(st.integers(min_value=-(10**14), max_value=10**14))
def test_any_integer_round_trips_through_number(value: int) -> None:
    assert validate_answer(Q("number"), [str(value)]) == value


@given(st.text(max_size=60))
def test_number_never_raises_anything_but_validation_error(text: str) -> None:
    try:
        result = validate_answer(Q("number"), [text])
    except ValidationError:
        return
    assert result is None or isinstance(result, (int, float))


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=6))
def test_multiple_choice_result_is_a_sorted_subset(picks: list[str]) -> None:
    result = validate_answer(Q("multiple_choice", options=CHOICES), picks)
    if not picks:
        assert result is None
    else:
        assert result == sorted(set(picks))


@given(st.text(max_size=600))
def test_short_text_result_is_stripped_input_or_an_error(text: str) -> None:
    stripped = text.strip()
    expected_error = (
        "too_long" if len(stripped) > 500 else "null_character" if "\x00" in stripped else None
    )
    try:
        result = validate_answer(Q("short_text"), [text])
    except ValidationError as error:
        assert error.code == expected_error
        return
    assert expected_error is None
    assert result == (stripped or None)


@given(st.integers(min_value=-50, max_value=50))
def test_nps_accepts_exactly_zero_to_ten(value: int) -> None:
    question = Q("nps")
    if 0 <= value <= 10:
        assert validate_answer(question, [str(value)]) == value
    else:
        assert error_code(question, [str(value)]) == "out_of_range"


@given(st.dates())
def test_any_date_round_trips(day: Any) -> None:
    assert validate_answer(Q("date"), [day.isoformat()]) == day.isoformat()


# --- What respondents rely on (issue 14) -----------------------------------------------------


def messages_of(question: Q, raw: Any, language: str = "en") -> list[str]:
    with pytest.raises(ValidationError) as caught:
        validate_answer(question, raw)
    with translation.override(language):
        return [str(message) for message in caught.value.messages]


@pytest.mark.parametrize("kind", ["short_text", "long_text"])
def test_a_nul_character_in_a_text_answer_is_refused_with_a_clear_message(kind: str) -> None:
    question = Q(kind)

    assert error_code(question, ["before\x00after"]) == "null_character"
    assert messages_of(question, ["\x00"]) == [
        "This answer contains a NUL character, which cannot be saved. Remove it and send again."
    ]
    assert messages_of(question, ["a\x00"], "ja") == [
        "この回答にはNUL文字が含まれているため保存できません。削除してから再度送信してください。"
    ]


def test_an_answer_equal_to_a_bound_is_accepted() -> None:
    number = Q("number", options={"min": 5, "max": 7.5})
    picks = Q("multiple_choice", options={**CHOICES, "min_picks": 2, "max_picks": 2})

    assert validate_answer(number, ["5"]) == 5
    assert validate_answer(number, ["7.5"]) == 7.5
    assert validate_answer(picks, ["a", "c"]) == ["a", "c"]
    assert validate_answer(Q("short_text"), ["x" * 500]) == "x" * 500
    assert validate_answer(Q("long_text"), ["y" * 10_000]) == "y" * 10_000
    assert validate_answer(Q("rating"), ["1"]) == 1
    assert validate_answer(Q("rating"), ["5"]) == 5


MESSAGES = [
    # (question, answer, code, the respondent's message)
    (Q("short_text"), {"a": "b"}, "invalid", "This answer is not valid."),
    (Q("mystery"), ["x"], "invalid", "This answer is not valid."),
    (Q("single_choice", options=CHOICES), ["a", "b"], "too_many", "Give one answer only."),
    (
        Q("single_choice", options=CHOICES),
        ["zzz"],
        "invalid_choice",
        "Pick one of the offered choices.",
    ),
    (
        Q("multiple_choice", options=CHOICES),
        ["a", "zzz"],
        "invalid_choice",
        "Pick only from the offered choices.",
    ),
    (
        Q("multiple_choice", options={**CHOICES, "min_picks": 2}),
        ["a"],
        "too_few",
        "Pick more choices: the minimum is 2.",
    ),
    (
        Q("multiple_choice", options={**CHOICES, "max_picks": 1}),
        ["a", "b"],
        "too_many",
        "Pick fewer choices: the maximum is 1.",
    ),
    (
        Q("short_text"),
        ["x" * 501],
        "too_long",
        "Write at most 500 characters (this answer has 501).",
    ),
    (
        Q("long_text"),
        ["x" * 10_002],
        "too_long",
        "Write at most 10000 characters (this answer has 10002).",
    ),
    (Q("number"), ["ten"], "invalid", "Enter a number."),
    (Q("number"), ["Infinity"], "invalid", "Enter a number."),
    (Q("number", options={"min": 2.5}), ["2"], "too_small", "Enter a number of at least 2.5."),
    (Q("number", options={"max": 7}), ["8"], "too_large", "Enter a number of at most 7."),
    (Q("email"), ["not-an-address"], "invalid", "Enter a valid email address."),
    (Q("date"), ["yesterday"], "invalid", "Enter a date as YYYY-MM-DD."),
    (Q("rating"), ["6"], "out_of_range", "Pick a value from 1 to 5."),
    (Q("nps"), ["-1"], "out_of_range", "Pick a value from 0 to 10."),
    (Q("matrix", options=MATRIX), ["c1"], "invalid", "This answer is not valid."),
    (Q("matrix", options=MATRIX), {"gone": ["c1"]}, "invalid", "This answer is not valid."),
    (
        Q("matrix", options=MATRIX),
        {"r2": ["c9"]},
        "invalid_choice",
        "Pick one of the offered columns in “Price”.",
    ),
    (
        Q("matrix", is_required=True, options=MATRIX),
        {"r2": ["c1"]},
        "incomplete",
        "Answer every row (missing: Speed).",
    ),
    (
        Q("matrix", is_required=True, options={**MATRIX, "rows": [*MATRIX["rows"], THIRD_ROW]}),
        {"r2": ["c1"]},
        "incomplete",
        "Answer every row (missing: Speed, Comfort).",
    ),
]


@pytest.mark.parametrize(("question", "raw", "code", "message"), MESSAGES)
def test_each_refused_answer_says_exactly_what_is_wrong(
    question: Q, raw: Any, code: str, message: str
) -> None:
    assert error_code(question, raw) == code
    assert messages_of(question, raw) == [message]


def test_refusals_are_in_japanese_for_japanese_respondents() -> None:
    assert messages_of(Q("rating"), ["9"], "ja") == ["1〜5 の値を選んでください。"]
    assert messages_of(Q("number", options={"min": 3}), ["1"], "ja") == [
        "3 以上の数値を入力してください。"
    ]


def test_a_matrix_row_without_a_label_is_named_empty() -> None:
    rows = [{"key": "r1"}, {"key": "r2", "label": "Price"}]
    question = Q("matrix", is_required=True, options={"rows": rows, "columns": MATRIX["columns"]})

    assert messages_of(question, {"r2": ["c1"]}) == ["Answer every row (missing: )."]
    assert messages_of(question, {"r1": ["c9"]}) == ["Pick one of the offered columns in “”."]


def test_an_optional_matrix_keeps_the_rows_answered_after_an_empty_one() -> None:
    question = Q("matrix", options=MATRIX)

    assert validate_answer(question, {"r1": [], "r2": ["c2"]}) == {"r2": "c2"}


def test_an_archived_matrix_column_is_refused() -> None:
    columns = [*MATRIX["columns"], {"key": "c3", "label": "Old", "archived": True}]
    question = Q("matrix", options={**MATRIX, "columns": columns})

    assert error_code(question, {"r1": ["c3"]}) == "invalid_choice"
    assert validate_answer(question, {"r1": ["c2"]}) == {"r1": "c2"}


def test_malformed_choices_in_the_options_are_ignored() -> None:
    options = {"choices": [{"label": "no key"}, "keyboard", {"key": "a", "label": "Apple"}]}
    question = Q("single_choice", options=options)

    assert validate_answer(question, ["a"]) == "a"
    assert error_code(question, ["no key"]) == "invalid_choice"
    assert answer_display(question, "a") == "Apple"


def test_empty_pick_and_number_bounds_mean_no_bound() -> None:
    picks = Q("multiple_choice", options={**CHOICES, "min_picks": "", "max_picks": ""})
    number = Q("number", options={"min": "", "max": None})

    assert validate_answer(picks, ["a", "b", "c"]) == ["a", "b", "c"]
    assert validate_answer(number, ["-99999"]) == -99999


def test_a_single_string_is_one_answer() -> None:
    assert validate_answer(Q("short_text"), "  hello ") == "hello"
    assert validate_answer(Q("single_choice", options=CHOICES), "b") == "b"


def test_numbers_take_full_width_commas_and_stop_below_a_thousand_trillion() -> None:
    question = Q("number")

    assert validate_answer(question, ["1，234，567"]) == 1234567
    assert validate_answer(question, ["999999999999999"]) == 999_999_999_999_999
    assert error_code(question, ["1000000000000000"]) == "invalid"
    assert error_code(question, ["-1000000000000000"]) == "invalid"


def test_only_the_domain_of_an_email_is_lower_cased() -> None:
    assert validate_answer(Q("email"), ['"A@B"@Example.COM']) == '"A@B"@example.com'


def test_answer_display_falls_back_to_the_stored_value() -> None:
    unlabelled = Q("dropdown", options={"choices": [{"key": "a"}, {"key": "b", "label": "B"}]})

    assert answer_display(unlabelled, "a") == ""
    assert answer_display(unlabelled, "b") == "B"
    assert answer_display(unlabelled, "gone") == "gone"
    assert answer_display(Q("multiple_choice", options=CHOICES), ["a", "zz"]) == "Apple, zz"
    assert answer_display(Q("multiple_choice", options=CHOICES), "old") == "Durian"
    assert answer_display(Q("matrix", options=MATRIX), {"r9": "c9", "r1": "c2"}) == (
        "Speed: Good; r9: c9"
    )
    assert answer_display(Q("short_text"), {"a": 1}) == "{'a': 1}"


# --- validate_bounds: what a respondent keeps between pages ----------------------------------


def keeps(question: Q, raw: Any) -> bool:
    """Whether validate_bounds lets a respondent keep `raw` between pages."""
    try:
        validate_bounds(question, raw)
    except ValidationError:
        return False
    return True


def bounds_refusal(question: Q, raw: Any) -> tuple[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        validate_bounds(question, raw)
    with translation.override("en"):
        return str(caught.value.code), [str(message) for message in caught.value.messages]


@pytest.mark.parametrize(("kind", "limit"), [("short_text", 500), ("long_text", 10_000)])
def test_a_kept_text_may_be_exactly_as_long_as_on_submit_and_not_one_character_more(
    kind: str, limit: int
) -> None:
    assert keeps(Q(kind), ["x" * limit])
    assert bounds_refusal(Q(kind), ["x" * (limit + 1)]) == (
        "too_long",
        [f"Write at most {limit} characters (this answer has {limit + 1})."],
    )


def test_a_kept_answer_of_any_other_kind_is_limited_like_a_short_text() -> None:
    assert keeps(Q("number"), ["1" * 500])
    assert bounds_refusal(Q("email"), ["x" * 501])[0] == "too_long"


def test_an_unfinished_answer_is_kept_even_when_submit_would_refuse_it() -> None:
    assert keeps(Q("short_text", is_required=True), [])
    assert keeps(Q("single_choice", is_required=True, options=CHOICES), ["zzz"])
    assert keeps(Q("matrix", is_required=True, options=MATRIX), {})
    assert keeps(Q("short_text"), "a single string is one answer")


def test_the_longest_part_of_a_kept_answer_is_the_one_measured() -> None:
    question = Q("multiple_choice", options=CHOICES)

    assert keeps(question, ["a", "x" * 500])
    assert bounds_refusal(question, ["a", "x" * 501, "b"]) == (
        "too_long",
        ["Write at most 500 characters (this answer has 501)."],
    )


def test_a_kept_multiple_choice_may_pick_every_offered_choice_and_no_more() -> None:
    question = Q("multiple_choice", options=CHOICES)  # three active choices, one archived

    assert keeps(question, ["a", "b", "c"])
    assert bounds_refusal(question, ["a", "b", "c", "old"]) == (
        "invalid_choice",
        ["Pick only from the offered choices."],
    )


def test_a_kept_one_answer_question_refuses_a_second_answer() -> None:
    for question in (Q("single_choice", options=CHOICES), Q("short_text"), Q("rating")):
        assert keeps(question, ["a"])
        assert bounds_refusal(question, ["a", "b"]) == ("too_many", ["Give one answer only."])


def test_a_kept_answer_is_measured_as_submit_reads_it_trimmed_without_empty_parts() -> None:
    """What submit accepts is kept between pages: spaces around a text, an empty part and a
    choice picked twice do not count (they did, and refused answers submit takes)."""
    padded_short, padded_long = " " + "x" * 500, "x" * 10_000 + "\n"
    assert validate_answer(Q("short_text"), [padded_short]) == "x" * 500
    assert keeps(Q("short_text"), [padded_short])
    assert validate_answer(Q("long_text"), [padded_long]) == "x" * 10_000
    assert keeps(Q("long_text"), [padded_long])
    assert validate_answer(Q("short_text"), ["a", ""]) == "a"
    assert keeps(Q("short_text"), ["a", "  "])
    picked_again = Q("multiple_choice", options=CHOICES)  # three active choices
    assert validate_answer(picked_again, ["a", "a", "a", "a"]) == ["a"]
    assert keeps(picked_again, ["a", "a", "a", "a"])
    assert keeps(Q("matrix", options=MATRIX), {"r1": [" c1 ", ""], "r2": "c2"})

    assert bounds_refusal(Q("short_text"), [" " + "x" * 501 + " "]) == (
        "too_long",
        ["Write at most 500 characters (this answer has 501)."],
    )


def test_a_kept_matrix_is_checked_row_by_row() -> None:
    question = Q("matrix", options=MATRIX)

    assert keeps(question, {"r1": ["c1"], "r2": "c2"})
    assert bounds_refusal(question, {"r1": ["c1"], "r2": ["c1", "c2"]}) == (
        "too_many",
        ["Give one answer only."],
    )
    assert bounds_refusal(question, {"r1": ["c1"], "r2": ["x" * 501]}) == (
        "too_long",
        ["Write at most 500 characters (this answer has 501)."],
    )


# --- answer_labels: the labels of an answer as data (webhooks, API) ---------------------------


@pytest.mark.parametrize("kind", ["single_choice", "dropdown"])
def test_a_one_choice_answer_gives_its_key_and_label(kind: str) -> None:
    assert answer_labels(Q(kind, options=CHOICES), "b") == {
        "choices": [{"key": "b", "label": "Banana"}],
        "rows": None,
    }


def test_a_multiple_choice_answer_gives_each_pick_in_stored_order() -> None:
    assert answer_labels(Q("multiple_choice", options=CHOICES), ["c", "a"]) == {
        "choices": [{"key": "c", "label": "Cherry"}, {"key": "a", "label": "Apple"}],
        "rows": None,
    }
    assert answer_labels(Q("multiple_choice", options=CHOICES), "b") == {
        "choices": [{"key": "b", "label": "Banana"}],
        "rows": None,
    }


def test_choice_labels_include_archived_ones_and_unknown_keys_stand_for_themselves() -> None:
    unlabelled = Q("dropdown", options={"choices": [{"key": "a"}]})

    assert answer_labels(Q("multiple_choice", options=CHOICES), ["old", "zz", 7]) == {
        "choices": [
            {"key": "old", "label": "Durian"},
            {"key": "zz", "label": "zz"},
            {"key": "7", "label": "7"},
        ],
        "rows": None,
    }
    assert answer_labels(unlabelled, "a")["choices"] == [{"key": "a", "label": ""}]
    assert answer_labels(Q("single_choice", options=CHOICES), "old")["choices"] == [
        {"key": "old", "label": "Durian"}
    ]


def test_a_matrix_answer_gives_its_rows_in_the_questions_order_then_extra_keys() -> None:
    options = {
        **MATRIX,
        "columns": [*MATRIX["columns"], {"key": "c0", "label": "Awful", "archived": True}],
    }
    value = {"r9": "c9", "r2": "c1", "gone": "c0", "r1": "c2"}

    assert answer_labels(Q("matrix", options=options), value) == {
        "choices": None,
        "rows": [
            {"key": "r1", "label": "Speed", "column": {"key": "c2", "label": "Good"}},
            {"key": "r2", "label": "Price", "column": {"key": "c1", "label": "Bad"}},
            {"key": "gone", "label": "Taste", "column": {"key": "c0", "label": "Awful"}},
            {"key": "r9", "label": "r9", "column": {"key": "c9", "label": "c9"}},
        ],
    }


@pytest.mark.parametrize(
    ("question", "value"),
    [
        (Q("single_choice", options=CHOICES), None),
        (Q("dropdown", options=CHOICES), None),
        (Q("multiple_choice", options=CHOICES), None),
        (Q("matrix", options=MATRIX), None),
        (Q("matrix", options=MATRIX), "r1"),
        (Q("short_text"), "a"),
        (Q("short_text", options=MATRIX), {"r1": "c1"}),
        (Q("number", options=CHOICES), 3),
        (Q("rating"), 5),
    ],
)
def test_no_answer_and_other_kinds_have_no_labels(question: Q, value: Any) -> None:
    assert answer_labels(question, value) == {"choices": None, "rows": None}
