import logging
import os
import signal
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from kizuna.work.leases import WorkStatus
from kizuna.work.models import ProbeEffect, ProbeWork, WorkerProcess
from kizuna.work.tests import sample_tasks
from kizuna.work.workers import (
    KizunaWorker,
    beat,
    forget_dead_workers,
    live_workers,
    new_worker_id,
    register_worker,
)

pytestmark = pytest.mark.django_db


# The worker closes connections between items, as in production: no test transaction.
@pytest.mark.django_db(transaction=True)
def test_worker_batch_runs_tasks_and_leased_work_then_unregisters():
    task = sample_tasks.succeeds.enqueue(2)
    ProbeWork.objects.create(key="probe")

    call_command("worker", "--batch", "--worker-id", "batch-worker")

    assert DBTaskResult.objects.get(pk=task.id).status == TaskResultStatus.SUCCESSFUL
    assert DBTaskResult.objects.get(pk=task.id).worker_ids == ["batch-worker"]
    assert ProbeWork.objects.get().status == WorkStatus.DONE
    assert ProbeEffect.objects.get().worker_id == "batch-worker"
    assert not WorkerProcess.objects.filter(worker_id="batch-worker").exists()


@pytest.mark.django_db(transaction=True)
def test_worker_batch_recovers_a_task_of_a_dead_worker(settings):
    settings.KIZUNA_WORKER_LEASE_SECONDS = 30
    WorkerProcess.objects.create(
        worker_id="dead", hostname="h", pid=1, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    task = sample_tasks.succeeds.enqueue(1)
    DBTaskResult.objects.filter(pk=task.id).update(
        status=TaskResultStatus.RUNNING,
        worker_ids=["dead"],
        started_at=timezone.now() - timedelta(minutes=5),
    )

    call_command("worker", "--once")

    result = DBTaskResult.objects.get(pk=task.id)
    assert result.status == TaskResultStatus.FAILED
    assert result.exception_class_path == "kizuna.work.retry.WorkerDied"


@pytest.mark.django_db(transaction=True)
def test_a_signal_during_a_task_lets_it_finish_and_then_stops_the_worker():
    first = sample_tasks.asks_its_worker_to_stop.enqueue()
    second = sample_tasks.succeeds.enqueue(1)
    worker = KizunaWorker(queue_names=["default"], interval=0, batch=False, worker_id="w")
    worker.configure_signals()
    try:
        worker.run()  # returns instead of waiting for more work
    finally:
        worker.reset_signals()

    assert DBTaskResult.objects.get(pk=first.id).status == TaskResultStatus.SUCCESSFUL
    assert DBTaskResult.objects.get(pk=first.id).return_value == "finished anyway"
    assert DBTaskResult.objects.get(pk=second.id).status == TaskResultStatus.READY


def test_beat_refreshes_only_this_workers_row():
    old = timezone.now() - timedelta(minutes=1)
    register_worker("mine")
    WorkerProcess.objects.create(worker_id="other", hostname="h", pid=2, heartbeat_at=old)
    WorkerProcess.objects.filter(worker_id="mine").update(heartbeat_at=old, started_at=old)

    beat("mine")

    assert WorkerProcess.objects.get(worker_id="mine").heartbeat_at > old
    assert WorkerProcess.objects.get(worker_id="mine").started_at == old  # not registered anew
    assert WorkerProcess.objects.get(worker_id="other").heartbeat_at == old


def test_beat_registers_again_a_worker_whose_row_was_removed():
    beat("pruned")

    assert WorkerProcess.objects.filter(worker_id="pruned").exists()


def test_live_workers_lists_only_workers_with_a_fresh_heartbeat(settings):
    settings.KIZUNA_WORKER_LEASE_SECONDS = 30
    WorkerProcess.objects.create(worker_id="fresh", hostname="h", pid=1)
    WorkerProcess.objects.create(
        worker_id="stale", hostname="h", pid=2, heartbeat_at=timezone.now() - timedelta(seconds=31)
    )

    assert [worker.worker_id for worker in live_workers()] == ["fresh"]
    assert WorkerProcess.objects.get(worker_id="fresh").is_alive
    assert not WorkerProcess.objects.get(worker_id="stale").is_alive


def test_worker_ids_fit_django_tasks_db_and_differ():
    ids = {new_worker_id() for _ in range(20)}

    assert len(ids) == 20
    assert all(0 < len(worker_id) <= 64 for worker_id in ids)


def test_rows_of_workers_silent_for_a_week_are_forgotten():
    WorkerProcess.objects.create(
        worker_id="long-dead", hostname="h", pid=1, heartbeat_at=timezone.now() - timedelta(days=8)
    )
    WorkerProcess.objects.create(
        worker_id="recently-dead",
        hostname="h",
        pid=2,
        heartbeat_at=timezone.now() - timedelta(days=1),
    )

    assert forget_dead_workers() == 1

    assert list(WorkerProcess.objects.values_list("worker_id", flat=True)) == ["recently-dead"]


@pytest.mark.django_db(transaction=True)
def test_a_worker_forced_to_stop_keeps_its_row_so_that_its_work_is_taken_back(monkeypatch):
    def forced_stop(**kwargs):
        raise SystemExit(1)  # what a second SIGTERM does in the middle of an item

    monkeypatch.setattr("kizuna.work.leases.run_due_work", forced_stop)
    worker = KizunaWorker(queue_names=["default"], interval=0, batch=True, worker_id="forced")

    with pytest.raises(SystemExit):
        worker.run()

    assert WorkerProcess.objects.filter(worker_id="forced").exists()


def test_a_worker_stopping_cleanly_removes_its_own_row_only():
    from kizuna.work.workers import unregister_worker

    register_worker("leaving")
    register_worker("staying")

    unregister_worker("leaving")

    assert list(WorkerProcess.objects.values_list("worker_id", flat=True)) == ["staying"]


def test_a_worker_registers_its_host_and_process(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "h" * 300)

    process = register_worker("w")

    stored = WorkerProcess.objects.get(worker_id="w")
    assert (stored.hostname, stored.pid) == ("h" * 255, os.getpid())
    assert stored.started_at == stored.heartbeat_at == process.heartbeat_at


def test_a_worker_id_is_host_pid_and_random_within_64_characters(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "a-very-long-host-name." * 5)

    worker_id = new_worker_id()

    host, pid, random_part = worker_id.rsplit("-", 2)
    assert len(worker_id) == 64
    assert pid == str(os.getpid())
    assert len(random_part) == 8
    assert ("a-very-long-host-name." * 5).startswith(host)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_until_stopped():
    from kizuna.work.workers import Heartbeat

    old = timezone.now() - timedelta(minutes=1)
    register_worker("beating")
    WorkerProcess.objects.filter(worker_id="beating").update(heartbeat_at=old)
    beats: list[str] = []
    heartbeat = Heartbeat("beating", interval=0.05, on_beat=lambda: beats.append("renew"))

    heartbeat.start()
    deadline = time.monotonic() + 10
    while WorkerProcess.objects.get(worker_id="beating").heartbeat_at == old or not beats:
        assert time.monotonic() < deadline, "no heartbeat within 10 seconds"
        time.sleep(0.05)
    heartbeat.stop()

    assert not heartbeat.is_alive()
    assert heartbeat.name == "heartbeat-beating"


def test_a_first_signal_lets_the_worker_finish_and_a_second_stops_it_at_once(caplog):
    worker = KizunaWorker(queue_names=["default"], interval=0, batch=False, worker_id="w")
    assert not worker.is_stopping()

    with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
        worker.shutdown(signal.SIGTERM, None)
        assert worker.is_stopping()

        with pytest.raises(SystemExit) as stopped:
            worker.shutdown(signal.SIGTERM, None)
    assert stopped.value.code == 1
    assert [record.getMessage() for record in caplog.records] == [
        "Received Terminated: stopping after the current item (send it again to stop now).",
        "Received Terminated again: stopping now.",
    ]


# The worker's lanes, driven by hand (their threads are not started): what the worker tells
# them when it listens, is woken, beats and stops.


def worker_with_lanes(*, interval: float, worker_id: str = "w") -> KizunaWorker:
    from kizuna.work import lanes, leases

    worker = KizunaWorker(
        queue_names=["default"], interval=interval, batch=False, worker_id=worker_id
    )
    worker.lanes = lanes.lanes_for(
        leases.registrations(),
        worker_id=worker_id,
        concurrency=worker.concurrency,
        poll_seconds=interval,
        should_stop=worker.is_stopping,
    )
    assert len(worker.lanes) >= 2
    return worker


def woken_lanes(worker: KizunaWorker) -> list[str]:
    return sorted(lane.label for lane in worker.lanes if lane.wake.is_set())


def test_a_wake_up_for_one_kind_of_work_wakes_only_its_lane_and_an_unnamed_one_wakes_all():
    worker = worker_with_lanes(interval=1)

    worker.wake_lanes("work.ProbeWork")
    assert woken_lanes(worker) == ["work.ProbeWork"]

    worker.wake_lanes("")
    assert woken_lanes(worker) == sorted(lane.label for lane in worker.lanes)


@pytest.mark.parametrize(
    ("interval", "listening", "on_sqlite", "on_postgresql"),
    [
        # Listening: notifications wake the lanes, they poll only every 5 s (or the interval).
        (0.1, True, 5.0, 5.0),
        (7.0, True, 7.0, 7.0),
        # Not listening: every 0.25 s on SQLite (no notifications), the interval on
        # PostgreSQL until the listener is back; never more often than every 0.05 s.
        (1.0, False, 0.25, 1.0),
        (0.1, False, 0.1, 0.1),
        (0.01, False, 0.05, 0.05),
    ],
)
def test_the_lanes_poll_rarely_while_the_worker_listens_and_often_when_it_does_not(
    interval, listening, on_sqlite, on_postgresql
):
    from django.db import connection

    worker = worker_with_lanes(interval=interval)
    worker.is_listening = not listening

    worker.set_listening(listening)

    expected = on_postgresql if connection.vendor == "postgresql" else on_sqlite
    assert [lane.poll_seconds for lane in worker.lanes] == [expected] * len(worker.lanes)
    # Woken, so that each sleeps again with its new interval.
    assert woken_lanes(worker) == sorted(lane.label for lane in worker.lanes)
    assert worker.is_listening is listening


def test_the_heartbeat_beats_often_enough_to_renew_the_shortest_lease(settings, monkeypatch):
    from kizuna.work.models import ProbeWork

    settings.KIZUNA_WORKER_LEASE_SECONDS = 30
    assert worker_with_lanes(interval=1).beat_seconds() == 6.0  # no kind leases for under 24 s
    no_lanes = KizunaWorker(queue_names=["default"], interval=1, batch=True, worker_id="b")
    assert no_lanes.beat_seconds() == 6.0  # five beats per worker lease

    monkeypatch.setattr(ProbeWork, "lease_seconds", 8)
    assert worker_with_lanes(interval=1).beat_seconds() == 2.0  # four beats per lease
    monkeypatch.setattr(ProbeWork, "lease_seconds", 0.4)
    assert worker_with_lanes(interval=1).beat_seconds() == 0.2  # but never under 0.2 s


def test_a_first_signal_wakes_the_worker_and_every_lane_so_that_they_stop_now():
    worker = worker_with_lanes(interval=3600)

    worker.shutdown(signal.SIGTERM, None)

    assert worker._wake.is_set()
    assert woken_lanes(worker) == sorted(lane.label for lane in worker.lanes)


def test_the_heartbeat_renews_the_leases_of_the_rows_every_lane_holds_and_no_others():
    from kizuna.work.leases import claim

    for key in ("held", "other-workers", "not-claimed"):
        ProbeWork.objects.create(key=key)
    worker = worker_with_lanes(interval=1, worker_id="renewing")
    register_worker("renewing")
    (probe_lane,) = [lane for lane in worker.lanes if lane.label == "work.ProbeWork"]
    claim(ProbeWork.objects.filter(key="other-workers"), worker_id="other")
    assert probe_lane.fill() == 1  # "held" or "not-claimed": the lane claims one at a time
    held = ProbeWork.objects.get(leased_by="renewing").key
    expiring = timezone.now() + timedelta(seconds=1)
    ProbeWork.objects.filter(status=WorkStatus.LEASED).update(leased_until=expiring)

    worker.renew_leases()

    leased_until = dict(ProbeWork.objects.values_list("key", "leased_until"))
    renewed = leased_until[held]
    assert renewed is not None and renewed > expiring + timedelta(seconds=30)
    assert leased_until["other-workers"] == expiring
    assert [value for key, value in leased_until.items() if key not in (held, "other-workers")] == [
        None
    ]


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_one_lane_per_kind_of_work_under_its_own_name_and_logs_them(caplog):
    from django.db import connection

    from kizuna.work import leases

    sample_tasks.asks_its_worker_to_stop.enqueue()
    worker = KizunaWorker(queue_names=["default"], interval=1, batch=False, worker_id="named")
    worker.configure_signals()
    try:
        with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
            worker.run()  # returns once the task has asked it to stop
    finally:
        worker.reset_signals()

    assert [lane.label for lane in worker.lanes] == [
        registration.model._meta.label for registration in leases.registrations()
    ]
    assert {lane.worker_id for lane in worker.lanes} == {"named"}
    assert all(lane.should_stop == worker.is_stopping for lane in worker.lanes)
    if connection.vendor == "sqlite":  # no listener: the lanes poll every 0.25 s
        assert worker.is_listening is False
        assert {lane.poll_seconds for lane in worker.lanes} == {0.25}
    lanes = ", ".join(f"{lane.label} x{lane.threads}" for lane in worker.lanes)
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == f"Worker named started (queues default; lanes {lanes})"
    assert messages[-1] == "Worker named stopped"
    assert not WorkerProcess.objects.filter(worker_id="named").exists()


@pytest.mark.django_db(transaction=True)
def test_a_batch_worker_has_no_lanes_and_says_when_nothing_is_left(caplog):
    worker = KizunaWorker(
        queue_names=["default", "other"], interval=0, batch=True, worker_id="batch"
    )

    with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
        worker.run()

    assert worker.lanes == []
    assert worker.is_stopping()
    assert [record.getMessage() for record in caplog.records] == [
        "Worker batch started (queues default,other; lanes none)",
        "Worker batch: nothing left to do, exiting.",
        "Worker batch stopped",
    ]


def test_a_worker_with_lanes_leaves_leased_work_to_them_and_a_stopping_one_starts_none():
    ProbeWork.objects.create(key="due")
    stopping = KizunaWorker(queue_names=["default"], interval=0, batch=True, worker_id="s")
    stopping.running = False

    assert worker_with_lanes(interval=1).run_one_round() is False
    assert stopping.run_one_round() is False

    assert ProbeWork.objects.get().status == WorkStatus.PENDING


def test_a_batch_worker_runs_leased_work_one_round_at_a_time_until_none_is_due():
    ProbeWork.objects.create(key="first")
    ProbeWork.objects.create(key="second")
    worker = KizunaWorker(queue_names=["default"], interval=0, batch=True, worker_id="b")

    assert worker.run_one_round() is True  # ProbeWork runs one row per batch
    assert ProbeWork.objects.filter(status=WorkStatus.DONE).count() == 1
    assert worker.run_one_round() is True
    assert worker.run_one_round() is False

    assert set(ProbeWork.objects.values_list("status", flat=True)) == {WorkStatus.DONE}


def test_a_batch_worker_asked_to_stop_finishes_its_row_and_gives_the_rest_of_the_batch_back(
    monkeypatch,
):
    from kizuna.work import leases
    from kizuna.work.services import record_probe_effect

    worker = KizunaWorker(queue_names=["default"], interval=0, batch=True, worker_id="b")

    def stops_its_worker(row: ProbeWork) -> None:
        record_probe_effect(key=row.key, worker_id=row.leased_by)
        leases.mark_done(row)
        worker.shutdown(signal.SIGTERM, None)

    monkeypatch.setattr(
        leases, "_registry", {"work.ProbeWork": leases.Registration(ProbeWork, stops_its_worker, 3)}
    )
    for key in ("a", "b", "c"):
        ProbeWork.objects.create(key=key)

    assert worker.run_one_round() is True

    assert sorted(ProbeWork.objects.values_list("key", "status", "attempts")) == [
        ("a", WorkStatus.DONE, 1),
        ("b", WorkStatus.PENDING, 0),
        ("c", WorkStatus.PENDING, 0),
    ]
    assert list(ProbeEffect.objects.values_list("key", flat=True)) == ["a"]


def test_a_worker_takes_back_abandoned_tasks_once_per_heartbeat_interval_not_every_round(
    settings,
):
    settings.KIZUNA_WORKER_LEASE_SECONDS = 30  # a heartbeat every 6 s
    WorkerProcess.objects.create(
        worker_id="dead", hostname="h", pid=1, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    worker = KizunaWorker(queue_names=["default"], interval=0, batch=True, worker_id="b")
    worker.recover_if_due()  # the first round recovers
    task = sample_tasks.succeeds.enqueue(1)
    DBTaskResult.objects.filter(pk=task.id).update(
        status=TaskResultStatus.RUNNING,
        worker_ids=["dead"],
        started_at=timezone.now() - timedelta(minutes=5),
    )

    worker.recover_if_due()  # the next round, well within 6 s
    assert DBTaskResult.objects.get(pk=task.id).status == TaskResultStatus.RUNNING

    worker._last_recovery -= 6.1  # a heartbeat interval later
    worker.recover_if_due()
    assert DBTaskResult.objects.get(pk=task.id).status == TaskResultStatus.FAILED


def test_a_new_worker_is_not_listening_yet_and_runs_at_least_one_row_at_a_time():
    worker = KizunaWorker(
        queue_names=["default"], interval=1, batch=False, worker_id="w", concurrency=0
    )

    assert worker.is_listening is False
    assert worker.concurrency == 1
    assert (
        KizunaWorker(
            queue_names=["default"], interval=1, batch=False, worker_id="w", concurrency=1
        ).concurrency
        == 1
    )


@pytest.mark.django_db(transaction=True)
def test_a_failing_lease_renewal_is_logged_and_the_heartbeat_goes_on(caplog):
    from kizuna.work.workers import Heartbeat

    renewals: list[int] = []

    def fails_first(**kwargs: object) -> None:
        renewals.append(len(renewals))
        if len(renewals) == 1:
            raise RuntimeError("the database went away")

    register_worker("beating")
    heartbeat = Heartbeat("beating", interval=0.05, on_beat=fails_first)
    with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
        heartbeat.start()
        deadline = time.monotonic() + 10
        while len(renewals) < 2:
            assert time.monotonic() < deadline, "no second beat within 10 seconds"
            time.sleep(0.05)
        heartbeat.stop()

    failures = [record for record in caplog.records if record.levelname == "ERROR"]
    assert [record.getMessage() for record in failures] == ["Heartbeat of worker beating failed"]
    assert failures[0].exc_info is not None


@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_a_round_is_logged_and_the_worker_goes_on_to_the_next(caplog):
    from django.db import connection

    # The sessions table is gone (a restore in progress, say): the clean-up of expired
    # sessions, the first round's recovery, fails with a database error.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_session RENAME TO django_session_away")
    try:
        stopper = sample_tasks.asks_its_worker_to_stop.enqueue()
        worker = KizunaWorker(queue_names=["default"], interval=0, batch=False, worker_id="w")
        worker._wake.set()  # no pause after the error: the next round comes at once
        worker.configure_signals()
        try:
            with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
                worker.run()
        finally:
            worker.reset_signals()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE django_session_away RENAME TO django_session")

    # (Its lanes may log claims that met the locked SQLite table: not this.)
    messages = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert messages.count("Worker w: database error, retrying") == 1
    # The next round ran the task (which then stopped the worker).
    assert DBTaskResult.objects.get(pk=stopper.id).status == TaskResultStatus.SUCCESSFUL


def put_back(table: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


@pytest.mark.django_db(transaction=True)
def test_a_task_failure_that_cannot_be_recorded_is_logged_and_left_to_recovery(caplog):
    table = DBTaskResult._meta.db_table
    enqueued = sample_tasks.hides_the_task_table_then_fails.enqueue(table)
    worker = KizunaWorker(queue_names=["default"], interval=0, batch=True, worker_id="w")
    try:
        with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
            assert worker.run_one_task()
    finally:
        put_back(table)

    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert errors == [f"Task {enqueued.id}: could not record its failure"]
    # Still running as far as the database knows: recovery takes it back once this worker
    # is gone.
    assert DBTaskResult.objects.get(pk=enqueued.id).status == TaskResultStatus.RUNNING


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_cannot_delete_its_row_when_stopping_logs_it_and_stops(caplog):
    table = WorkerProcess._meta.db_table
    sample_tasks.hides_the_worker_table_then_stops_its_worker.enqueue(table)
    worker = KizunaWorker(queue_names=["default"], interval=0, batch=False, worker_id="w")
    worker.configure_signals()
    try:
        with caplog.at_level(logging.INFO, logger="kizuna.work.workers"):
            worker.run()
    finally:
        worker.reset_signals()
        put_back(table)

    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert errors[-1] == "Worker w could not unregister"
    assert caplog.records[-1].getMessage() == "Worker w stopped"
