from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone

from kizuna.work import leases
from kizuna.work.leases import WorkStatus, claim, mark_done, mark_failed, release, run_due_work
from kizuna.work.models import ProbeEffect, ProbeWork, WorkerProcess

pytestmark = pytest.mark.django_db


def probe(key="p1", **fields):
    return ProbeWork.objects.create(key=key, **fields)


def claim_one(worker_id):
    rows = claim(ProbeWork.objects.all(), worker_id=worker_id, limit=1)
    return rows[0] if rows else None


def expire_lease(row):
    ProbeWork.objects.filter(pk=row.pk).update(leased_until=timezone.now() - timedelta(seconds=1))


def test_claim_leases_a_due_row_and_counts_the_attempt():
    probe()
    before = timezone.now()

    row = claim_one("a")

    assert row is not None
    stored = ProbeWork.objects.get()
    assert (stored.status, stored.leased_by, stored.attempts) == (WorkStatus.LEASED, "a", 1)
    assert (row.status, row.leased_by, row.attempts) == (WorkStatus.LEASED, "a", 1)
    assert stored.leased_until is not None
    assert row.leased_until == stored.leased_until
    assert stored.leased_until >= before + timedelta(seconds=ProbeWork.lease_seconds)


def test_a_leased_row_is_not_claimed_again_while_its_lease_runs():
    probe()
    claim_one("a")

    assert claim_one("b") is None


def test_a_row_not_due_yet_is_not_claimed():
    probe(next_attempt_at=timezone.now() + timedelta(minutes=1))

    assert claim_one("a") is None


def test_claim_takes_the_earliest_due_rows_up_to_the_limit():
    now = timezone.now()
    probe("late", next_attempt_at=now - timedelta(seconds=1))
    probe("early", next_attempt_at=now - timedelta(seconds=10))
    probe("middle", next_attempt_at=now - timedelta(seconds=5))

    rows = claim(ProbeWork.objects.all(), worker_id="a", limit=2)

    assert [row.key for row in rows] == ["early", "middle"]


def test_mark_done_by_the_lease_holder_finishes_the_row():
    probe()
    row = claim_one("a")

    assert mark_done(row)

    stored = ProbeWork.objects.get()
    assert stored.status == WorkStatus.DONE
    assert (row.status, row.finished_at, row.leased_until) == (
        WorkStatus.DONE,
        stored.finished_at,
        None,
    )
    assert stored.finished_at is not None
    assert stored.leased_until is None


def test_a_worker_whose_lease_expired_and_was_reclaimed_cannot_mark_the_row_done():
    probe()
    first = claim_one("a")
    expire_lease(first)
    second = claim_one("b")
    assert second is not None

    assert not mark_done(first)
    assert not mark_failed(first, error="late")

    stored = ProbeWork.objects.get()
    assert (stored.status, stored.leased_by, stored.attempts) == (WorkStatus.LEASED, "b", 2)
    assert mark_done(second)
    assert ProbeWork.objects.get().status == WorkStatus.DONE


def test_a_reclaim_by_the_same_worker_id_also_invalidates_the_old_claim():
    probe()
    first = claim_one("a")
    expire_lease(first)
    second = claim_one("a")

    assert not mark_done(first)
    assert mark_done(second)


def test_a_worker_whose_lease_expired_but_nobody_reclaimed_may_still_finish():
    probe()
    row = claim_one("a")
    expire_lease(row)

    assert mark_done(row)


def test_mark_failed_schedules_a_retry_with_back_off():
    probe()
    row = claim_one("a")

    assert mark_failed(row, error="SMTP 451")

    stored = ProbeWork.objects.get()
    assert stored.status == WorkStatus.PENDING
    assert stored.last_error == "SMTP 451"
    assert stored.leased_until is None
    # first retry: 30 s +-20%
    assert timezone.now() + timedelta(seconds=20) <= stored.next_attempt_at
    assert stored.next_attempt_at <= timezone.now() + timedelta(seconds=37)
    assert claim_one("a") is None


def test_mark_failed_gives_up_at_max_attempts_or_when_told_not_to_retry():
    probe("exhausted", max_attempts=1)
    probe("permanent", next_attempt_at=timezone.now() + timedelta(seconds=1))
    row = claim_one("a")
    assert row.key == "exhausted"

    assert mark_failed(row, error="boom")

    assert ProbeWork.objects.get(key="exhausted").status == WorkStatus.FAILED
    ProbeWork.objects.filter(key="permanent").update(next_attempt_at=timezone.now())
    permanent = claim_one("a")
    assert mark_failed(permanent, error="410 Gone", retry=False)
    stored = ProbeWork.objects.get(key="permanent")
    assert (stored.status, stored.attempts) == (WorkStatus.FAILED, 1)
    assert stored.finished_at is not None


