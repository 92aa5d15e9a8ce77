"""A lane's threads commit without waiting for the disk on PostgreSQL (issue 10, P2 drain).

Every other transaction sees such a commit at once, so the leases and their fences hold as
before; only a crash of the database server itself could lose the last claims or marks, and
their rows then run again, as after the death of their worker.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from kizuna.testing.processes import wait_for
from kizuna.testing.races import require_postgresql
from kizuna.work import lanes, leases
from kizuna.work.leases import WorkStatus
from kizuna.work.models import ProbeWork


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


class RecordingLane(lanes.Lane):
    """A lane that notes the setting of its dispatcher's connection after each claim."""

    claims_seen: list[str]

    def fill(self) -> int:
        started = super().fill()
        if started:
            self.claims_seen.append(synchronous_commit())
        return started


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_p2_on_postgresql_a_lanes_claims_and_handlers_commit_without_waiting_for_the_disk():
    require_postgresql("synchronous_commit is PostgreSQL's")
    handled: list[tuple[str, str]] = []

    def handler(row: ProbeWork) -> None:
        handled.append((row.key, synchronous_commit()))
        leases.mark_done(row)

    stop = threading.Event()
    lane = RecordingLane(
        leases.Registration(ProbeWork, handler, 10),
        worker_id="w",
        threads=2,
        poll_seconds=0.05,
        should_stop=stop.is_set,
    )
    lane.claims_seen = []
    for key in ("p1", "p2", "p3"):
        ProbeWork.objects.create(key=key)
    lane.start()
    try:
        wait_for(
            lambda: ProbeWork.objects.filter(status=WorkStatus.DONE).count() == 3,
            timeout=30,
            message="the lane runs the three rows",
        )
    finally:
        stop.set()
        lane.stop()
        lane.join()

    assert sorted(handled) == [("p1", "off"), ("p2", "off"), ("p3", "off")]
    assert lane.claims_seen and set(lane.claims_seen) == {"off"}
    # This thread's connection (the web's, a test's) still waits for the disk.
    assert synchronous_commit() == "on"


@pytest.mark.django_db
def test_p2_a_setting_made_inside_a_transaction_is_made_again_next_time():
    """A rollback undoes SET synchronous_commit (on PostgreSQL): made inside a transaction (a
    test's, a handler's), it is not remembered for the connection. SQLite has no such setting:
    nothing is done or remembered there either."""
    # What an earlier test of this thread left (made outside a transaction, on a connection
    # since closed) is not this test's business: it starts from a thread that remembers nothing.
    lanes._asynchronous_commit.__dict__.pop(connection.alias, None)

    lanes.commit_without_waiting_for_the_disk(connection.alias)

    assert lanes._asynchronous_commit.__dict__.get(connection.alias) is None
