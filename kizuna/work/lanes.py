"""Lanes: each kind of leased work runs on threads of its own inside `kizuna worker`.

A lane claims due rows of its kind only when it has a free thread for them, and
never more than `per_key_limit` rows with the same key (a delivery's endpoint) at
once: rows of a key that is at its limit are left in the table (or given back)
for later. So a receiver that hangs until the timeout holds at most its own few
threads, while other endpoints, accounts and the CRM's mail go on in their lanes.

Threads nobody else wants are lent: a key whose last runs were all fast (under
FAST_SECONDS) may go past its limit into the free threads, but never into the
last `per_key_limit` of them, which stay for the other keys. One fast endpoint (the
CRM's intake, which gets every response of an account) so drains its backlog with
most of the lane instead of a quarter; if it turns slow, what it borrowed is held
until the timeout at worst while the reserve serves the others, and it gets no
more until it is fast again. A lane claims only rows that can run: the claim query
skips keys at their limit, so another key's due row is claimed as soon as any
thread is free, and of the rows it locks it leases only those within their key's
share (a row claimed and given back would cost two writes and an attempt undone).

The rows a lane holds are renewed with the worker's heartbeat (renew_leases), so a
lease runs out only when its worker is gone. On PostgreSQL a lane's threads commit without
waiting for the disk (commit_without_waiting_for_the_disk). A lane sleeps until one of its rows
finishes, the worker is woken (a committed outbox row, see kizuna/work/wakeup.py),
or its poll interval passes (poll_seconds, set by the worker: short on SQLite,
long while PostgreSQL notifications arrive).

A lane that has only a few free threads while the others run (fewer than half) waits up to
GATHER_SECONDS for more of them to finish before it claims, so that a busy lane claims
several rows at a time instead of one claim, a transaction, for every row that finishes
(a third of the worker's CPU when one fast endpoint drained a backlog). A lane with half its
threads free claims at once: an idle lane's latency is not touched, and a lane whose other
threads wait on a hanging endpoint claims for the rest within GATHER_SECONDS.

A kind without keys may claim ahead (Registration.claim_ahead): the lane then holds up to
`threads + claim_ahead` rows, queued for its threads, and claims again only once half of
the rows ahead are taken, so that many rows share one claim (the CRM's mail: a claim for
every row or two cost more CPU than sending the row). Rows ahead are renewed like the
others and given back, unstarted, when the worker stops.

A kind with a batch handler (Registration.run_many, rows_per_run) runs its rows in batches:
a runner thread takes the next row from the queue and, without waiting, up to rows_per_run - 1
more that are queued already, and hands them to run_many together. Its `threads` rows at once
are then threads // rows_per_run runners of rows_per_run rows each (the CRM's mail: one
thread sends a batch over several SMTP connections and writes each of its steps in one
statement, instead of a thread and two group commits a message). Every row of a batch is
held, renewed and given back as a row alone is.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, connections
from django.utils import timezone

from kizuna.work import leases
from kizuna.work.leases import LeasedWork, Registration

logger = logging.getLogger(__name__)

ERROR_PAUSE_SECONDS = 5.0
# A key whose last FAST_RUNS rows each took less than this may borrow idle threads.
FAST_SECONDS = 0.5
FAST_RUNS = 4
# The longest a busy lane waits for more of its threads to free before it claims (see above).
GATHER_SECONDS = 0.05


_asynchronous_commit = threading.local()


def commit_without_waiting_for_the_disk(using: str) -> None:
    """On PostgreSQL, this thread's commits no longer wait for their WAL to reach the disk
    (synchronous_commit off, set once per database connection).

    A lane's claims, its handlers' "done" marks and attempts are small commits, and each
    waited 4-5 ms for the disk (0.4 ms without, on this machine): draining one endpoint, a
    claim and a group's marks, each behind a flush, were most of the time between one group
    of rows and the next. Every other transaction sees such a commit at once, so leases and
    their fences are unchanged; only a crash of the database server itself within a fraction
    of a second (wal_writer_delay) loses the last ones, and a lost claim or "done" mark leaves
    its row to run again, as the death of its worker does (handlers are safe to run twice;
    a webhook keeps its webhook-id). What the web writes (a response and its outbox rows) is
    not written here and still waits for the disk.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    connection.ensure_connection()
    done: dict[str, Any] = _asynchronous_commit.__dict__
    if done.get(using) is connection.connection:
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    # Inside a transaction (a test's) the setting goes with its rollback: made again next time.
    if not connection.in_atomic_block:
        done[using] = connection.connection


