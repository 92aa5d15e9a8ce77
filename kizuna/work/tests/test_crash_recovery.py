"""Two real `kizuna worker` processes on PostgreSQL; one is killed -9 in the middle of work.

Each piece of work records its effect (a ProbeEffect row with the work's key) in a
transaction. The test holds an uncommitted row of every key on a connection of its
own, so each worker that starts a piece of work waits on that lock inside its
transaction for as long as the test wants: the kill lands there whatever the
machine's load, and the killed worker's effect is rolled back with its connection.
Then the test lets the survivor through and lets time pass for the dead only (the
victim's heartbeat, and the start of its task, are moved back by a lease): the
survivor must find the victim dead by the heartbeat rule, take its work over, and
everything must end done exactly once. Nothing waits on the clock: a live worker is
taken for dead only after a lease (the default 30 s) without a heartbeat.
"""

import signal
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.db.models import F
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from kizuna.testing.processes import database_url, kizuna_env, start_kizuna, stop, wait_for
from kizuna.work import tasks
from kizuna.work.leases import WorkStatus
from kizuna.work.models import ProbeEffect, ProbeWork, WorkerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 30
ITEMS = 4
# Only a broken run waits this long for a condition.
TIMEOUT = 300


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
            timeout=TIMEOUT,
            message="both workers registered",
        )
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        print(log.read_text())


@pytest.fixture
def effects_held(transactional_db: None) -> Iterator[psycopg.Connection]:
    """A transaction holding an uncommitted ProbeEffect of every key the test uses: a
    worker recording one of them waits until it ends. Rolled back by let_through()."""
    with psycopg.connect(database_url()) as blocker:
        table = ProbeEffect._meta.db_table
        for key in [f"task-{n}" for n in range(ITEMS)] + [f"row-{n}" for n in range(ITEMS)]:
            blocker.execute(
                f"INSERT INTO {table} (key, worker_id, repeats, created_at)"  # noqa: S608
                " VALUES (%s, 'test', 0, now())",
                [key],
            )
        yield blocker
        blocker.rollback()


def let_through(blocker: psycopg.Connection) -> None:
    blocker.rollback()


def waits_inside_its_work(name: str) -> bool:
    """The worker's connection is blocked on the test's lock: inside a piece of work,
    before its effect is committed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND wait_event_type = 'Lock'",
            [name],
        )
        (count,) = cursor.fetchone()
    return count == 1


def kill_victim_inside_its_work(processes):
    """Wait until both workers are held inside a piece of work, then kill -9 the victim."""
    wait_for(
        lambda: waits_inside_its_work("victim") and waits_inside_its_work("survivor"),
        timeout=TIMEOUT,
        message="both workers started a piece of work",
    )
    processes["victim"].send_signal(signal.SIGKILL)
    assert processes["victim"].wait(timeout=TIMEOUT) == -signal.SIGKILL


def let_a_lease_pass_for_the_victim() -> None:
    """What time does to a dead worker: its heartbeat (and what it started) grows old."""
    lease = timedelta(seconds=LEASE_SECONDS)
    assert WorkerProcess.objects.filter(worker_id="victim").update(
        heartbeat_at=F("heartbeat_at") - lease
    )
    DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING, worker_ids__contains=["victim"]
    ).update(started_at=F("started_at") - lease)


def test_tasks_survive_a_worker_killed_mid_task_and_complete_exactly_once(
    two_workers, effects_held
):
    results = [tasks.probe.enqueue(f"task-{n}") for n in range(ITEMS)]

    kill_victim_inside_its_work(two_workers)
    running = DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING)
    assert sorted(result.worker_ids[-1] for result in running) == ["survivor", "victim"]
    let_through(effects_held)
    let_a_lease_pass_for_the_victim()
    wait_for(
        lambda: DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == ITEMS,
        timeout=TIMEOUT,
        message="every task successful",
    )
    # Stopped cleanly, the survivor has done all it will ever do.
    assert stop(two_workers["survivor"], timeout=TIMEOUT) == 0

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
    assert list(WorkerProcess.objects.values_list("worker_id", flat=True)) == ["victim"]


def test_leased_work_survives_a_worker_killed_mid_item_and_is_done_exactly_once(
    two_workers, effects_held
):
    for n in range(ITEMS):
        ProbeWork.objects.create(key=f"row-{n}")

    kill_victim_inside_its_work(two_workers)
    held = ProbeWork.objects.filter(status=WorkStatus.LEASED)
    assert sorted(held.values_list("leased_by", flat=True)) == ["survivor", "victim"]
    let_through(effects_held)
    wait_for(
        lambda: ProbeWork.objects.filter(status=WorkStatus.DONE).count() == ITEMS - 1,
        timeout=TIMEOUT,
        message="the survivor does every row but the victim's",
    )
    assert ProbeWork.objects.get(status=WorkStatus.LEASED).leased_by == "victim"
    let_a_lease_pass_for_the_victim()
    wait_for(
        lambda: ProbeWork.objects.filter(status=WorkStatus.DONE).count() == ITEMS,
        timeout=TIMEOUT,
        message="every row done",
    )
    assert stop(two_workers["survivor"], timeout=TIMEOUT) == 0

    rows = ProbeWork.objects.order_by("key")
    assert [(row.status, row.last_error) for row in rows] == [(WorkStatus.DONE, "")] * ITEMS
    taken_over = [row for row in rows if row.attempts > 1]
    assert [(row.attempts, row.leased_by) for row in taken_over] == [(2, "survivor")]
    effects = ProbeEffect.objects.order_by("key")
    assert [(effect.key, effect.repeats) for effect in effects] == [
        (f"row-{n}", 0) for n in range(ITEMS)
    ]
    assert effects.get(key=taken_over[0].key).worker_id == "survivor"
