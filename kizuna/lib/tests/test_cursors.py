from __future__ import annotations

import datetime
import uuid

import pytest

from kizuna.lib.cursors import decode_cursor, encode_cursor

TOKYO = datetime.timezone(datetime.timedelta(hours=9))


def test_a_cursor_gives_back_the_exact_moment_and_key() -> None:
    at = datetime.datetime(2026, 11, 30, 9, 15, 30, 123456, tzinfo=TOKYO)
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")

    assert decode_cursor(encode_cursor(at, key)) == (at, str(key))
    assert decode_cursor(encode_cursor(at, 42)) == (at, "42")


def test_a_cursor_is_safe_in_a_url() -> None:
    cursor = encode_cursor(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), "?&=/+")

    assert cursor.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "bm90IGpzb24",  # "not json"
        "WzEsIDJd",  # [1, 2]
        "WyIyMDI2LTExLTMwVDA5OjAwOjAwIiwgIjEiXQ",  # a naive moment
        "WyIyMDI2LTExLTMwVDA5OjAwOjAwKzA5OjAwIiwgMV0",  # a key that is not text
        "/w",  # not UTF-8
    ],
)
def test_anything_else_is_not_a_cursor(cursor: str) -> None:
    assert decode_cursor(cursor) is None