@dataclass(frozen=True)
class LaneReport:
    """What a lane did since the last report (logged once a minute)."""

    label: str
    threads: int
    runners: int
    rows_per_run: int
    batch_size: int
    per_key_limit: int | None
    in_hand: int
    ran: int
    lag_seconds: float


class Lane:
    """One kind of leased work: a dispatcher thread that claims, and `threads` that run."""

    def __init__(
        self,
        registration: Registration,
        *,
        worker_id: str,
        threads: int,
        poll_seconds: float,
        should_stop: Callable[[], bool],
    ) -> None:
        self.registration = registration
        self.label = registration.model._meta.label
        self.using = registration.model._default_manager.db
        self.worker_id = worker_id
        self.threads = max(1, threads)
        self.per_key_limit: int | None = None
        if registration.lane_key:
            # One key gets a quarter of the threads unless its kind says otherwise.
            limit = registration.per_key_limit or self.threads // 4
            self.per_key_limit = max(1, min(limit, self.threads))
        self.claim_ahead = 0 if registration.lane_key else registration.claim_ahead
        self.rows_per_run = 1
        if registration.run_many is not None:
            self.rows_per_run = max(1, min(registration.rows_per_run, self.threads))
        self.runners = max(1, self.threads // self.rows_per_run)
        self.poll_seconds = poll_seconds
        self.should_stop = should_stop
        self.wake = threading.Event()
        # Set while the dispatcher sleeps: with `wake` clear, nothing but a wake-up (or
        # the poll interval) makes it look at the table again (is_asleep()).
        self._sleeping = threading.Event()
        self._lock = threading.Lock()
        self._in_hand: dict[Any, LeasedWork] = {}
        self._per_key: Counter[Any] = Counter()
        self._recent_seconds: dict[Any, deque[float]] = {}
        self._queue: queue.SimpleQueue[LeasedWork | None] = queue.SimpleQueue()
        self._runners: list[threading.Thread] = []
        self._dispatcher: threading.Thread | None = None
        self._ran = 0
        self._lag = 0.0

    # Claiming -------------------------------------------------------------------------

    def _key(self, row: LeasedWork) -> Any:
        return getattr(row, self.registration.lane_key) if self.registration.lane_key else None

    def free_threads(self) -> int:
        with self._lock:
            return self.threads - len(self._in_hand)

    def _refills_at(self) -> int:
        """Claim again when fewer rows than this are in hand (all threads busy: none ahead)."""
        return self.threads + self.claim_ahead // 2

    def room(self) -> int:
        """How many rows to claim now: 0 until the rows in hand fall under the refill mark."""
        with self._lock:
            in_hand = len(self._in_hand)
        if in_hand >= self._refills_at():
            return 0
        return self.threads + self.claim_ahead - in_hand

    def _claims_at_once(self) -> int:
        """Free threads that are claimed for at once: half the lane (one in a lane of one),
        and the threads a lane with keys keeps for the other keys (a key alone never gets
        those: half the lane is then what it can be given)."""
        return min(self.threads, max(1, self.threads // 2) + (self.per_key_limit or 0))

    def _gather(self) -> None:
        """While fewer threads than _claims_at_once() are free, wait up to GATHER_SECONDS for
        more rows to finish (each wakes the dispatcher), so that one claim serves them all."""
        deadline = time.monotonic() + GATHER_SECONDS
        while 0 < self.room() < self._claims_at_once() and not self.should_stop():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.wake.clear()
            self.wake.wait(remaining)

    def is_fast(self, key: Any) -> bool:
        """Its last FAST_RUNS rows each ran in under FAST_SECONDS (call with the lock held)."""
        recent = self._recent_seconds.get(key)
        return (
            recent is not None
            and len(recent) == FAST_RUNS
            and all(seconds < FAST_SECONDS for seconds in recent)
        )

    def _closed_keys(self, free: int) -> list[Any]:
        """Keys at their limit that may not borrow now (call with the lock held)."""
        assert self.per_key_limit is not None
        lending = free > self.per_key_limit  # a thread beyond the others' reserve is free
        return [
            key
            for key, count in self._per_key.items()
            if count >= self.per_key_limit and not (lending and self.is_fast(key))
        ]

    def _choose(self, rows: list[LeasedWork]) -> list[LeasedWork]:
        """The rows, among these due ones in their order, that can run now: within their
        key's limit first, then a fast key's borrowing beyond it, up to the free threads.
        """
        assert self.per_key_limit is not None
        limit = self.per_key_limit
        with self._lock:
            free = self.threads - len(self._in_hand)
            taken = Counter(self._per_key)
            fast = {self._key(row) for row in rows if self.is_fast(self._key(row))}
        chosen: list[LeasedWork] = []
        for row in rows:
            key = self._key(row)
            if len(chosen) < free and taken[key] < limit:
                chosen.append(row)
                taken[key] += 1
        for row in rows:
            key = self._key(row)
            # Borrowing leaves the last `limit` free threads to the other keys.
            if key in fast and row not in chosen and free - len(chosen) - 1 >= limit:
                chosen.append(row)
        return sorted(chosen, key=rows.index)

    def fill(self) -> int:
        """Claim the due rows that can run now, up to the free threads (and the rows ahead, for
        a lane that claims ahead); how many were started.

        Rows of a key at its limit are not claimed (and so never given back): the claim
        leaves out the keys that may not borrow, and among the rows it looks at leases
        only those within their key's share (_choose).
        """
        free = self.room()  # the free threads, unless the lane claims ahead
        if free <= 0:
            return 0
        rows_of_kind = self.registration.model._default_manager.all()
        if (
            connections[rows_of_kind.db].vendor == "sqlite"
            and not leases.due(rows_of_kind).exists()
        ):
            # A read takes no write lock: polling often must not queue the web's writers.
            return 0
        limit = min(free, self.registration.batch_size)
        model = self.registration.model
        if self.per_key_limit is None:
            return self._start(leases.claim_due(model, worker_id=self.worker_id, limit=limit))
        assert self.registration.lane_key is not None
        with self._lock:
            closed = self._closed_keys(free)
        return self._start(
            leases.claim_due(
                model,
                worker_id=self.worker_id,
                limit=limit,
                choose=self._choose,
                skip=(self.registration.lane_key, closed),
            )
        )

    def _start(self, rows: list[LeasedWork]) -> int:
        # Only this dispatcher adds rows in hand: what _choose let run still can (rows that
        # finished meanwhile only left more room).
        now = timezone.now()
        if rows and self.registration.prepare is not None:
            try:
                self.registration.prepare(rows)
            except Exception:
                # The rows are leased already: they must run (or wait for their lease). The
                # handler does without what prepare() would have read.
                logger.exception("%s: cannot prepare a claim of %d", self.label, len(rows))
        for row in rows:
            with self._lock:
                self._in_hand[row.pk] = row
                self._per_key[self._key(row)] += 1
                self._lag = max(self._lag, (now - row.next_attempt_at).total_seconds())
            self._queue.put(row)
        return len(rows)

    # Running --------------------------------------------------------------------------

    def _next_rows(self) -> tuple[list[LeasedWork], bool]:
        """The next row of the queue (waiting for it) and up to rows_per_run - 1 more that are
        queued already; and whether the lane is stopping (a None was taken)."""
        row = self._queue.get()
        if row is None:
            return [], True
        rows = [row]
        while len(rows) < self.rows_per_run:
            try:
                row = self._queue.get_nowait()
            except queue.Empty:
                break
            if row is None:
                return rows, True
            rows.append(row)
        return rows, False

    def _run_rows(self) -> None:
        try:
            stopping = False
            while not stopping:
                rows, stopping = self._next_rows()
                if rows:
                    self._run(rows)
        finally:
            connections.close_all()

    def _run(self, rows: list[LeasedWork]) -> None:
        close_old_connections()
        if self.claim_ahead and self.should_stop():
            for row in rows:
                self._give_back_unstarted(row)
            return
        began = time.monotonic()
        try:
            commit_without_waiting_for_the_disk(self.using)
            if self.registration.run_many is None:
                leases.run_row(self.registration, rows[0])
            else:
                leases.run_rows(self.registration, rows)
        except Exception:
            # run_row(s) records the handler's failure; this is the database failing while
            # it did (a restart, a cut connection). This worker is alive, so the lease would
            # hold the rows for long: give them back now, on a new connection (the handler
            # may have done its work: handlers are safe to run twice). If that fails too,
            # the lease brings them back.
            logger.exception(
                "%s %s could not be recorded", self.label, ", ".join(str(row.pk) for row in rows)
            )
            self._give_back(rows)
        finally:
            seconds = time.monotonic() - began
            with self._lock:
                for row in rows:
                    key = self._forget(row)
                    if self.per_key_limit is not None:
                        recent = self._recent_seconds.setdefault(key, deque(maxlen=FAST_RUNS))
                        recent.append(seconds)
                self._ran += len(rows)
                refill = len(self._in_hand) < self._refills_at()
            if refill:
                self.wake.set()

    def _give_back_unstarted(self, row: LeasedWork) -> None:
        """A row claimed ahead when the worker stops: back to the table for any worker."""
        try:
            leases.release(row)
        except Exception:
            logger.warning("%s %s is left to its lease", self.label, row.pk, exc_info=True)
        with self._lock:
            self._forget(row)

    def _forget(self, row: LeasedWork) -> Any:
        """Drop `row` from what this lane holds (under the lock); its key."""
        self._in_hand.pop(row.pk, None)
        key = self._key(row)
        self._per_key[key] -= 1
        if self._per_key[key] <= 0:
            del self._per_key[key]
        return key

    def _give_back(self, rows: list[LeasedWork]) -> None:
        connections.close_all()
        for row in rows:
            try:
                leases.release(row)
            except Exception:
                logger.warning("%s %s is left to its lease", self.label, row.pk, exc_info=True)
                connections.close_all()

    def _dispatch(self) -> None:
        try:
            while not self.should_stop():
                self.wake.clear()
                close_old_connections()
                if not self.claim_ahead:
                    self._gather()
                try:
                    commit_without_waiting_for_the_disk(self.using)
                    started = self.fill()
                except Exception:
                    # The database went away (restart, failover) or a kind's table is
                    # missing: keep the lane and try again shortly.
                    logger.exception("Worker %s: cannot claim %s", self.worker_id, self.label)
                    connections.close_all()
                    self.wake.wait(ERROR_PAUSE_SECONDS)
                    continue
                if started and self.room() > 0:
                    continue  # more may be due
                self._sleeping.set()
                self.wake.wait(self.poll_seconds)
                self._sleeping.clear()
        finally:
            connections.close_all()

    def is_asleep(self) -> bool:
        """The dispatcher waits for a wake-up or its poll interval, and none is pending."""
        return self._sleeping.is_set() and not self.wake.is_set()

    def start(self) -> None:
        for number in range(self.runners):
            runner = threading.Thread(
                target=self._run_rows, name=f"{self.label}-{number}", daemon=True
            )
            runner.start()
            self._runners.append(runner)
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"{self.label}-claims", daemon=True
        )
        self._dispatcher.start()

    def stop(self) -> None:
        """Claim nothing more, let the rows in hand finish, then end the threads."""
        self.wake.set()
        if self._dispatcher is not None:
            self._dispatcher.join()
        for _runner in self._runners:
            self._queue.put(None)

    def join(self) -> None:
        for runner in self._runners:
            runner.join()

    # Leases and reports ---------------------------------------------------------------

    def renew_leases(self) -> None:
        with self._lock:
            pks = list(self._in_hand)
        leases.renew(self.registration.model, pks=pks, worker_id=self.worker_id)

    def report(self) -> LaneReport:
        with self._lock:
            report = LaneReport(
                label=self.label,
                threads=self.threads,
                runners=self.runners,
                rows_per_run=self.rows_per_run,
                batch_size=self.registration.batch_size,
                per_key_limit=self.per_key_limit,
                in_hand=len(self._in_hand),
                ran=self._ran,
                lag_seconds=self._lag,
            )
            self._ran, self._lag = 0, 0.0
        return report


def lanes_for(
    registrations: list[Registration],
    *,
    worker_id: str,
    concurrency: int,
    poll_seconds: float,
    should_stop: Callable[[], bool],
) -> list[Lane]:
    """One lane per kind: `concurrency` threads, or fewer if the kind asks for fewer."""
    return [
        Lane(
            registration,
            worker_id=worker_id,
            threads=min(registration.concurrency or concurrency, concurrency),
            poll_seconds=poll_seconds,
            should_stop=should_stop,
        )
        for registration in registrations
    ]


def log_reports(lanes: list[Lane], *, worker_id: str, elapsed: float) -> None:
    for lane in lanes:
        report = lane.report()
        logger.info(
            "Worker %s lane %s: %d rows at once (%d threads of %d), claims of %d, "
            "at most %s per key, %d in hand, %d run in the last %d s, lag %.1f s",
            worker_id,
            report.label,
            report.threads,
            report.runners,
            report.rows_per_run,
            report.batch_size,
            report.per_key_limit if report.per_key_limit is not None else "-",
            report.in_hand,
            report.ran,
            round(elapsed),
            report.lag_seconds,
        )


class Reporter:
    """Calls log_reports once every `every` seconds when ticked."""

    def __init__(self, lanes: list[Lane], *, worker_id: str, every: float = 60.0) -> None:
        self.lanes, self.worker_id, self.every = lanes, worker_id, every
        self._last = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            log_reports(self.lanes, worker_id=self.worker_id, elapsed=now - self._last)
            self._last = now
