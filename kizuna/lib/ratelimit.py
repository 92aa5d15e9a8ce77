"""Rate limits every server process agrees on, kept in the shared cache.

The cache is the database (settings.CACHES), so several `serve` processes on several
machines count together. Two kinds:

- take() and reserve(): fixed windows; a window opens at a subject's first event.
- take_smoothed(): a token bucket (the GCRA form: one stored instant per subject). A
  rate COUNT/SECONDS lets COUNT events through at once (the burst allowance) and then one
  every SECONDS/COUNT: the allowance comes back continuously, as in a sliding window,
  rather than all at once when a fixed window ends. Made for crowds behind one address.

Counting in take() and reserve() is read-modify-write: a burst of simultaneous requests may
slip a few past the limit, which a rate limit can afford. take_smoothed() is one statement,
exact under concurrency (it runs on every public survey submission: issue 11).
"""

from __future__ import annotations

import datetime
import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from kizuna.config import Rate

MICROSECONDS = 1_000_000


def _key(scope: str, subject: str) -> str:
    return f"ratelimit:{scope}:{_digest(subject)}"


def _window(key: str, rate: Rate, now: float) -> dict[str, float]:
    entry = cache.get(key)
    if not isinstance(entry, dict) or entry.get("reset", 0) <= now:
        return {"count": 0, "reset": now + rate.seconds}
    return entry


def take(scope: str, subject: str, rate: Rate) -> int:
    """Count one event of `subject` (a client address, an email) in `scope`.

    Returns 0 while the window holds at most `rate.count` events, else the whole
    seconds (at least 1) until the window ends and the subject may act again.
    """
    key = _key(scope, subject)
    now = time.time()
    entry = _window(key, rate, now)
    entry["count"] += 1
    remaining = max(math.ceil(entry["reset"] - now), 1)
    cache.set(key, entry, timeout=remaining)
    return 0 if entry["count"] <= rate.count else remaining


@dataclass(frozen=True)
class Reservation:
    """The answer of reserve(): `wait` 0 when the events were counted, else the seconds until
    the window ends; `left`, the events the window still allows (after these when counted)."""

    wait: int
    left: int


def reserve(scope: str, subject: str, rate: Rate, count: int) -> Reservation:
    """Count `count` events of `subject` at once if they all fit in the window, else none.

    For an action that is done whole or not at all (a batch of emails): refused, it
    leaves the counter as it was.
    """
    key = _key(scope, subject)
    now = time.time()
    entry = _window(key, rate, now)
    seconds = max(math.ceil(entry["reset"] - now), 1)
    left = max(rate.count - int(entry["count"]), 0)
    if count > left:
        return Reservation(wait=seconds, left=left)
    entry["count"] += count
    cache.set(key, entry, timeout=seconds)
    return Reservation(wait=0, left=left - count)


def take_smoothed(scope: str, subject: str, rate: Rate) -> int:
    """Count one event of `subject` in `scope` against a token bucket of `rate`.

    Returns 0 when counted, else the whole seconds (at least 1) until one more event fits;
    a refused event is not counted, so a crowd that tries again is not pushed further back.

    One statement, in autocommit: an upsert of the cache table's row of the subject that
    moves its theoretical arrival time forward only when the event fits (the row holds that
    instant as text, under a key of its own that the cache API never reads). Concurrent
    events of one subject are counted one after the other by the database, exactly: none
    slips past the limit. A refused event reads the row once more for the wait.
    """
    key = cache.make_key(f"ratelimit-bucket:{scope}:{_digest(subject)}")
    # Whole microseconds: exact in the text of the row on both databases.
    now = round(time.time() * MICROSECONDS)
    interval = round(rate.seconds * MICROSECONDS / rate.count)
    burst = rate.seconds * MICROSECONDS
    table = connection.ops.quote_name(settings.CACHES["default"]["LOCATION"])
    stored = (
        f"CAST({table}.value AS {'bigint' if connection.vendor == 'postgresql' else 'INTEGER'})"
    )
    larger = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    arrival = f"{larger}({stored}, %s) + %s"
    # The row may outlive its arrival time by the whole bucket: it is read again until then.
    expires = connection.ops.adapt_datetimefield_value(
        datetime.datetime.fromtimestamp(now // MICROSECONDS + rate.seconds + 2, tz=datetime.UTC)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (cache_key, value, expires) VALUES (%s, %s, %s) "  # noqa: S608
            f"ON CONFLICT (cache_key) DO UPDATE SET value = CAST({arrival} AS TEXT), "
            f"expires = %s WHERE {arrival} - %s <= %s RETURNING value",
            [key, str(now + interval), expires, now, interval, expires, now, interval, now, burst],
        )
        if cursor.fetchone() is not None:
            return 0
        cursor.execute(f"SELECT {stored} FROM {table} WHERE cache_key = %s", [key])  # noqa: S608
        row = cursor.fetchone()
    excess = max(int(row[0]) if row else now, now) + interval - now - burst
    return max(math.ceil(excess / MICROSECONDS), 1)


def _digest(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()
