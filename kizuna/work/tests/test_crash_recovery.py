"""Two real `kizuna worker` processes on PostgreSQL; one is killed -9 in the middle of work.

Each piece of work records its effect in a transaction that stays open for its
hold time, so the killed worker's effect is rolled back with its connection. The
survivor must take the work over once the victim's heartbeat is older than the
lease, and everything must end done exactly once.
"""

import signal
import time

import pytest
from django.db import connection
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from kizuna.testing.processes import database_url, kizuna_env, start_kizuna, stop, wait_for
from kizuna.work import tasks
from kizuna.work.leases import WorkStatus
from kizuna.work.models import ProbeEffect, ProbeWork, WorkerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 3
HOLD_SECONDS = 1.0
ITEMS = 4


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("SELECT ... FOR UPDATE SKIP LOCKED and real concurrency need PostgreSQL")


@pytest.fixture
def two_workers(tmp_path, settings):
    settings.KIZUNA_WORKER_LEASE_SECONDS = LEASE_SECONDS
    log = tmp_path / "workers.log"
    processes = {}
    for name in ("victim", "survivor"):
        env = kizuna_env(
            tmp_path,
            # The name lets the test see the worker's transactions in pg_stat_activity.
            DATABASE_URL=f"{database_url()}?application_name={name}",
            KIZUNA_WORKER_LEASE_SECONDS=str(LEASE_SECONDS),
        )
        processes[name] = start_kizuna(
            ["worker", "--interval", "0.1", "--worker-id", name], env, log
        )
    try:
        wait_for(
            lambda: WorkerProcess.objects.filter(worker_id__in=processes).count() == 2,
            timeout=60,
            message="both workers registered",
        )
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        print(log.read_text())


def victim_is_inside_a_transaction():
    """True while the victim holds a transaction open for longer than a claim takes.

    The only such transaction is a probe's effect waiting out its hold, so a kill
    now is certain to land before that effect commits.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'victim'"
            " AND state = 'idle in transaction'"
            " AND xact_start < now() - interval '200 milliseconds'"
        )
        (count,) = cursor.fetchone()
    return count == 1


def kill_victim_while_it_holds(processes, holds_work):
    """Wait until the victim is inside a piece of work, then kill -9 it."""
    wait_for(
        lambda: holds_work() and victim_is_inside_a_transaction(),
        timeout=30,
        message="the victim started a piece of work",
    )
    processes["victim"].send_signal(signal.SIGKILL)
    assert processes["victim"].wait(timeout=5) == -signal.SIGKILL


def test_tasks_survive_a_worker_killed_mid_task_and_complete_exactly_once(two_workers):
    results = [tasks.probe.enqueue(f"task-{n}", HOLD_SECONDS) for n in range(ITEMS)]

    def victim_runs_a_task():
        return DBTaskResult.objects.filter(
            status=TaskResultStatus.RUNNING, worker_ids__contains=["victim"]
        ).exists()

    kill_victim_while_it_holds(two_workers, victim_runs_a_task)
    wait_for(
        lambda: DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == ITEMS,
        timeout=30,
        message="every task successful",
    )
    time.sleep(LEASE_SECONDS / 2)  # room for a wrong second run to show up

    finished = DBTaskResult.objects.filter(pk__in=[result.id for result in results])
    statuses = list(finished.values_list("status", flat=True))
    assert statuses == [TaskResultStatus.SUCCESSFUL] * ITEMS
    retried = [result for result in finished if len(result.worker_ids) > 1]
    assert [result.worker_ids for result in retried] == [["victim", "survivor"]]
    assert retried[0].return_value is True, "the survivor's run recorded the effect"
    effects = ProbeEffect.objects.order_by("key")
    assert [(effect.key, effect.repeats) for effect in effects] == [
        (f"task-{n}", 0) for n in range(ITEMS)
    ]
    assert effects.get(key=retried[0].args_kwargs["args"][0]).worker_id == "survivor"
    assert stop(two_workers["survivor"]) == 0
    assert list(WorkerProcess.objects.values_list("worker_id", flat=True)) == ["victim"]


def test_leased_work_survives_a_worker_killed_mid_item_and_is_done_exactly_once(two_workers):
    for n in range(ITEMS):
        ProbeWork.objects.create(key=f"row-{n}", hold_seconds=HOLD_SECONDS)

    def victim_holds_a_row():
        return ProbeWork.objects.filter(status=WorkStatus.LEASED, leased_by="victim").exists()

    kill_victim_while_it_holds(two_workers, victim_holds_a_row)
    wait_for(
        lambda: ProbeWork.objects.filter(status=WorkStatus.DONE).count() == ITEMS,
        timeout=30,
        message="every row done",
    )
    time.sleep(LEASE_SECONDS / 2)

    rows = ProbeWork.objects.order_by("key")
    assert [(row.status, row.last_error) for row in rows] == [(WorkStatus.DONE, "")] * ITEMS
    taken_over = [row for row in rows if row.attempts > 1]
    assert [(row.attempts, row.leased_by) for row in taken_over] == [(2, "survivor")]
    effects = ProbeEffect.objects.order_by("key")
    assert [(effect.key, effect.repeats) for effect in effects] == [
        (f"row-{n}", 0) for n in range(ITEMS)
    ]
    assert effects.get(key=taken_over[0].key).worker_id == "survivor"
    assert stop(two_workers["survivor"]) == 0
