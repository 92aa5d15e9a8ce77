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
from typing import Any

from django.utils import timezone

__all__ = ["decode_cursor", "encode_cursor"]


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
