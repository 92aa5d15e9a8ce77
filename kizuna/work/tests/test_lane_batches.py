"""A lane with a batch handler (Registration.run_many, issue 11 P3): a runner thread takes the
next queued row and the rows queued behind it, up to rows_per_run, and runs them together.
Every row of a batch is held, renewed and given back as a row alone is: a handler's exception
is a failed attempt of each row it had not finished, and rows whose bookkeeping the database
could not take go back to the table at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from kizuna.testing.processes import wait_for
from kizuna.testing.races import require_postgresql
from kizuna.work import leases
from kizuna.work.lanes import Lane
from kizuna.work.leases import Registration, WorkStatus
from kizuna.work.models import ProbeWork
from kizuna.work.workers import register_worker

pytestmark = pytest.mark.django_db(transaction=True)


def batch_lane(
    run_many: Callable[[list[ProbeWork]], None], *, threads: int, rows_per_run: int
) -> Lane:
    registration = Registration(
        ProbeWork,
        lambda row: None,
        batch_size=50,
        claim_ahead=threads,
        run_many=run_many,
        rows_per_run=rows_per_run,
    )
    return Lane(
        registration,
        worker_id="batches",
        threads=threads,
        poll_seconds=0.05,
        should_stop=lambda: False,
    )


def run_queued(lane: Lane) -> None:
    """Run the rows the lane queued, in this thread, until the end of the queue."""
    lane._queue.put(None)
    lane._run_rows()


def rows_as(*fields: str) -> list[tuple[object, ...]]:
    return list(ProbeWork.objects.order_by("key").values_list(*fields))


@pytest.fixture
def due_rows() -> None:
    ProbeWork.objects.bulk_create(ProbeWork(key=f"k{number}") for number in range(10))


@pytest.mark.usefixtures("due_rows")
def test_p3_a_runner_takes_the_rows_queued_behind_its_next_one_up_to_rows_per_run():
    batches: list[list[str]] = []

    def run_many(rows: list[ProbeWork]) -> None:
        batches.append([row.key for row in rows])
        assert leases.mark_each_done(rows) == [True] * len(rows)

    lane = batch_lane(run_many, threads=4, rows_per_run=4)
    assert (lane.runners, lane.rows_per_run) == (1, 4)
    assert lane.fill() == 8  # 4 rows at once and 4 ahead
    run_queued(lane)

    assert [len(batch) for batch in batches] == [4, 4]
    assert sorted(key for batch in batches for key in batch) == [f"k{n}" for n in range(8)]
    assert lane.free_threads() == 4
    assert ProbeWork.objects.filter(status=WorkStatus.DONE).count() == 8


@pytest.mark.usefixtures("due_rows")
def test_p3_a_batch_handler_s_exception_is_a_failed_attempt_of_each_row_it_had_not_finished():
    def run_many(rows: list[ProbeWork]) -> None:
        assert leases.mark_done(rows[0])
        raise ValueError("the server hung up")

    lane = batch_lane(run_many, threads=2, rows_per_run=2)
    assert lane.fill() == 4
    run_queued(lane)

    assert rows_as("key", "status", "attempts", "last_error")[:4] == [
        ("k0", WorkStatus.DONE, 1, ""),
        ("k1", WorkStatus.PENDING, 1, "ValueError: the server hung up"),
        ("k2", WorkStatus.DONE, 1, ""),
        ("k3", WorkStatus.PENDING, 1, "ValueError: the server hung up"),
    ]
    assert lane.free_threads() == 2


@pytest.mark.postgres
@pytest.mark.usefixtures("due_rows")
def test_p3_a_lane_renews_every_row_of_its_batches_and_gives_a_batch_back_when_the_database_fails():
    require_postgresql("a connection cut by the server")
    register_worker("batches")
    entered, release = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def run_many(rows: list[ProbeWork]) -> None:
        batches.append([row.key for row in rows])
        entered.set()
        release.wait(timeout=30)
        # The database goes away in the middle of the batch: the failed attempts cannot be
        # recorded on this connection either.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    lane = batch_lane(run_many, threads=3, rows_per_run=3)
    assert lane.fill() == 6
    past = timezone.now() - timedelta(seconds=1)
    ProbeWork.objects.update(leased_until=past)  # as if each lease were about to run out
    runner = threading.Thread(target=run_queued, args=(lane,))
    runner.start()
    try:
        wait_for(entered.is_set, timeout=30, message="the first batch runs")
        lane.renew_leases()  # the heartbeat
        renewed = set(
            ProbeWork.objects.filter(leased_until__gt=timezone.now()).values_list("key", flat=True)
        )
        # The batch under way and the batch queued behind it.
        assert renewed == {f"k{number}" for number in range(6)}
    finally:
        release.set()
        runner.join(timeout=60)

    assert [sorted(batch) for batch in batches] == [["k0", "k1", "k2"], ["k3", "k4", "k5"]]
    assert rows_as("key", "status", "attempts", "leased_by")[:6] == [
        (f"k{number}", WorkStatus.PENDING, 0, "") for number in range(6)
    ]
    assert lane.free_threads() == 3


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ({"run_many": print, "rows_per_run": 3}, (print, 3)),
        ({"run_many": print}, (print, 1)),
        ({"run_many": print, "rows_per_run": 0}, (print, 1)),
        ({"rows_per_run": 5}, (None, 1)),
    ],
    ids=["batches-of-3", "batches-of-1-unless-told", "at-least-1", "no-batch-handler"],
)
def test_p3_a_kind_registers_its_batch_handler_and_how_many_rows_a_batch_takes(
    monkeypatch, given, kept
):
    """rows_per_run is the batch handler's: a kind without one runs its rows one by one."""
    monkeypatch.setattr(leases, "_registry", {})

    leases.register(ProbeWork, lambda row: None, **given)

    [registration] = leases.registrations()
    assert (registration.run_many, registration.rows_per_run) == kept


def test_p3_a_round_of_run_due_work_runs_a_batch_kind_in_batches_each_row_once(
    monkeypatch, due_rows
):
    """kizuna worker --batch (run_due_work) hands a kind with a batch handler its claimed rows
    rows_per_run at a time, each row in one batch only."""
    batches: list[list[str]] = []

    def run_many(rows: list[ProbeWork]) -> None:
        batches.append([row.key for row in rows])
        leases.mark_each_done(rows)

    monkeypatch.setattr(leases, "_registry", {})
    leases.register(ProbeWork, lambda row: None, batch_size=5, run_many=run_many, rows_per_run=2)
    register_worker("batches")

    assert leases.run_due_work(worker_id="batches") == 5

    assert batches == [["k0", "k1"], ["k2", "k3"], ["k4"]]
    assert [status for (status,) in rows_as("status")].count(WorkStatus.DONE) == 5