def test_a_row_leased_by_a_worker_without_heartbeat_is_due_before_its_lease_ends(settings):
    settings.KIZUNA_WORKER_LEASE_SECONDS = 30
    WorkerProcess.objects.create(
        worker_id="dead", hostname="h", pid=1, heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    WorkerProcess.objects.create(worker_id="alive", hostname="h", pid=2)
    probe("of-dead")
    probe("of-alive")
    claim(ProbeWork.objects.filter(key="of-dead"), worker_id="dead")
    claim(ProbeWork.objects.filter(key="of-alive"), worker_id="alive")

    rows = claim(ProbeWork.objects.all(), worker_id="b")

    assert [(row.key, row.attempts) for row in rows] == [("of-dead", 2)]


def test_a_row_abandoned_during_its_last_attempt_fails_instead_of_running_again():
    probe(max_attempts=1)
    row = claim_one("a")
    expire_lease(row)

    assert claim_one("b") is None

    stored = ProbeWork.objects.get()
    assert stored.status == WorkStatus.FAILED
    assert stored.attempts == 1
    assert stored.last_error == leases.ABANDONED_ERROR


def test_release_gives_an_unstarted_row_back_without_counting_an_attempt():
    probe()
    row = claim_one("a")

    assert release(row)

    stored = ProbeWork.objects.get()
    assert (stored.status, stored.attempts, stored.leased_by) == (WorkStatus.PENDING, 0, "")
    assert stored.leased_until is None


def test_run_due_work_runs_the_registered_handler_once_per_row():
    probe("p1")
    probe("p2")

    assert run_due_work(worker_id="a") + run_due_work(worker_id="a") == 2

    assert set(ProbeWork.objects.values_list("status", flat=True)) == {WorkStatus.DONE}
    assert sorted(ProbeEffect.objects.values_list("key", "worker_id", "repeats")) == [
        ("p1", "a", 0),
        ("p2", "a", 0),
    ]
    assert run_due_work(worker_id="a") == 0


def test_run_due_work_records_a_handler_exception_as_a_failed_attempt(monkeypatch, caplog):
    def broken(row):
        raise RuntimeError("disk full")

    monkeypatch.setitem(
        leases._registry, "work.ProbeWork", leases.Registration(ProbeWork, broken, 10)
    )
    probe()

    assert run_due_work(worker_id="a") == 1

    stored = ProbeWork.objects.get()
    assert (stored.status, stored.attempts) == (WorkStatus.PENDING, 1)
    assert stored.last_error == "RuntimeError: disk full"
    assert [r.getMessage() for r in caplog.records if r.name == "kizuna.work.leases"] == [
        f"work.ProbeWork {stored.pk} failed"
    ]


def test_run_due_work_releases_the_rest_of_its_batch_when_asked_to_stop(monkeypatch):
    monkeypatch.setitem(
        leases._registry,
        "work.ProbeWork",
        leases.Registration(ProbeWork, leases._registry["work.ProbeWork"].handler, 10),
    )
    for number in range(3):
        probe(f"p{number}")
    handled = []

    def should_stop():
        return len(ProbeEffect.objects.all()) >= 1

    handled.append(run_due_work(worker_id="a", should_stop=should_stop))

    assert handled == [1]
    assert sorted(ProbeWork.objects.values_list("key", "status", "attempts")) == [
        ("p0", WorkStatus.DONE, 1),
        ("p1", WorkStatus.PENDING, 0),
        ("p2", WorkStatus.PENDING, 0),
    ]


def test_a_late_probe_handler_rolls_back_its_effect_when_the_row_was_taken_over():
    probe()
    first = claim_one("a")
    expire_lease(first)
    claim_one("b")

    leases._registry["work.ProbeWork"].handler(first)

    assert ProbeEffect.objects.count() == 0
    assert ProbeWork.objects.get().status == WorkStatus.LEASED


def test_run_due_work_goes_on_with_other_kinds_when_one_cannot_be_claimed(monkeypatch, caplog):
    class Broken:
        class _meta:
            label = "other.Broken"

        class _default_manager:
            @staticmethod
            def all():
                raise DatabaseError("no such table: other_broken")

    monkeypatch.setattr(
        leases,
        "_registry",
        {"other.Broken": leases.Registration(Broken, print, 10), **leases._registry},  # type: ignore[arg-type]
    )
    probe()

    assert run_due_work(worker_id="a") == 1

    assert ProbeWork.objects.get().status == WorkStatus.DONE
    assert [r.getMessage() for r in caplog.records if r.name == "kizuna.work.leases"] == [
        "Cannot claim other.Broken"
    ]


def test_retry_delays_follow_each_kinds_base_factor_and_jitter(monkeypatch):
    monkeypatch.setattr(ProbeWork, "retry_base_seconds", 10.0)
    monkeypatch.setattr(ProbeWork, "retry_factor", 3.0)
    monkeypatch.setattr(ProbeWork, "retry_jitter_ratio", 0.0)
    row = ProbeWork()

    assert [row.retry_delay(n).total_seconds() for n in (1, 2, 3)] == [10.0, 30.0, 90.0]

    monkeypatch.setattr(ProbeWork, "retry_jitter_ratio", 0.5)
    delays = {row.retry_delay(1).total_seconds() for _ in range(50)}
    assert all(5.0 <= delay <= 15.0 for delay in delays)
    assert len(delays) > 1


def test_a_kind_registered_with_a_batch_size_runs_that_many_rows_per_round():
    for key in ("p1", "p2", "p3"):
        probe(key)

    # Probes are registered one row per claim (work/apps.py).
    assert run_due_work(worker_id="a") == 1
    assert ProbeWork.objects.filter(status=WorkStatus.DONE).count() == 1
