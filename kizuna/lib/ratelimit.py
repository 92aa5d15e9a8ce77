"""Rate limits every server process agrees on, kept in the shared cache.

The cache is the database (settings.CACHES), so several `serve` processes on several
machines count together. Two kinds:

- take() and reserve(): fixed windows; a window opens at a subject's first event.
- take_smoothed(): a token bucket (the GCRA form: one stored instant per subject). A
  rate COUNT/SECONDS lets COUNT events through at once (the burst allowance) and then one
  every SECONDS/COUNT: the allowance comes back continuously, as in a sliding window,
  rather than all at once when a fixed window ends. Made for crowds behind one address.

Counting is read-modify-write: a burst of simultaneous requests may slip a few past the
limit, which a rate limit can afford.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.core.cache import cache

from kizuna.config import Rate


def _key(scope: str, subject: str) -> str:
    return f"ratelimit:{scope}:{hashlib.sha256(subject.encode()).hexdigest()}"


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
    """
    key = _key(scope, subject)
    now = time.time()
    interval = rate.seconds / rate.count
    stored = cache.get(key)
    # The theoretical arrival time: the bucket is full again at this instant.
    arrival = max(float(stored) if isinstance(stored, (int, float)) else now, now) + interval
    excess = arrival - now - rate.seconds
    if excess > 1e-9:
        return max(math.ceil(excess), 1)
    cache.set(key, arrival, timeout=max(math.ceil(arrival - now), 1))
    return 0
