"""Control characters in typed text: which ones a single-line and a multi-line field refuse."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st

from kizuna.lib.text import control_character, validate_multi_line, validate_single_line

REFUSED_EVERYWHERE = [
    *(chr(code) for code in range(0x00, 0x09)),
    "\x0b",
    "\x0c",
    *(chr(code) for code in range(0x0E, 0x20)),
    *(chr(code) for code in range(0x7F, 0xA0)),
    "\u2028",
    "\u2029",
]
LINE_BREAKS = ["\n", "\r"]


@pytest.mark.parametrize("character", REFUSED_EVERYWHERE + LINE_BREAKS)
def test_a_single_line_field_refuses_control_characters_and_line_breaks(character: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_single_line(f"X{character}Bcc: victim@example.com")

    assert raised.value.code == "control_character"
    assert raised.value.messages == [
        "Line breaks and other control characters are not allowed here "
        f"(found U+{ord(character):04X})."
    ]


@pytest.mark.parametrize("character", REFUSED_EVERYWHERE)
def test_a_multi_line_field_refuses_control_characters(character: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_multi_line(f"first line\r\nsecond{character}")

    assert raised.value.messages == [
        f"Control characters are not allowed here (found U+{ord(character):04X})."
    ]


def test_tabs_and_ordinary_text_in_every_script_are_accepted() -> None:
    for value in ("Ada\tLovelace", "山田 太郎", "Ñandú — “quoted” ﾃｽﾄ 🙂", ""):
        validate_single_line(value)
        validate_multi_line(value)
    validate_multi_line("line one\nline two\r\nline three\r")


def test_the_message_is_in_japanese_too() -> None:
    with pytest.raises(ValidationError) as raised:
        validate_single_line("X\r\nBcc: y")

    with translation.override("ja"):
        assert raised.value.messages == [
            "ここには改行やその他の制御文字を入力できません（U+000D が含まれています）。"
        ]


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_a_value_is_refused_exactly_when_it_holds_a_refused_character(value: str) -> None:
    refused = set(REFUSED_EVERYWHERE)
    expected = next((c for c in value if c in refused or c in LINE_BREAKS), None)
    assert control_character(value) == (f"U+{ord(expected):04X}" if expected else None)
    expected_multi = next((c for c in value if c in refused), None)
    assert control_character(value, multi_line=True) == (
        f"U+{ord(expected_multi):04X}" if expected_multi else None
    )
