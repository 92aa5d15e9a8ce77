"""Group commit: the threads of a worker's lane share one transaction for their small writes.

A thread of a lane writes to the database for each row it works on (a webhook delivery: its
attempt and its "done" mark; CRM mail did too, until one sending thread wrote each step of a
whole batch in one statement of its own). Committed one by one, each
commit waits on PostgreSQL for the WAL to reach the disk and takes SQLite's write lock. A
thread hands its write to `GroupCommit.run()` instead: the first one in leads and runs, in
one transaction, every write handed in meanwhile; the others wait for that commit. Nobody
waits for a timer: while one commit is under way the next group gathers by itself, so groups
grow with the load and stay single writes without.

Each write is the same fenced statement it would be alone and returns its own result to
its own thread. If the transaction fails, every write of the group fails with that error
in its own thread and none of them is committed: exactly what a thread sees when its own
commit fails. A group locks several rows in the order its writes arrived, so on PostgreSQL
it can deadlock with another transaction locking some of the same rows in another order
(the heartbeat renewing the leases of every row in hand): PostgreSQL rolls back one of the
two, and a group rolled back so runs again (its writes must be safe to run again after a
rollback: fenced UPDATEs and INSERTs are).

Writes of one kind can share their statements too: `run_batched(write_all, argument)`
hands the group's arguments of `write_all` to one call, `write_all(arguments)`, which
returns each one's result in order (one UPDATE for the "done" marks of eight threads
instead of eight).

A group whose writes are one statement that is atomic by itself (a webhook lane's attempts
and "done" marks on PostgreSQL: one UPDATE with the INSERT in its WITH clause) needs no
transaction around it: `GroupCommit(atomic=...)` says when, and such a group runs in
autocommit, without the BEGIN and COMMIT round trips (a ninth of a delivery's worker CPU).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.db import OperationalError, transaction

T = TypeVar("T")

# A group whose every attempt is rolled back fails its writes: a "done" mark among them
# (an email the SMTP server already took, a delivery its receiver already acknowledged)
# leaves that work to be done a second time. Three attempts were used up once in a
# 10,000-message CRM send on PostgreSQL at load 15 (the heartbeat renewing the leases in
# hand, three times in a row; leases.renew() now skips the rows a group holds, so that
# cycle is gone): the attempts after the first wait a little longer each, for the other
# transaction to finish.
DEADLOCK_ATTEMPTS = 8
DEADLOCK_PAUSE_SECONDS = 0.01
# PostgreSQL's deadlock_detected and serialization_failure: the transaction was chosen to be
# rolled back so that another could go on; running it again is the remedy.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})


def _rolled_back_to_break_a_cycle(error: OperationalError) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in _RETRY_SQLSTATES


@dataclass
class _Write(Generic[T]):
    write: Callable[[], T] | None
    batch: Callable[[Sequence[Any]], Sequence[T]] | None = None
    argument: Any = None
    done: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Runs the writes handed in by several threads, as few transactions as they allow."""

    def __init__(
        self,
        *,
        max_group: int = 64,
        using: str | None = None,
        atomic: Callable[[], bool] = lambda: True,
    ) -> None:
        """`atomic()`: whether a group must run in a transaction of its own; False only when
        each write_all() of the group is one statement (and so atomic by itself) and every
        write of the group is a run_batched() of one and the same write_all."""
        self.max_group = max_group
        self.using = using
        self.atomic = atomic
        self._lock = threading.Lock()
        self._pending: list[_Write[Any]] = []
        self._busy = False
        # How many transactions and writes ran (the benchmark reports the group size).
        self.transactions = 0
        self.writes = 0

    def run(self, write: Callable[[], T]) -> T:
        """Run `write()` inside a transaction shared with other threads' writes; its result."""
        return self._run(_Write(write))

    def run_batched(self, write_all: Callable[[Sequence[Any]], Sequence[T]], argument: Any) -> T:
        """Run `write_all([..., argument, ...])` once for every argument of the group handed
        in with the same `write_all`, inside the shared transaction; `argument`'s result."""
        return self._run(_Write(None, write_all, argument))

    def _run(self, item: _Write[T]) -> T:
        with self._lock:
            self._pending.append(item)
            item.leads = not self._busy
            self._busy = True
        if not item.leads:
            item.done.wait()  # committed by a leader, or made the next leader
        if item.leads:
            self._lead()
        if item.error is not None:
            raise item.error
        return item.result

    def _lead(self) -> None:
        with self._lock:
            group = self._pending[: self.max_group]
            del self._pending[: self.max_group]
        try:
            for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
                try:
                    if self._in_autocommit(group):
                        _write_group(group)
                    else:
                        with transaction.atomic(using=self.using):
                            _write_group(group)
                    break
                except OperationalError as error:
                    if attempt == DEADLOCK_ATTEMPTS or not _rolled_back_to_break_a_cycle(error):
                        raise
                    time.sleep(DEADLOCK_PAUSE_SECONDS * attempt)
        except BaseException as error:
            for item in group:
                item.error, item.result = error, None
        finally:
            with self._lock:
                self.transactions += 1
                self.writes += len(group)
                successor = self._pending[0] if self._pending else None
                if successor is not None:
                    successor.leads = True
                else:
                    self._busy = False
            for item in group:
                item.leads = False
                item.done.set()
            if successor is not None:
                successor.done.set()

    def _in_autocommit(self, group: list[_Write[Any]]) -> bool:
        """The group is one statement (see __init__), run outside any caller's transaction."""
        return (
            len({item.batch for item in group}) == 1
            and group[0].batch is not None
            and transaction.get_autocommit(using=self.using)
            and not self.atomic()
        )


def _write_group(group: list[_Write[Any]]) -> None:
    batches: dict[Callable[[Sequence[Any]], Sequence[Any]], list[_Write[Any]]] = {}
    for item in group:
        if item.batch is not None:
            batches.setdefault(item.batch, []).append(item)
        elif item.write is not None:
            item.result = item.write()
    for write_all, items in batches.items():
        results = write_all([item.argument for item in items])
        for item, result in zip(items, results, strict=True):
            item.result = result
