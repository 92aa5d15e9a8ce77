from __future__ import annotations

import time

import pytest

from kizuna.config import Rate
from kizuna.lib import ratelimit

pytestmark = pytest.mark.django_db


def test_events_within_the_rate_pass_and_the_next_one_waits_for_the_window():
    rate = Rate(2, 600)

    waits = [ratelimit.take("scope", "192.0.2.1", rate) for _ in range(3)]

    assert waits[:2] == [0, 0]
    assert 599 <= waits[2] <= 600


def test_each_subject_and_each_scope_counts_on_its_own():
    rate = Rate(1, 600)
    ratelimit.take("scope", "192.0.2.1", rate)

    assert ratelimit.take("scope", "192.0.2.2", rate) == 0
    assert ratelimit.take("other-scope", "192.0.2.1", rate) == 0
    assert ratelimit.take("scope", "192.0.2.1", rate) > 0


def test_a_new_window_opens_when_the_last_one_ends(monkeypatch):
    rate = Rate(1, 60)
    now = time.time()
    monkeypatch.setattr(ratelimit.time, "time", lambda: now)
    ratelimit.take("scope", "192.0.2.1", rate)
    assert ratelimit.take("scope", "192.0.2.1", rate) == 60

    now += 61

    assert ratelimit.take("scope", "192.0.2.1", rate) == 0


def test_a_reservation_counts_every_event_when_all_fit_and_none_when_they_do_not():
    rate = Rate(5, 600)

    first = ratelimit.reserve("scope", "account-1", rate, 3)
    refused = ratelimit.reserve("scope", "account-1", rate, 3)
    last = ratelimit.reserve("scope", "account-1", rate, 2)

    assert first == ratelimit.Reservation(wait=0, left=2)
    assert refused.left == 2 and 599 <= refused.wait <= 600  # nothing counted: 2 still left
    assert last == ratelimit.Reservation(wait=0, left=0)
    assert ratelimit.reserve("scope", "account-1", rate, 1).wait > 0
    assert ratelimit.reserve("scope", "account-2", rate, 5) == ratelimit.Reservation(0, 0)
