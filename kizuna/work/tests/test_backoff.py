from datetime import timedelta

import pytest

from kizuna.work.backoff import backoff_delay
from kizuna.work.models import ProbeWork
from kizuna.work.retry import RetryPolicy


@pytest.mark.parametrize(
    ("attempt", "nominal"),
    [(1, 30.0), (2, 60.0), (3, 120.0), (6, 960.0), (7, 1000.0), (50, 1000.0), (10_000, 1000.0)],
)
def test_backoff_doubles_per_attempt_within_the_jitter_and_never_passes_the_cap(attempt, nominal):
    delays = [
        backoff_delay(attempt, base_seconds=30, max_seconds=1000, jitter_ratio=0.2)
        for _ in range(300)
    ]

    assert min(delays) >= nominal * 0.8
    assert max(delays) <= min(nominal * 1.2, 1000)


def test_backoff_jitter_spreads_the_delays():
    delays = {backoff_delay(3, base_seconds=30, max_seconds=1000) for _ in range(50)}

    assert len(delays) > 40
    assert max(delays) - min(delays) > 10


def test_backoff_without_jitter_is_exact():
    assert backoff_delay(4, base_seconds=2, max_seconds=100, jitter_ratio=0) == 16.0
    assert backoff_delay(0, base_seconds=2, max_seconds=100, jitter_ratio=0) == 2.0


def test_retry_policy_delay_is_a_timedelta_within_bounds():
    policy = RetryPolicy(max_attempts=5, base_seconds=10, max_seconds=3600)

    delay = policy.delay(2)

    assert timedelta(seconds=16) <= delay <= timedelta(seconds=24)
    assert policy.allows_another_attempt(4)
    assert not policy.allows_another_attempt(5)


def test_leased_work_retry_delay_uses_the_model_back_off():
    row = ProbeWork(key="x")

    assert timedelta(seconds=24) <= row.retry_delay(1) <= timedelta(seconds=36)
    assert row.retry_delay(1000) <= timedelta(hours=6)
