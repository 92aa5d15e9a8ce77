"""Lanes of the worker: leases that hold while work runs (issue 10, point 2).

A real KizunaWorker runs in a thread with its heartbeat; a second worker, idle,
keeps trying to claim. Rows take longer than their lease: the live worker's
renewals must keep every row its own. Threads that write at once need PostgreSQL
here: the SQLite test database is shared in memory, where a writer waiting for
another gets "table is locked" at once instead of waiting (kizuna/testing/races.py).
"""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from kizuna.testing.processes import wait_for
from kizuna.testing.races import require_postgresql, row_locked_elsewhere
from kizuna.testing.worker import WorkerThread
from kizuna.work import leases
from kizuna.work.leases import WorkStatus, claim, mark_done
from kizuna.work.models import ProbeEffect, ProbeWork
from kizuna.work.services import record_probe_effect
from kizuna.work.workers import register_worker

HOLD_SECONDS = 2.5


def slow_handler(row: ProbeWork) -> None:
    """Works longer than the lease (outside any transaction, like an HTTP request)."""
    time.sleep(HOLD_SECONDS)
    with transaction.atomic():
        record_probe_effect(key=row.key, worker_id=row.leased_by)
        if not mark_done(row):
            transaction.set_rollback(True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_p2_a_live_worker_renews_its_leases_and_an_idle_worker_never_takes_its_rows(monkeypatch):
    require_postgresql("threads writing at once")
    monkeypatch.setattr(ProbeWork, "lease_seconds", 1)
    monkeypatch.setattr(
        leases,
        "_registry",
        {"work.ProbeWork": leases.Registration(ProbeWork, slow_handler, 10, concurrency=3)},
    )
    for key in ("p1", "p2", "p3"):
        ProbeWork.objects.create(key=key)
    register_worker("idle")
    taken_by_idle: list[str] = []

    with WorkerThread("busy", concurrency=3):
        wait_for(
            lambda: ProbeWork.objects.filter(status=WorkStatus.LEASED).count() == 3,
            timeout=30,
            message="the busy worker holds all three rows",
        )
        # The rows' 1 s leases run out twice over while they are worked on.
        while ProbeWork.objects.filter(status=WorkStatus.LEASED).exists():
            taken_by_idle += [row.key for row in claim(ProbeWork.objects.all(), worker_id="idle")]
            time.sleep(0.05)

    assert taken_by_idle == []
    assert sorted(ProbeWork.objects.values_list("key", "status", "attempts", "leased_by")) == [
        ("p1", WorkStatus.DONE, 1, "busy"),
        ("p2", WorkStatus.DONE, 1, "busy"),
        ("p3", WorkStatus.DONE, 1, "busy"),
    ]
    assert sorted(ProbeEffect.objects.values_list("key", "worker_id", "repeats")) == [
        ("p1", "busy", 0),
        ("p2", "busy", 0),
        ("p3", "busy", 0),
    ]


@pytest.mark.django_db
def test_p2_renewing_extends_only_the_rows_this_worker_still_holds(monkeypatch):
    mine, taken_over, finished, other = (
        ProbeWork.objects.create(key=key) for key in ("mine", "taken-over", "finished", "other")
    )
    register_worker("a")
    held = {
        row.key: row
        for row in claim(ProbeWork.objects.exclude(key="other"), worker_id="a", limit=10)
    }
    claim(ProbeWork.objects.filter(key="other"), worker_id="b")
    mark_done(held["finished"])
    ProbeWork.objects.filter(key="taken-over").update(leased_by="b")
    ProbeWork.objects.update(leased_until=None)

    renewed = leases.renew(
        ProbeWork, pks=[mine.pk, taken_over.pk, finished.pk, other.pk], worker_id="a"
    )

    assert renewed == 1
    assert {row.key for row in ProbeWork.objects.exclude(leased_until=None)} == {"mine"}
    assert leases.renew(ProbeWork, pks=[], worker_id="a") == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_p2_renewing_skips_a_row_locked_by_a_write_in_progress_instead_of_waiting_for_it():
    # A sending group's transaction holds some of the worker's rows while the heartbeat
    # renews them all: waiting for it could deadlock (the group locks the rows in another
    # order); the renewal leaves the locked row to that write and to the next heartbeat.
    require_postgresql("a lock held by another connection")
    register_worker("a")
    for key in ("busy", "free"):
        ProbeWork.objects.create(key=key)
    held = {row.key: row for row in claim(ProbeWork.objects.all(), worker_id="a", limit=10)}
    ProbeWork.objects.update(leased_until=None)
    with row_locked_elsewhere(ProbeWork, key="busy"):
        renewed = leases.renew(ProbeWork, pks=[row.pk for row in held.values()], worker_id="a")

    assert renewed == 1
    assert {row.key for row in ProbeWork.objects.exclude(leased_until=None)} == {"free"}
    assert leases.renew(ProbeWork, pks=[held["busy"].pk], worker_id="a") == 1
