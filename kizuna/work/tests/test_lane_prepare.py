"""A lane hands each claim's rows to its kind's prepare() once, before any of them runs
(Registration.prepare: the webhook lane reads the endpoints of a claim there, issue 10)."""

from __future__ import annotations

import pytest

from kizuna.testing.worker import queued_rows
from kizuna.work.lanes import Lane
from kizuna.work.leases import Registration, WorkStatus
from kizuna.work.models import ProbeWork

pytestmark = pytest.mark.django_db(transaction=True)


def lane_of(prepare, *, threads: int = 3) -> Lane:
    registration = Registration(ProbeWork, lambda row: None, batch_size=50, prepare=prepare)
    return Lane(
        registration, worker_id="w", threads=threads, poll_seconds=0.05, should_stop=lambda: False
    )


def test_p2_a_lane_prepares_each_claims_rows_once_already_leased_and_nothing_without_a_claim():
    ProbeWork.objects.bulk_create(ProbeWork(key=f"k{number}") for number in range(4))
    prepared: list[list[tuple[str, str, str]]] = []

    def prepare(rows: list[ProbeWork]) -> None:
        stored = ProbeWork.objects.filter(pk__in=[row.pk for row in rows])
        assert set(stored.values_list("status", flat=True)) == {WorkStatus.LEASED}
        prepared.append([(row.key, row.status, row.leased_by) for row in rows])
        for row in rows:
            row.hold_seconds = 2.0  # what the handler will find on its row

    lane = lane_of(prepare)

    assert lane.fill() == 3
    assert prepared == [[(f"k{n}", WorkStatus.LEASED, "w") for n in range(3)]]
    assert [(row.key, row.hold_seconds) for row in queued_rows(lane)] == [
        (f"k{n}", 2.0) for n in range(3)
    ]
    lane._in_hand.clear()
    lane._per_key.clear()
    assert lane.fill() == 1
    assert lane.fill() == 0  # nothing due: prepare() is not called for an empty claim
    assert prepared[1:] == [[("k3", WorkStatus.LEASED, "w")]]


def test_p2_a_claim_whose_preparation_fails_still_runs_its_rows():
    ProbeWork.objects.bulk_create(ProbeWork(key=f"k{number}") for number in range(2))

    def prepare(rows: list[ProbeWork]) -> None:
        raise RuntimeError("the database went away")

    lane = lane_of(prepare)

    assert lane.fill() == 2
    assert sorted(row.key for row in queued_rows(lane)) == ["k0", "k1"]
    assert lane.free_threads() == 1
