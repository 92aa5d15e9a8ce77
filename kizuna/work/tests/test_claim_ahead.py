"""A lane that claims ahead (Registration.claim_ahead, the CRM's mail lane, issue 11 P3):
one claim fills its threads and the rows queued ahead of them, the next claim waits until
half of those are taken, and rows still queued when the worker stops go back unstarted."""

from __future__ import annotations

import pytest

from kizuna.work.lanes import Lane
from kizuna.work.leases import Registration, WorkStatus
from kizuna.work.models import ProbeWork

pytestmark = pytest.mark.django_db(transaction=True)


def lane_of(ran: list[str], *, threads: int, claim_ahead: int, stopping: bool = False) -> Lane:
    registration = Registration(
        ProbeWork, lambda row: ran.append(row.key), batch_size=50, claim_ahead=claim_ahead
    )
    return Lane(
        registration,
        worker_id="ahead",
        threads=threads,
        poll_seconds=0.05,
        should_stop=lambda: stopping,
    )


@pytest.fixture
def due_rows() -> None:
    ProbeWork.objects.bulk_create(ProbeWork(key=f"k{number}") for number in range(20))


@pytest.mark.usefixtures("due_rows")
def test_p3_one_claim_fills_the_threads_and_the_rows_ahead_then_waits_for_half_of_them():
    lane = lane_of([], threads=2, claim_ahead=6)

    assert lane.fill() == 8
    assert ProbeWork.objects.filter(status=WorkStatus.LEASED, leased_by="ahead").count() == 8
    assert lane.fill() == 0  # 8 in hand: no claim until fewer than 2 + 3
    for _row in range(4):  # four rows taken off the queue and finished
        row = lane._queue.get()
        assert row is not None
        lane._in_hand.pop(row.pk)
        lane._per_key[None] -= 1
    assert lane.fill() == 4
    assert ProbeWork.objects.filter(status=WorkStatus.LEASED).count() == 12


@pytest.mark.usefixtures("due_rows")
def test_p3_rows_claimed_ahead_go_back_unstarted_when_the_worker_stops():
    ran: list[str] = []
    lane = lane_of(ran, threads=1, claim_ahead=4, stopping=True)
    assert lane.fill() == 5

    lane.start()
    lane.stop()
    lane.join()

    assert ran == []
    assert lane.free_threads() == 1
    assert list(ProbeWork.objects.values_list("status", "attempts", "leased_by").distinct()) == [
        (WorkStatus.PENDING, 0, "")
    ]


@pytest.mark.usefixtures("due_rows")
def test_p3_a_lane_without_claim_ahead_claims_only_for_its_free_threads():
    lane = lane_of([], threads=3, claim_ahead=0)

    assert lane.fill() == 3
    assert lane.fill() == 0
