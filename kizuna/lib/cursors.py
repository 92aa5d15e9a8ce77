"""Opaque cursors for keyset pages ordered by (a moment, a primary key).

A cursor carries the values of the last row shown, so the next page starts
right after it without OFFSET (stable while rows are added, and as fast on page
1,000 as on page 1). It is an encoding, not a secret: never trust what it says
beyond the order of rows the caller is already allowed to see.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import Model, Q, QuerySet
from django.utils import timezone

__all__ = ["NewestFirstPage", "decode_cursor", "encode_cursor", "newest_first"]

RowT = TypeVar("RowT", bound=Model)


def encode_cursor(at: datetime.datetime, pk: Any) -> str:
    raw = json.dumps([at.isoformat(), str(pk)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime.datetime, str] | None:
    """The (aware moment, primary key as text) in `cursor`, or None when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, pk = json.loads(raw)
        moment = datetime.datetime.fromisoformat(at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    if timezone.is_naive(moment) or not isinstance(pk, str):
        return None
    return moment, pk


def integer_position(cursor: str) -> tuple[datetime.datetime, int] | None:
    """The (moment, integer primary key) of `cursor`, or None when it is not one of ours."""
    decoded = decode_cursor(cursor) if cursor else None
    # A bigint has at most 19 digits: a longer number would be a database error, not a page.
    if decoded is None or not decoded[1].isdigit() or len(decoded[1]) > 18:
        return None
    return decoded[0], int(decoded[1])


@dataclass(frozen=True)
class NewestFirstPage(Generic[RowT]):
    """One page of rows, newest first; `older_cursor` is None on the last page."""

    rows: list[RowT]
    older_cursor: str | None
    is_first: bool


def newest_first(
    rows: QuerySet[RowT], *, before: str, size: int, moment: str = "created_at"
) -> NewestFirstPage[RowT]:
    """The `size` rows older than the cursor `before` (the newest ones without one).

    Rows are ordered by (`moment`, integer pk) descending; a cursor that is not one
    of ours starts again from the newest rows.
    """
    ordered = rows.order_by(f"-{moment}", "-pk")
    position = integer_position(before)
    if position is not None:
        at, pk = position
        ordered = ordered.filter(Q(**{f"{moment}__lt": at}) | Q(**{moment: at, "pk__lt": pk}))
    page = list(ordered[: size + 1])
    last = page[size - 1] if len(page) > size else None
    return NewestFirstPage(
        rows=page[:size],
        older_cursor=encode_cursor(getattr(last, moment), last.pk) if last is not None else None,
        is_first=position is None,
    )
