"""Exponential back-off with jitter, shared by leased rows and retrying tasks."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    base_seconds: float,
    max_seconds: float,
    factor: float = 2.0,
    jitter_ratio: float = 0.2,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first failure).

    The nominal delay is base * factor ** (attempt - 1), capped at max_seconds; jitter
    moves it by up to +-jitter_ratio so that work which failed together does not come
    back together, and the result never exceeds max_seconds.
    """
    # The exponent is bounded so that a row retried for weeks cannot overflow a float.
    exponent = min(max(attempt - 1, 0), 64)
    nominal = min(base_seconds * factor**exponent, max_seconds)
    jittered = nominal * (1 + random.uniform(-jitter_ratio, jitter_ratio))
    return max(0.0, min(jittered, max_seconds))
