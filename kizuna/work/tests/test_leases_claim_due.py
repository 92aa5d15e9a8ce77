"""leases.claim_due(): a lane's claim from SQL compiled once, with the promises of claim().

Each claim runs the compiled SELECT with its own time, heartbeat cutoff and skipped keys, so
the tests claim twice in a row with other values to prove none is kept from the first.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from kizuna.testing.races import require_postgresql, row_locked_elsewhere, run_together
from kizuna.work import leases
from kizuna.work.leases import WorkStatus, claim, claim_due
from kizuna.work.models import ProbeWork, WorkerProcess
from kizuna.work.workers import register_worker

pytestmark = pytest.mark.django_db


def row(key, **fields):
    return ProbeWork.objects.create(key=key, **fields)


def keys(rows):
    return [one.key for one in rows]


def stored():
    return {
        one.key: (one.status, one.leased_by, one.attempts)
        for one in ProbeWork.objects.order_by("key")
    }


def test_p2_claim_due_leases_the_earliest_due_rows_up_to_the_limit_and_counts_the_attempt():
    now = timezone.now()
    row("late", next_attempt_at=now - timedelta(seconds=1))
    row("early", next_attempt_at=now - timedelta(seconds=10), attempts=2)
    row("middle", next_attempt_at=now - timedelta(seconds=5))
    row("future", next_attempt_at=now + timedelta(minutes=1))
    before = timezone.now()

    rows = claim_due(ProbeWork, worker_id="a", limit=2)

    assert keys(rows) == ["early", "middle"]
    assert [(one.status, one.leased_by, one.attempts) for one in rows] == [
        (WorkStatus.LEASED, "a", 3),
        (WorkStatus.LEASED, "a", 1),
    ]
    assert stored() == {
        "early": (WorkStatus.LEASED, "a", 3),
        "future": (WorkStatus.PENDING, "", 0),
        "late": (WorkStatus.PENDING, "", 0),
        "middle": (WorkStatus.LEASED, "a", 1),
    }
    leased = ProbeWork.objects.get(key="early")
    assert leased.leased_until is not None
    assert leased.leased_until == rows[0].leased_until
    assert leased.leased_until >= before + timedelta(seconds=ProbeWork.lease_seconds)
    assert leased.leased_until <= timezone.now() + timedelta(seconds=ProbeWork.lease_seconds)
    # The rows are whole: every field read as the ORM reads it.
    assert rows[0].next_attempt_at == leased.next_attempt_at
    assert rows[0].hold_seconds == 0.0


def test_p2_claim_due_reads_the_time_of_each_claim():
    row("soon", next_attempt_at=timezone.now() + timedelta(milliseconds=300))

    assert claim_due(ProbeWork, worker_id="a") == []
    ProbeWork.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))

    assert keys(claim_due(ProbeWork, worker_id="a")) == ["soon"]
    assert claim_due(ProbeWork, worker_id="b") == []


def test_p2_claim_due_takes_rows_whose_lease_expired_but_not_those_still_leased():
    held = row("held")
    expired = row("expired")
    claim(ProbeWork.objects.all(), worker_id="a", limit=2)
    register_worker("a")
    ProbeWork.objects.filter(pk=expired.pk).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )

    assert keys(claim_due(ProbeWork, worker_id="b")) == ["expired"]
    assert stored() == {
        "expired": (WorkStatus.LEASED, "b", 2),
        "held": (WorkStatus.LEASED, "a", 1),
    }
    assert held.pk != expired.pk


def test_p2_claim_due_takes_the_rows_of_a_worker_whose_heartbeat_stopped(settings):
    row("theirs")
    claim(ProbeWork.objects.all(), worker_id="gone", limit=1)
    register_worker("gone")
    register_worker("alive")

    assert claim_due(ProbeWork, worker_id="b") == []  # its heartbeat is fresh

    WorkerProcess.objects.filter(worker_id="gone").update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.KIZUNA_WORKER_LEASE_SECONDS + 1)
    )
    assert keys(claim_due(ProbeWork, worker_id="b")) == ["theirs"]
    assert stored() == {"theirs": (WorkStatus.LEASED, "b", 2)}


def test_p2_claim_due_skips_the_keys_it_is_given_and_only_those():
    for key in ("k1", "k2", "k3", "k4"):
        row(key)

    first = claim_due(ProbeWork, worker_id="a", limit=10, skip=("key", ["k1", "k3"]))
    ProbeWork.objects.update(status=WorkStatus.PENDING, leased_by="", leased_until=None)
    # The same shape (two keys skipped) with other keys: nothing of the first is kept.
    second = claim_due(ProbeWork, worker_id="a", limit=10, skip=("key", ["k2", "k4"]))
    ProbeWork.objects.update(status=WorkStatus.PENDING, leased_by="", leased_until=None)
    third = claim_due(ProbeWork, worker_id="a", limit=10, skip=("key", ["k4", "k4"]))

    assert sorted(keys(first)) == ["k2", "k4"]
    assert sorted(keys(second)) == ["k1", "k3"]
    assert sorted(keys(third)) == ["k1", "k2", "k3"]


def test_p2_claim_due_skips_keys_of_a_number_field():
    for number in range(3):
        row(f"r{number}", hold_seconds=float(number))

    rows = claim_due(ProbeWork, worker_id="a", limit=10, skip=("hold_seconds", [1.0]))

    assert sorted(keys(rows)) == ["r0", "r2"]


def test_p2_claim_due_leases_only_what_choose_keeps_and_leaves_the_rest_untouched():
    for key in ("a1", "a2", "a3"):
        row(key)
    offered = []

    def choose(rows):
        offered.append(keys(rows))
        return rows[1:2]

    rows = claim_due(ProbeWork, worker_id="w", limit=3, choose=choose)

    assert offered == [["a1", "a2", "a3"]]
    assert keys(rows) == ["a2"]
    assert stored() == {
        "a1": (WorkStatus.PENDING, "", 0),
        "a2": (WorkStatus.LEASED, "w", 1),
        "a3": (WorkStatus.PENDING, "", 0),
    }


def test_p2_claim_due_fails_a_row_abandoned_on_its_last_attempt_and_claims_the_next():
    row("last", max_attempts=1)
    claim(ProbeWork.objects.all(), worker_id="gone", limit=1)
    ProbeWork.objects.update(leased_until=timezone.now() - timedelta(seconds=1))
    row("next")

    rows = claim_due(ProbeWork, worker_id="b", limit=1)

    assert keys(rows) == ["next"]
    last = ProbeWork.objects.get(key="last")
    assert (last.status, last.attempts, last.last_error) == (
        WorkStatus.FAILED,
        1,
        leases.ABANDONED_ERROR,
    )
    assert last.leased_until is None
    assert last.finished_at is not None


def test_p2_claim_due_of_nothing_due_writes_nothing():
    row("future", next_attempt_at=timezone.now() + timedelta(minutes=1))

    assert claim_due(ProbeWork, worker_id="a") == []
    assert stored() == {"future": (WorkStatus.PENDING, "", 0)}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_p2_claim_due_skips_a_row_locked_by_another_claim_instead_of_waiting():
    require_postgresql("a lock held by another connection")
    for key in ("busy", "free"):
        row(key)
    with row_locked_elsewhere(ProbeWork, key="busy"):
        rows = claim_due(ProbeWork, worker_id="a", limit=10)

    assert keys(rows) == ["free"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_p2_two_workers_claiming_due_rows_at_once_never_get_the_same_row():
    require_postgresql("needs SELECT ... FOR UPDATE SKIP LOCKED")
    for number in range(6):
        row(f"r{number}")
    claimed: dict[str, list[str]] = {}

    def claims(worker_id: str):
        def action() -> None:
            claimed[worker_id] = keys(claim_due(ProbeWork, worker_id=worker_id, limit=4))

        return action

    assert run_together(claims("a"), claims("b")) == []

    assert set(claimed["a"]).isdisjoint(claimed["b"])
    assert sorted(claimed["a"] + claimed["b"]) == [f"r{number}" for number in range(6)]
    assert {one.key: one.leased_by for one in ProbeWork.objects.all()} == {
        key: worker for worker, keys_ in claimed.items() for key in keys_
    }
