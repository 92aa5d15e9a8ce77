"""A lane's claim costs the same with a backlog of thousands and with dead row versions.

A bulk send queues thousands of rows that share one next_attempt_at, while the table's
statistics are of before it (a few pending rows). The claim must still read the due index in
order and stop at its limit, and must not read the index entries of leased row versions (one
per lease and renewal until VACUUM) at every claim while pending rows fill its limit; the rows
a dead worker left are looked for once every LEFT_ROWS_EVERY_SECONDS instead.
"""

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from kizuna.testing.races import require_postgresql
from kizuna.work import leases
from kizuna.work.leases import WorkStatus, claim_due
from kizuna.work.models import ProbeWork, WorkerProcess
from kizuna.work.workers import register_worker

pytestmark = pytest.mark.django_db

BACKLOG = 2000
LIMIT = 32


@pytest.fixture
def first_claims_of_a_thread() -> Iterator[None]:
    """This thread's claims start afresh: SQL compiled anew, left rows never looked for."""
    leases._compiled.__dict__.clear()
    yield
    leases._compiled.__dict__.clear()


def queue_a_backlog_behind_stale_statistics() -> None:
    """A few finished rows analyzed, then a bulk queue of BACKLOG rows due at one time, with
    random reads costly: the planner then prefers to read all due rows through a bitmap and
    sort them, as it did in a bulk send with statistics of before it (its estimate: 2 rows)."""
    ProbeWork.objects.bulk_create(
        ProbeWork(key=f"old-{number}", status=WorkStatus.DONE) for number in range(20)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ProbeWork._meta.db_table}")
        cursor.execute("SET LOCAL random_page_cost TO 40")  # the test's transaction
    queued_at = timezone.now() - timedelta(seconds=1)
    ProbeWork.objects.bulk_create(
        ProbeWork(key=f"bulk-{number:05}", next_attempt_at=queued_at) for number in range(BACKLOG)
    )


def plans_of_claims(count: int) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE (JSON) of the SELECT of each of `count` claims in a row, as run."""
    selects: list[tuple[str, Any]] = []

    def keep(execute, sql, params, many, context):
        if sql.startswith("WITH due_pending"):
            selects.append((sql, params))
        return execute(sql, params, many, context)

    plans = []
    for _ in range(count):
        selects.clear()
        with connection.execute_wrapper(keep):
            claim_due(ProbeWork, worker_id="w", limit=LIMIT)
        ((sql, params),) = selects
        with connection.cursor() as cursor:
            cursor.execute("SAVEPOINT plan")
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            (document,) = cursor.fetchone()
            cursor.execute("ROLLBACK TO SAVEPOINT plan")
        # Compiling a statement (JIT) cost PostgreSQL more than a second a claim.
        assert "JIT" not in document[0]
        plans.append(document[0]["Plan"])
    return plans


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def part(plan: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = (node for node in nodes(plan) if node.get("Subplan Name") == f"CTE {name}")
    return found


def index_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in nodes(plan) if node["Node Type"] == "Index Scan"]


def leave_an_orphan_of_a_dead_worker(now, settings) -> None:
    """Row "orphan", due for 20 s and leased to worker "gone", whose heartbeat is older than
    a worker's lease: claimable by any other worker."""
    register_worker("gone")
    WorkerProcess.objects.filter(worker_id="gone").update(
        heartbeat_at=now - timedelta(seconds=settings.KIZUNA_WORKER_LEASE_SECONDS + 1)
    )
    ProbeWork.objects.create(
        key="orphan",
        next_attempt_at=now - timedelta(seconds=20),
        status=WorkStatus.LEASED,
        attempts=1,
        leased_by="gone",
        leased_until=now + timedelta(minutes=1),
    )


@pytest.mark.postgres
def test_p3_a_claim_behind_a_bulk_queue_reads_the_due_index_in_order_and_stops_at_its_limit(
    first_claims_of_a_thread,
):
    require_postgresql("the plan of PostgreSQL's claim")
    queue_a_backlog_behind_stale_statistics()

    plans = plans_of_claims(3)

    for plan in plans:
        pending = part(plan, "due_pending")
        assert not [node["Node Type"] for node in nodes(pending) if "Sort" in node["Node Type"]]
        (scan,) = index_scans(pending)
        assert scan["Index Name"] == "work_probe_due_order"
        assert scan["Actual Rows"] <= LIMIT
    assert ProbeWork.objects.filter(status=WorkStatus.LEASED).count() == 3 * LIMIT


