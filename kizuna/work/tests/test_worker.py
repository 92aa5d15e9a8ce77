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
    WorkerProcess.objects.filter(worker_id="mine").update(heartbeat_at=old)

    beat("mine")

    assert WorkerProcess.objects.get(worker_id="mine").heartbeat_at > old
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
    heartbeat = Heartbeat("beating", interval=0.05)

    heartbeat.start()
    deadline = time.monotonic() + 10
    while WorkerProcess.objects.get(worker_id="beating").heartbeat_at == old:
        assert time.monotonic() < deadline, "no heartbeat within 10 seconds"
        time.sleep(0.05)
    heartbeat.stop()

    assert not heartbeat.is_alive()
    assert heartbeat.name == "heartbeat-beating"


def test_a_first_signal_lets_the_worker_finish_and_a_second_stops_it_at_once():
    worker = KizunaWorker(queue_names=["default"], interval=0, batch=False, worker_id="w")
    assert not worker.is_stopping()

    worker.shutdown(signal.SIGTERM, None)
    assert worker.is_stopping()

    with pytest.raises(SystemExit) as stopped:
        worker.shutdown(signal.SIGTERM, None)
    assert stopped.value.code == 1
