"""Rate limits every server process agrees on: fixed-window counters in the shared cache.

The cache is the database (settings.CACHES), so several `serve` processes on several
machines count together. A window opens at a subject's first event. The count is
read-modify-write: a burst of simultaneous requests may slip a few past the limit,
which a rate limit can afford.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.core.cache import cache

from kizuna.config import Rate


def take(scope: str, subject: str, rate: Rate) -> int:
    """Count one event of `subject` (a client address, an email) in `scope`.

    Returns 0 while the window holds at most `rate.count` events, else the whole
    seconds (at least 1) until the window ends and the subject may act again.
    """
    key = f"ratelimit:{scope}:{hashlib.sha256(subject.encode()).hexdigest()}"
    now = time.time()
    entry = cache.get(key)
    if not isinstance(entry, dict) or entry.get("reset", 0) <= now:
        entry = {"count": 0, "reset": now + rate.seconds}
    entry["count"] += 1
    remaining = max(math.ceil(entry["reset"] - now), 1)
    cache.set(key, entry, timeout=remaining)
    return 0 if entry["count"] <= rate.count else remaining
