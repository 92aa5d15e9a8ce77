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


def test_a_token_bucket_lets_its_count_through_at_once_then_one_each_interval(monkeypatch):
    rate = Rate(3, 60)  # one back every 20 seconds
    now = time.time()
    monkeypatch.setattr(ratelimit.time, "time", lambda: now)

    burst = [ratelimit.take_smoothed("scope", "192.0.2.1", rate) for _ in range(4)]
    now += 19
    still_waiting = ratelimit.take_smoothed("scope", "192.0.2.1", rate)
    now += 1
    one_back = ratelimit.take_smoothed("scope", "192.0.2.1", rate)
    next_refused = ratelimit.take_smoothed("scope", "192.0.2.1", rate)

    assert burst == [0, 0, 0, 20]
    assert still_waiting == 1
    assert one_back == 0
    assert next_refused == 20


def test_a_refused_event_is_not_counted_and_other_subjects_have_buckets_of_their_own(
    monkeypatch,
):
    rate = Rate(1, 60)
    now = time.time()
    monkeypatch.setattr(ratelimit.time, "time", lambda: now)
    ratelimit.take_smoothed("scope", "192.0.2.1", rate)

    refused = [ratelimit.take_smoothed("scope", "192.0.2.1", rate) for _ in range(5)]
    other_subject = ratelimit.take_smoothed("scope", "192.0.2.2", rate)
    other_scope = ratelimit.take_smoothed("other-scope", "192.0.2.1", rate)
    now += 60

    assert refused == [60] * 5
    assert (other_subject, other_scope) == (0, 0)
    assert ratelimit.take_smoothed("scope", "192.0.2.1", rate) == 0


def test_a_full_bucket_refills_whole_after_its_seconds(monkeypatch):
    rate = Rate(2, 10)
    now = time.time()
    monkeypatch.setattr(ratelimit.time, "time", lambda: now)
    assert [ratelimit.take_smoothed("scope", "s", rate) for _ in range(3)] == [0, 0, 5]

    now += 3600

    assert [ratelimit.take_smoothed("scope", "s", rate) for _ in range(3)] == [0, 0, 5]
