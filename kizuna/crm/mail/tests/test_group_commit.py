"""The sending threads' "sent" marks share transactions (group_commit.py): writes handed in
while a commit runs are committed together afterwards, each returns its own result, and a
failed transaction fails every write of its group and commits none of them, but one rolled
back by PostgreSQL to break a deadlock runs again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest
from django.db import OperationalError, connections, transaction

from kizuna.crm.models import Lead
from kizuna.lib.group_commit import GroupCommit
from kizuna.testing.races import require_postgresql

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the threads did not get there"
        time.sleep(0.01)


class Threads:
    """Each write handed to the group from a thread of its own; results and errors by name."""

    def __init__(self, group: GroupCommit) -> None:
        self.group = group
        self.results: dict[str, object] = {}
        self.errors: dict[str, BaseException] = {}
        self.threads: list[threading.Thread] = []

    def start(self, name: str, write: Callable[[], object]) -> None:
        def run() -> None:
            try:
                self.results[name] = self.group.run(write)
            except BaseException as error:  # asserted by the test
                self.errors[name] = error
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=30)


def rename(lead: Lead, name: str) -> Callable[[], int]:
    return lambda: Lead.objects.filter(pk=lead.pk).update(family_name=name)


def held_open(lead: Lead, entered: threading.Event, release: threading.Event) -> Callable[[], int]:
    """A first write that keeps its transaction open until released."""

    def write() -> int:
        entered.set()
        release.wait(timeout=30)
        return Lead.objects.filter(pk=lead.pk).update(family_name="first")

    return write


@pytest.fixture
def leads(organization) -> list[Lead]:
    return [
        Lead.objects.create(organization=organization, family_name=f"L{number}")
        for number in range(4)
    ]


def test_writes_handed_in_during_a_commit_are_committed_together_in_the_next_transaction(
    leads,
):
    group = GroupCommit()
    threads = Threads(group)
    entered, release = threading.Event(), threading.Event()
    threads.start("first", held_open(leads[0], entered, release))
    wait_until(entered.is_set)
    for number in (1, 2, 3):
        threads.start(f"w{number}", rename(leads[number], f"renamed {number}"))
    wait_until(lambda: len(group._pending) == 3)
    release.set()
    threads.join()

    assert threads.errors == {}
    assert threads.results == {"first": 1, "w1": 1, "w2": 1, "w3": 1}
    assert (group.transactions, group.writes) == (2, 4)
    assert sorted(Lead.objects.values_list("family_name", flat=True)) == [
        "first",
        "renamed 1",
        "renamed 2",
        "renamed 3",
    ]


def test_a_failed_transaction_fails_every_write_of_its_group_and_commits_none(leads):
    group = GroupCommit()
    threads = Threads(group)
    entered, release = threading.Event(), threading.Event()
    threads.start("first", held_open(leads[0], entered, release))
    wait_until(entered.is_set)
    threads.start("renames", rename(leads[1], "renamed"))
    wait_until(lambda: len(group._pending) == 1)

    def refused() -> int:
        raise ValueError("refused")

    threads.start("refused", refused)
    wait_until(lambda: len(group._pending) == 2)
    release.set()
    threads.join()

    assert threads.results == {"first": 1}
    assert {name: str(error) for name, error in threads.errors.items()} == {
        "renames": "refused",
        "refused": "refused",
    }
    assert Lead.objects.get(pk=leads[0].pk).family_name == "first"
    assert Lead.objects.get(pk=leads[1].pk).family_name == "L1"  # rolled back with the group
    assert (group.transactions, group.writes) == (2, 3)


def test_a_write_alone_is_committed_at_once_in_its_own_transaction(leads):
    group = GroupCommit()

    assert group.run(rename(leads[0], "alone")) == 1
    assert group.run(rename(leads[1], "alone too")) == 1

    assert (group.transactions, group.writes) == (2, 2)
    assert Lead.objects.get(pk=leads[1].pk).family_name == "alone too"


@pytest.mark.postgres
def test_a_group_caught_in_a_deadlock_runs_again_and_commits_each_write_once(leads):
    """The group locks lead 0 then lead 1; another transaction locks lead 1 then lead 0
    (as the heartbeat renews every lease in hand): PostgreSQL rolls one of them back.
    Whichever it picks, the group's writes end committed once, each with its result."""
    require_postgresql("SQLite takes one write lock: no deadlock")
    group = GroupCommit()
    group_holds_first, other_holds_second = threading.Event(), threading.Event()
    runs: list[int] = []

    def lock_first_then_second() -> int:
        runs.append(1)
        Lead.objects.filter(pk=leads[0].pk).update(family_name="group")
        group_holds_first.set()
        other_holds_second.wait(timeout=30)
        return Lead.objects.filter(pk=leads[1].pk).update(family_name="group")

    other_errors: list[BaseException] = []

    def lock_second_then_first() -> None:
        try:
            with transaction.atomic():
                Lead.objects.filter(pk=leads[1].pk).update(given_name="other")
                other_holds_second.set()
                group_holds_first.wait(timeout=30)
                Lead.objects.filter(pk=leads[0].pk).update(given_name="other")
        except OperationalError as error:  # PostgreSQL may pick this one instead
            other_errors.append(error)
        finally:
            connections.close_all()

    other = threading.Thread(target=lock_second_then_first)
    other.start()
    threads = Threads(group)
    threads.start("group", lock_first_then_second)
    threads.join()
    other.join(timeout=30)

    assert threads.errors == {}
    assert threads.results == {"group": 1}
    assert list(
        Lead.objects.filter(pk__in=[leads[0].pk, leads[1].pk]).values_list("family_name", flat=True)
    ) == ["group", "group"]
    # Either the other transaction was rolled back, or the group was and ran again.
    assert (len(other_errors), len(runs)) in {(1, 1), (0, 2)}


def test_writes_of_one_kind_in_a_group_share_one_call_and_each_gets_its_own_result(leads):
    group = GroupCommit()
    calls: list[list[Lead]] = []

    def rename_all(batch: Sequence[Lead]) -> list[str]:
        calls.append(list(batch))
        Lead.objects.filter(pk__in=[lead.pk for lead in batch]).update(family_name="together")
        return [f"renamed {lead.family_name}" for lead in batch]

    results: dict[str, object] = {}
    threads = Threads(group)
    entered, release = threading.Event(), threading.Event()
    threads.start("first", held_open(leads[0], entered, release))
    wait_until(entered.is_set)

    def hand_in(lead: Lead) -> None:
        try:
            results[lead.family_name] = group.run_batched(rename_all, lead)
        finally:
            connections.close_all()

    for lead in leads[1:]:
        thread = threading.Thread(target=hand_in, args=(lead,))
        thread.start()
        threads.threads.append(thread)
    wait_until(lambda: len(group._pending) == 3)
    release.set()
    threads.join()

    assert threads.errors == {}
    assert results == {"L1": "renamed L1", "L2": "renamed L2", "L3": "renamed L3"}
    assert [sorted(lead.family_name for lead in batch) for batch in calls] == [["L1", "L2", "L3"]]
    assert (group.transactions, group.writes) == (2, 4)
    assert sorted(Lead.objects.values_list("family_name", flat=True)) == [
        "first",
        "together",
        "together",
        "together",
    ]