@pytest.mark.postgres
def test_p3_claims_whose_pending_rows_fill_their_limit_do_not_read_the_leased_rows_each_time(
    first_claims_of_a_thread, monkeypatch
):
    require_postgresql("the plan of PostgreSQL's claim")
    # The claims and their EXPLAIN ANALYZE, on a busy machine, may take a second.
    monkeypatch.setattr(leases, "LEFT_ROWS_EVERY_SECONDS", 3600.0)
    queue_a_backlog_behind_stale_statistics()

    first, second, third = plans_of_claims(3)

    # A thread's first claim looks for rows left by their worker; the next ones, within
    # LEFT_ROWS_EVERY_SECONDS and with their limit filled by pending rows, read no index entry.
    assert [scan["Actual Loops"] for scan in index_scans(part(first, "due_left"))] == [1]
    assert [scan["Actual Loops"] for scan in index_scans(part(second, "due_left"))] == [0]
    assert [scan["Actual Loops"] for scan in index_scans(part(third, "due_left"))] == [0]


def test_p3_a_dead_workers_rows_wait_at_most_a_second_behind_a_backlog_then_go_first(
    first_claims_of_a_thread, settings
):
    now = timezone.now()
    for number in range(8):
        ProbeWork.objects.create(
            key=f"pending-{number}", next_attempt_at=now - timedelta(seconds=10 - number)
        )
    assert [row.key for row in claim_due(ProbeWork, worker_id="b", limit=2)] == [
        "pending-0",
        "pending-1",
    ]
    leave_an_orphan_of_a_dead_worker(now, settings)

    # Its claim a moment later: pending rows fill the limit, the orphan waits.
    assert [row.key for row in claim_due(ProbeWork, worker_id="b", limit=2)] == [
        "pending-2",
        "pending-3",
    ]
    time.sleep(leases.LEFT_ROWS_EVERY_SECONDS)

    rescued = claim_due(ProbeWork, worker_id="b", limit=2)

    assert [row.key for row in rescued] == ["orphan", "pending-4"]
    orphan = ProbeWork.objects.get(key="orphan")
    assert (orphan.status, orphan.leased_by, orphan.attempts) == (WorkStatus.LEASED, "b", 2)


def test_p3_a_claim_with_room_to_spare_takes_a_dead_workers_rows_at_once(
    first_claims_of_a_thread, settings
):
    now = timezone.now()
    ProbeWork.objects.create(key="pending-0", next_attempt_at=now - timedelta(seconds=10))
    ProbeWork.objects.create(key="pending-1", next_attempt_at=now - timedelta(seconds=9))
    assert len(claim_due(ProbeWork, worker_id="b", limit=1)) == 1
    leave_an_orphan_of_a_dead_worker(now, settings)

    # Within the second, but the one pending row leaves room: the orphan is taken now.
    rows = claim_due(ProbeWork, worker_id="b", limit=2)

    assert [row.key for row in rows] == ["orphan", "pending-1"]


def leased_versions_behind_stale_statistics() -> list[ProbeWork]:
    """A table whose statistics know a few leased rows among many, and 8 rows leased now."""
    ProbeWork.objects.bulk_create(
        ProbeWork(key=f"done-{number:05}", status=WorkStatus.DONE) for number in range(BACKLOG)
    )
    ProbeWork.objects.bulk_create(ProbeWork(key=f"new-{number}") for number in range(8))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ProbeWork._meta.db_table}")
    return claim_due(ProbeWork, worker_id="w", limit=8)


def plan_of_the_update(write) -> dict[str, Any]:
    """EXPLAIN (JSON) of the UPDATE that write() runs."""
    updates: list[tuple[str, Any]] = []

    def keep(execute, sql, params, many, context):
        if sql.startswith(("UPDATE", "WITH")):
            updates.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        write()
    ((sql, params),) = updates
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (document,) = cursor.fetchone()
    return document[0]["Plan"]


FENCED_WRITES = {
    "update_each_if_held": lambda rows: leases.update_each_if_held(rows, hold_seconds=1.0),
    "mark_each_done": lambda rows: leases.mark_each_done(rows),
    "update_all_if_held": lambda rows: leases.update_all_if_held(rows, hold_seconds=1.0),
    "mark_done": lambda rows: leases.mark_done(rows[0]),
    "mark_failed": lambda rows: leases.mark_failed(rows[0], error="x"),
    "release": lambda rows: leases.release(rows[0]),
    "renew": lambda rows: leases.renew(ProbeWork, pks=[row.pk for row in rows], worker_id="w"),
}


@pytest.mark.postgres
@pytest.mark.parametrize("write", FENCED_WRITES.values(), ids=FENCED_WRITES.keys())
def test_p3_a_fenced_write_of_rows_named_by_id_reads_their_ids_not_every_leased_version(write):
    require_postgresql("the plan of PostgreSQL's fenced writes")
    rows = leased_versions_behind_stale_statistics()

    plan = plan_of_the_update(lambda: write(rows))

    readings = {
        (node["Node Type"], node.get("Index Name"))
        for node in nodes(plan)
        if "Scan" in node["Node Type"] and "Relation Name" in node
    }
    assert readings == {("Index Scan", f"{ProbeWork._meta.db_table}_pkey")}
