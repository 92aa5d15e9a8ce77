"""What every kind of leased work (outgoing mail, webhook deliveries) relies on (issue 14).

Worker "a" claims rows and dies (its heartbeat goes stale); worker "b" runs the due
work after it. Other rows are in the table each time, so that a step which touches
more rows than its own shows. These describe behaviour, not how the engine does it:
a rework of the worker must keep them green.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kizuna.lib import prepared
from kizuna.testing.races import require_postgresql, run_together
from kizuna.work import leases
from kizuna.work.leases import WorkStatus, claim, mark_done, run_due_work
from kizuna.work.models import ProbeEffect, ProbeWork, WorkerProcess
from kizuna.work.workers import register_worker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _lease_of_thirty_seconds(settings):
    settings.KIZUNA_WORKER_LEASE_SECONDS = 30


def row(key: str, **fields) -> ProbeWork:
    return ProbeWork.objects.create(key=key, **fields)


def picks_up(worker_id: str, *rows: ProbeWork) -> list[ProbeWork]:
    """Worker `worker_id` (alive) claims exactly these rows."""
    register_worker(worker_id)
    claimed = claim(ProbeWork.objects.filter(pk__in=[r.pk for r in rows]), worker_id=worker_id)
    assert sorted(r.key for r in claimed) == sorted(r.key for r in rows)
    return claimed


def dies(worker_id: str) -> None:
    WorkerProcess.objects.filter(worker_id=worker_id).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )


def run_everything(worker_id: str) -> int:
    """Rounds of `worker_id` until nothing is due; how many rows ran."""
    register_worker(worker_id)
    total = 0
    while ran := run_due_work(worker_id=worker_id):
        total += ran
    return total


def states() -> dict[str, tuple[str, int, str]]:
    return {r.key: (r.status, r.attempts, r.last_error) for r in ProbeWork.objects.order_by("key")}


def effects() -> dict[str, tuple[str, int]]:
    return {e.key: (e.worker_id, e.repeats) for e in ProbeEffect.objects.order_by("key")}


def test_a_worker_dying_on_one_rows_last_attempt_fails_that_row_only():
    last = row("a-last", max_attempts=1)
    retrying = row("a-retrying", max_attempts=2)
    other_last = row("c-last", max_attempts=1)
    picks_up("a", last, retrying)
    picks_up("c", other_last)  # alive, its lease running
    row("pending")
    done = row("done-before")
    mark_done(picks_up("d", done)[0])
    dies("a")

    assert run_everything("b") == 2

    assert states() == {
        "a-last": (WorkStatus.FAILED, 1, leases.ABANDONED_ERROR),
        "a-retrying": (WorkStatus.DONE, 2, ""),
        "c-last": (WorkStatus.LEASED, 1, ""),
        "done-before": (WorkStatus.DONE, 1, ""),
        "pending": (WorkStatus.DONE, 1, ""),
    }
    assert effects() == {"a-retrying": ("b", 0), "pending": ("b", 0)}


def test_a_finished_row_is_never_run_again_after_its_worker_dies():
    done, failed, retry_later, held = (row(k) for k in ("done", "failed", "retry-later", "held"))
    a_rows = {r.key: r for r in picks_up("a", done, failed, retry_later, held)}
    mark_done(a_rows["done"])
    leases.mark_failed(a_rows["failed"], error="refused for good", retry=False)
    leases.mark_failed(a_rows["retry-later"], error="try again", retry=True)
    dies("a")

    assert run_everything("b") == 1

    assert states() == {
        "done": (WorkStatus.DONE, 1, ""),
        "failed": (WorkStatus.FAILED, 1, "refused for good"),
        "held": (WorkStatus.DONE, 2, ""),
        "retry-later": (WorkStatus.PENDING, 1, "try again"),
    }
    assert effects() == {"held": ("b", 0)}


def test_the_rows_of_a_live_worker_are_left_to_it_while_its_lease_runs():
    held = row("held")
    picks_up("a", held)
    row("pending")

    assert run_everything("b") == 1

    assert states()["held"] == (WorkStatus.LEASED, 1, "")
    assert ProbeWork.objects.get(key="held").leased_by == "a"


def test_a_row_whose_lease_expired_is_taken_over_even_if_its_worker_still_beats():
    held = row("held")
    picks_up("a", held)
    ProbeWork.objects.filter(pk=held.pk).update(leased_until=timezone.now() - timedelta(seconds=1))

    assert run_everything("b") == 1

    assert states() == {"held": (WorkStatus.DONE, 2, "")}
    assert effects() == {"held": ("b", 0)}


def test_a_handler_that_finishes_its_row_and_then_raises_leaves_it_finished(monkeypatch):
    def finishes_then_raises(work: ProbeWork) -> None:
        mark_done(work)
        raise RuntimeError("crashed after sending")

    monkeypatch.setitem(
        leases._registry, "work.ProbeWork", leases.Registration(ProbeWork, finishes_then_raises, 10)
    )
    row("sent")
    row("other")

    assert run_everything("b") == 2

    assert states() == {"other": (WorkStatus.DONE, 1, ""), "sent": (WorkStatus.DONE, 1, "")}


def test_a_handler_that_raises_fails_its_own_row_only(monkeypatch):
    def raises_for_one(work: ProbeWork) -> None:
        if work.key == "broken":
            raise RuntimeError("disk full")
        mark_done(work)

    monkeypatch.setitem(
        leases._registry, "work.ProbeWork", leases.Registration(ProbeWork, raises_for_one, 10)
    )
    row("broken", max_attempts=1)
    row("fine")

    assert run_everything("b") == 2

    assert states() == {
        "broken": (WorkStatus.FAILED, 1, "RuntimeError: disk full"),
        "fine": (WorkStatus.DONE, 1, ""),
    }


def test_a_row_is_tried_max_attempts_times_then_fails(monkeypatch):
    def always_fails(work: ProbeWork) -> None:
        leases.mark_failed(work, error=f"attempt {work.attempts}")
        ProbeWork.objects.filter(pk=work.pk).update(next_attempt_at=timezone.now())

    monkeypatch.setitem(
        leases._registry, "work.ProbeWork", leases.Registration(ProbeWork, always_fails, 10)
    )
    row("flaky", max_attempts=3)

    assert run_everything("b") == 3

    assert states() == {"flaky": (WorkStatus.FAILED, 3, "attempt 3")}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_at_once_never_get_the_same_row():
    require_postgresql("needs SELECT ... FOR UPDATE SKIP LOCKED")
    for number in range(6):
        row(f"r{number}")
    claimed: dict[str, list[str]] = {}

    def claims(worker_id: str):
        def action() -> None:
            rows = claim(ProbeWork.objects.all(), worker_id=worker_id, limit=4)
            claimed[worker_id] = [r.key for r in rows]

        return action

    assert run_together(claims("a"), claims("b")) == []

    assert set(claimed["a"]).isdisjoint(claimed["b"])
    assert sorted(claimed["a"] + claimed["b"]) == [f"r{number}" for number in range(6)]
    assert {r.key: r.leased_by for r in ProbeWork.objects.all()} == {
        key: worker for worker, keys in claimed.items() for key in keys
    }


def test_an_abandoned_row_records_when_it_was_given_up():
    last = row("a-last", max_attempts=1)
    picks_up("a", last)
    dies("a")

    run_everything("b")

    stored = ProbeWork.objects.get(key="a-last")
    assert stored.finished_at is not None
    assert stored.leased_until is None


def test_a_long_error_is_kept_to_its_first_4000_characters():
    [claimed] = picks_up("a", row("long"))

    assert leases.mark_failed(claimed, error="x" * 3999 + "yz" + "w" * 100, retry=False)

    stored = ProbeWork.objects.get(key="long")
    assert stored.last_error == "x" * 3999 + "y"
    assert claimed.last_error == stored.last_error
    assert (claimed.status, claimed.finished_at) == (WorkStatus.FAILED, stored.finished_at)


def test_a_released_row_is_pending_again_in_the_database_and_in_hand():
    [claimed] = picks_up("a", row("released"))

    assert leases.release(claimed)

    assert (claimed.status, claimed.leased_until, claimed.leased_by, claimed.attempts) == (
        WorkStatus.PENDING,
        None,
        "",
        0,
    )
    assert not leases.release(claimed)  # not ours any more


def test_without_a_limit_a_claim_takes_ten_rows_and_a_kind_runs_ten_per_round(monkeypatch):
    for number in range(12):
        row(f"r{number:02}")

    assert len(claim(ProbeWork.objects.all(), worker_id="a")) == 10

    ProbeWork.objects.update(status=WorkStatus.PENDING, attempts=0, leased_by="")

    def finish(work: ProbeWork) -> None:
        mark_done(work)

    monkeypatch.setattr(leases, "_registry", {})
    leases.register(ProbeWork, finish)
    assert run_due_work(worker_id="b") == 10
    assert ProbeWork.objects.filter(status=WorkStatus.DONE).count() == 10


# Progress and finishing marks of several rows at once (mail groups, issue 11 P3): all of
# them or none, and never a row the caller does not hold or did not name.


def claimed_rows(worker_id: str, *keys: str) -> list[ProbeWork]:
    register_worker(worker_id)
    for key in keys:
        row(key)
    claimed = claim(ProbeWork.objects.filter(key__in=keys), worker_id=worker_id, limit=len(keys))
    return sorted(claimed, key=lambda found: found.key)


def stored(*keys: str, fields: tuple[str, ...] = ("status", "hold_seconds")) -> list[tuple]:
    return list(ProbeWork.objects.filter(key__in=keys).order_by("key").values_list(*fields))


def test_progress_saved_on_a_held_row_is_on_the_row_object_too():
    (held,) = claimed_rows("a", "held")

    assert leases.update_if_held(held, hold_seconds=2.5)

    assert held.hold_seconds == 2.5
    assert stored("held") == [(WorkStatus.LEASED, 2.5)]


def test_a_group_of_rows_all_held_is_updated_in_one_go_and_the_row_objects_follow():
    first, second = claimed_rows("a", "first", "second")
    (alone,) = claimed_rows("a", "alone")

    assert leases.update_all_if_held([first, second], hold_seconds=1.5)
    assert leases.update_all_if_held([alone], hold_seconds=3.0)
    assert leases.update_all_if_held([]) is True  # nothing to update: nothing lost

    assert (first.hold_seconds, second.hold_seconds, alone.hold_seconds) == (1.5, 1.5, 3.0)
    assert stored("first", "second", "alone") == [
        (WorkStatus.LEASED, 3.0),
        (WorkStatus.LEASED, 1.5),
        (WorkStatus.LEASED, 1.5),
    ]


def test_a_group_holds_rows_of_different_claims_and_touches_no_row_it_does_not_name():
    # "retried" is on its second attempt, the others on their first: two claims, one group.
    (retried,) = claimed_rows("a", "retried")
    assert leases.mark_failed(retried, error="timeout")
    ProbeWork.objects.filter(pk=retried.pk).update(next_attempt_at=timezone.now())
    (retried,) = claim(ProbeWork.objects.filter(key="retried"), worker_id="a")
    first, unnamed = claimed_rows("a", "first", "unnamed")
    assert (retried.attempts, first.attempts, unnamed.attempts) == (2, 1, 1)

    assert leases.update_all_if_held([retried, first], hold_seconds=1.5)

    assert stored("first", "retried", "unnamed") == [
        (WorkStatus.LEASED, 1.5),
        (WorkStatus.LEASED, 1.5),
        (WorkStatus.LEASED, 0.0),
    ]


@pytest.mark.parametrize(
    "lost",
    [
        {"leased_by": "b"},  # taken over by another worker at the same attempt number
        {"attempts": 2},  # claimed again since (a later attempt)
        {"status": WorkStatus.DONE, "leased_until": None},  # finished meanwhile
    ],
    ids=["another-worker", "a-later-attempt", "finished"],
)
def test_a_group_with_one_row_no_longer_held_changes_none_of_them(lost):
    first, second, third = claimed_rows("a", "first", "second", "third")
    ProbeWork.objects.filter(pk=second.pk).update(**lost)

    assert not leases.update_all_if_held([first, second, third], hold_seconds=1.5)
    assert not leases.mark_all_done([first, second, third])

    assert [hold for _status, hold in stored("first", "second", "third")] == [0.0, 0.0, 0.0]
    assert stored("first", "third", fields=("status",)) == [(WorkStatus.LEASED,)] * 2
    assert first.status == WorkStatus.LEASED and first.hold_seconds == 0.0


def test_a_group_marked_done_forgets_the_errors_of_its_earlier_attempts():
    first, second = claimed_rows("a", "first", "second")
    ProbeWork.objects.filter(pk=first.pk).update(last_error="timeout on attempt 0")
    other = row("other", last_error="refused")

    assert leases.mark_all_done([first, second], hold_seconds=0.5)

    assert stored("first", "second", fields=("status", "last_error", "leased_until")) == [
        (WorkStatus.DONE, "", None),
        (WorkStatus.DONE, "", None),
    ]
    assert (first.status, first.last_error) == (WorkStatus.DONE, "")
    assert ProbeWork.objects.get(pk=other.pk).last_error == "refused"


def test_renewing_extends_by_the_kind_s_lease_only_the_named_rows_this_worker_holds():
    named, unnamed = claimed_rows("a", "named", "unnamed")
    ProbeWork.objects.update(leased_until=timezone.now())
    before = timezone.now()

    assert leases.renew(ProbeWork, pks=[named.pk], worker_id="a") == 1

    renewed = ProbeWork.objects.get(pk=named.pk).leased_until
    left_alone = ProbeWork.objects.get(pk=unnamed.pk).leased_until
    assert renewed is not None and left_alone is not None
    assert renewed >= before + timedelta(seconds=ProbeWork.lease_seconds)
    assert left_alone < before


def test_a_kind_registers_without_claiming_ahead_unless_it_asks(monkeypatch):
    monkeypatch.setattr(leases, "_registry", {})

    def handler(found: ProbeWork) -> None:
        pass

    leases.register(ProbeWork, handler, lane_key="key")
    assert leases.registrations() == [leases.Registration(ProbeWork, handler, 10, lane_key="key")]
    assert leases.registrations()[0].claim_ahead == 0

    leases.register(
        ProbeWork, handler, batch_size=3, concurrency=2, lane_key="key", per_key_limit=1
    )
    assert leases.registrations() == [leases.Registration(ProbeWork, handler, 3, 2, "key", 1, 0)]
    leases.register(ProbeWork, handler, batch_size=3, concurrency=2, claim_ahead=5)
    assert leases.registrations() == [
        leases.Registration(ProbeWork, handler, 3, 2, None, None, claim_ahead=5)
    ]

    with pytest.raises(ValueError) as refused:
        leases.register(ProbeWork, handler, lane_key="key", claim_ahead=4)
    assert str(refused.value) == "claim_ahead would hold rows beyond their key's limit"


def test_a_claim_leases_only_the_due_rows_its_chooser_keeps_and_none_if_it_keeps_none():
    for key in ("first", "second", "third"):
        row(key)
    seen: list[list[str]] = []

    def second_only(rows: list[ProbeWork]) -> list[ProbeWork]:
        seen.append([found.key for found in rows])
        return rows[1:2]

    claimed = claim(ProbeWork.objects.all(), worker_id="a", limit=3, choose=second_only)
    assert claim(ProbeWork.objects.all(), worker_id="a", limit=3, choose=lambda rows: []) == []

    assert [found.key for found in claimed] == ["second"]
    assert seen == [["first", "second", "third"]]
    assert stored("first", "second", "third", fields=("status", "leased_by")) == [
        (WorkStatus.PENDING, ""),
        (WorkStatus.LEASED, "a"),
        (WorkStatus.PENDING, ""),
    ]


# Marks of several rows in one statement that tell each row apart (webhook deliveries' done
# marks, CRM mail's renewals and sent marks): each row held is written, each row lost is
# reported and left as it is, and no row the caller did not name is touched.


def test_each_row_of_a_group_is_written_while_held_and_each_lost_one_is_told_apart():
    (retried,) = claimed_rows("a", "retried")
    assert leases.mark_failed(retried, error="timeout")
    ProbeWork.objects.filter(pk=retried.pk).update(next_attempt_at=timezone.now())
    (retried,) = claim(ProbeWork.objects.filter(key="retried"), worker_id="a")
    finished, first, later, taken, unnamed = claimed_rows(  # in the order of their keys
        "a", "first", "taken", "later", "finished", "unnamed"
    )
    ProbeWork.objects.filter(pk=taken.pk).update(leased_by="b")
    ProbeWork.objects.filter(pk=later.pk).update(attempts=2)
    ProbeWork.objects.filter(pk=finished.pk).update(status=WorkStatus.DONE, leased_until=None)
    group = [taken, retried, finished, first, later]  # not in the order of their ids

    assert leases.update_each_if_held(group, hold_seconds=1.5) == [
        False,
        True,
        False,
        True,
        False,
    ]
    assert leases.update_each_if_held([], hold_seconds=1.5) == []

    assert stored("finished", "first", "later", "retried", "taken", "unnamed") == [
        (WorkStatus.DONE, 0.0),
        (WorkStatus.LEASED, 1.5),
        (WorkStatus.LEASED, 0.0),
        (WorkStatus.LEASED, 1.5),
        (WorkStatus.LEASED, 0.0),
        (WorkStatus.LEASED, 0.0),
    ]
    assert [found.hold_seconds for found in group] == [0.0, 1.5, 0.0, 1.5, 0.0]
    assert unnamed.hold_seconds == 0.0


def test_each_row_of_a_group_marked_done_forgets_its_errors_and_a_lost_one_keeps_its_state():
    first, second, taken = claimed_rows("a", "first", "second", "taken")  # in key order
    ProbeWork.objects.filter(pk=first.pk).update(last_error="timeout on attempt 0")
    ProbeWork.objects.filter(pk=taken.pk).update(leased_by="b", last_error="refused")
    other = row("other", last_error="refused")
    before = timezone.now()

    assert leases.mark_each_done([second, taken, first], hold_seconds=0.5) == [True, False, True]

    fields = ("status", "last_error", "leased_until", "hold_seconds", "leased_by")
    assert stored("first", "second", "taken", fields=fields) == [
        (WorkStatus.DONE, "", None, 0.5, "a"),
        (WorkStatus.DONE, "", None, 0.5, "a"),
        (WorkStatus.LEASED, "refused", taken.leased_until, 0.0, "b"),
    ]
    finished = ProbeWork.objects.filter(key__in=["first", "second"]).values_list(
        "finished_at", flat=True
    )
    assert all(at is not None and at >= before for at in finished)
    assert (first.status, first.last_error, first.leased_until) == (WorkStatus.DONE, "", None)
    assert (taken.status, taken.finished_at) == (WorkStatus.LEASED, None)
    assert ProbeWork.objects.get(pk=other.pk).last_error == "refused"
    assert ProbeWork.objects.get(pk=other.pk).status == WorkStatus.PENDING


# claim_due() compiles its SELECT once per thread and shape (a lane thread's first claim of a
# shape compiles it). These claims start from a thread's empty cache, so that the compiling is
# under test too, and not only SQL an earlier test of the session compiled.


@pytest.fixture
def first_claims_of_a_thread() -> Iterator[None]:
    leases._compiled.__dict__.clear()
    yield
    leases._compiled.__dict__.clear()


def test_a_threads_first_claims_take_what_is_due_first_due_first_and_nothing_else(
    first_claims_of_a_thread, settings
):
    now = timezone.now()
    register_worker("alive")
    register_worker("gone")
    WorkerProcess.objects.filter(worker_id="gone").update(
        heartbeat_at=now - timedelta(seconds=settings.KIZUNA_WORKER_LEASE_SECONDS + 1)
    )
    leased = {"status": WorkStatus.LEASED, "attempts": 1}
    row("early", next_attempt_at=now - timedelta(seconds=10))
    row("late", next_attempt_at=now - timedelta(seconds=1))
    row("future", next_attempt_at=now + timedelta(minutes=1))
    row(
        "expired",
        next_attempt_at=now - timedelta(seconds=5),
        leased_by="alive",
        **leased,
        leased_until=now - timedelta(seconds=1),
    )
    row(
        "held",
        next_attempt_at=now - timedelta(seconds=20),
        leased_by="alive",
        **leased,
        leased_until=now + timedelta(minutes=1),
    )
    row(
        "orphan",
        next_attempt_at=now - timedelta(seconds=3),
        leased_by="gone",
        **leased,
        leased_until=now + timedelta(minutes=1),
    )

    first = leases.claim_due(ProbeWork, worker_id="b", limit=3)
    second = leases.claim_due(ProbeWork, worker_id="b", limit=3)

    assert [found.key for found in first] == ["early", "expired", "orphan"]
    assert [found.key for found in second] == ["late"]
    assert stored(
        "early",
        "expired",
        "future",
        "held",
        "late",
        "orphan",
        fields=("status", "leased_by", "attempts"),
    ) == [
        (WorkStatus.LEASED, "b", 1),
        (WorkStatus.LEASED, "b", 2),
        (WorkStatus.PENDING, "", 0),
        (WorkStatus.LEASED, "alive", 1),
        (WorkStatus.LEASED, "b", 1),
        (WorkStatus.LEASED, "b", 2),
    ]
    assert first[0].next_attempt_at == ProbeWork.objects.get(key="early").next_attempt_at
    assert [found.get_deferred_fields() for found in first] == [set(), set(), set()]  # whole rows


def test_a_threads_first_claim_without_a_limit_takes_ten_rows(first_claims_of_a_thread):
    for number in range(12):
        row(f"r{number:02}")

    rows = leases.claim_due(ProbeWork, worker_id="a")

    assert [found.key for found in rows] == [f"r{number:02}" for number in range(10)]


def test_a_group_of_one_row_is_marked_done_while_held():
    (alone,) = claimed_rows("a", "alone")
    (lost,) = claimed_rows("a", "lost")
    ProbeWork.objects.filter(pk=lost.pk).update(leased_by="b")

    assert leases.mark_each_done([alone]) == [True]
    assert leases.update_each_if_held([lost], hold_seconds=1.0) == [False]

    assert stored("alone", "lost") == [(WorkStatus.DONE, 0.0), (WorkStatus.LEASED, 0.0)]


@pytest.mark.parametrize(
    ("field", "skipped", "expected"),
    [
        ("key", ["k2", "k4"], ["k1", "k3"]),
        ("key", ["k3"], ["k1", "k2", "k4"]),
        ("hold_seconds", [1.0, 3.0], ["k2", "k4"]),
        ("", [], ["k1", "k2", "k3", "k4"]),
    ],
    ids=["two-text-keys", "one-text-key", "number-keys", "none"],
)
def test_a_threads_first_claim_skipping_some_keys_takes_every_due_row_but_theirs(
    first_claims_of_a_thread, field, skipped, expected
):
    for number in range(1, 5):
        row(f"k{number}", hold_seconds=float(number))

    rows = leases.claim_due(ProbeWork, worker_id="a", limit=10, skip=(field, skipped))

    assert [found.key for found in rows] == expected


def test_a_threads_first_claim_skipping_some_keys_leaves_their_rows_left_by_a_worker_too(
    first_claims_of_a_thread,
):
    """The claim reads pending rows and rows left by their worker in two parts: a skipped
    key is skipped in both."""
    now = timezone.now()
    gone = {
        "status": WorkStatus.LEASED,
        "attempts": 1,
        "leased_by": "gone",
        "leased_until": now - timedelta(seconds=1),
    }
    row("k1-left", hold_seconds=1.0, next_attempt_at=now - timedelta(seconds=9), **gone)
    row("k2-left", hold_seconds=2.0, next_attempt_at=now - timedelta(seconds=8), **gone)
    row("k1-pending", hold_seconds=1.0, next_attempt_at=now - timedelta(seconds=7))
    row("k2-pending", hold_seconds=2.0, next_attempt_at=now - timedelta(seconds=6))

    rows = leases.claim_due(ProbeWork, worker_id="a", limit=10, skip=("hold_seconds", [1.0]))

    assert [found.key for found in rows] == ["k2-left", "k2-pending"]


def test_a_claim_takes_pending_rows_and_rows_left_by_a_worker_first_due_first_up_to_its_limit():
    now = timezone.now()
    row("pending-early", next_attempt_at=now - timedelta(seconds=9))
    row(
        "left",
        next_attempt_at=now - timedelta(seconds=8),
        status=WorkStatus.LEASED,
        attempts=1,
        leased_by="gone",
        leased_until=now - timedelta(seconds=1),
    )
    row("pending-late", next_attempt_at=now - timedelta(seconds=7))

    rows = claim(ProbeWork.objects.all(), worker_id="b", limit=2)

    assert [found.key for found in rows] == ["pending-early", "left"]
    assert states()["pending-late"] == (WorkStatus.PENDING, 0, "")


def effects_inserted(*keys_and_repeats: tuple[str, int]) -> tuple[str, list]:
    """The INSERT of a ProbeEffect of worker "a" for each (key, repeats): SQL, parameters."""
    return prepared.insert_statement(
        ProbeEffect,
        ["key", "worker_id", "repeats", "created_at"],
        [[key, "a", repeats, timezone.now()] for key, repeats in keys_and_repeats],
        connection,
    )


def test_a_write_along_with_the_done_marks_is_made_whether_or_not_its_rows_are_still_held():
    """A delivery's attempt goes with its "done" mark (along_with): on PostgreSQL in the same
    statement, elsewhere just before; made even for a row another worker took over."""
    held, taken = claimed_rows("a", "held", "taken")
    ProbeWork.objects.filter(pk=taken.pk).update(leased_by="b")
    along_with = effects_inserted(("held", 0), ("taken", 0))

    with CaptureQueriesContext(connection) as queries:
        assert leases.mark_each_done([held, taken], along_with=along_with) == [True, False]

    assert [query["sql"].split()[0] for query in queries.captured_queries] == (
        ["WITH"] if connection.vendor == "postgresql" else ["INSERT", "UPDATE"]
    )
    assert effects() == {"held": ("a", 0), "taken": ("a", 0)}
    fields = ("status", "leased_by")
    assert stored("held", "taken", fields=fields) == [
        (WorkStatus.DONE, "a"),
        (WorkStatus.LEASED, "b"),
    ]
    assert (held.status, taken.status) == (WorkStatus.DONE, WorkStatus.LEASED)


def test_a_write_along_with_no_row_still_held_is_made_all_the_same():
    (lost,) = claimed_rows("a", "lost")
    ProbeWork.objects.filter(pk=lost.pk).update(leased_by="b")
    along_with = effects_inserted(("lost", 3))

    assert leases.update_each_if_held([lost], along_with=along_with, hold_seconds=1.0) == [False]

    assert effects() == {"lost": ("a", 3)}
    assert stored("lost") == [(WorkStatus.LEASED, 0.0)]


def test_a_kind_registers_with_what_prepares_its_claims_only_when_it_gives_one(monkeypatch):
    monkeypatch.setattr(leases, "_registry", {})

    def handler(found: ProbeWork) -> None:
        pass

    def prepare(claimed: list[ProbeWork]) -> None:
        pass

    leases.register(ProbeWork, handler, lane_key="key")
    assert leases.registrations()[0].prepare is None

    leases.register(ProbeWork, handler, lane_key="key", prepare=prepare)
    assert leases.registrations() == [
        leases.Registration(ProbeWork, handler, 10, lane_key="key", prepare=prepare)
    ]
