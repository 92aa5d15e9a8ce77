"""Background work in tests (import it; not a plugin): run what is due in the test's own
thread and transaction, or a real worker (with its lanes) in a thread of its own."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.db import connections, transaction
from django.db.models import Model

from kizuna.testing.processes import wait_for
from kizuna.work import wakeup
from kizuna.work.lanes import Lane
from kizuna.work.models import WorkerProcess
from kizuna.work.workers import KizunaWorker


def run_worker() -> None:
    """Run everything due (mail, deliveries, ...), as `kizuna worker` does, until none is left."""
    from kizuna.work import leases

    while leases.run_due_work(worker_id="test"):
        pass


class RecordingWorker(KizunaWorker):
    """A KizunaWorker that keeps the labels its listener woke it for (`wakes`)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.wakes: list[str] = []

    def wake_lanes(self, label: str) -> None:
        self.wakes.append(label)
        super().wake_lanes(label)

    def lane(self, model: type[Model]) -> Lane:
        (found,) = [lane for lane in self.lanes if lane.registration.model is model]
        return found


class WorkerThread:
    """`with WorkerThread("w1", concurrency=2) as worker:` a KizunaWorker running in a thread,
    stopped as by SIGTERM (and joined) at the end of the block."""

    def __init__(self, worker_id: str, *, concurrency: int, interval: float = 0.1) -> None:
        self.worker = RecordingWorker(
            queue_names=["default"],
            interval=interval,
            batch=False,
            worker_id=worker_id,
            concurrency=concurrency,
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        finally:
            connections.close_all()

    def __enter__(self) -> RecordingWorker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.shutdown(signal.SIGTERM, None)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


# A worker's poll interval longer than any test: its lanes look again only when woken.
POLL_ONLY_WHEN_WOKEN = 3600.0


def sleeping_lane(worker: RecordingWorker, model: type[Model]) -> Lane:
    """Wait until the worker listens and its lane of `model` sleeps with no wake-up pending."""
    wait_for(lambda: worker.is_listening, timeout=60, message="the worker listens")
    lane = worker.lane(model)
    wait_for(lane.is_asleep, timeout=60, message="the lane sleeps after its first look")
    return lane


def barrier(worker: RecordingWorker) -> None:
    """Commit a notification for no lane and wait until the worker's listener got it:
    every notification committed before it has arrived too (PostgreSQL delivers them
    in commit order)."""
    label = WorkerProcess._meta.label
    seen = worker.wakes.count(label)
    with transaction.atomic():
        wakeup.notify(WorkerProcess)
    wait_for(
        lambda: worker.wakes.count(label) > seen,
        timeout=60,
        message="the barrier notification arrives",
    )


def queued_rows(lane: Lane) -> list[Any]:
    """The rows a lane's fill() claimed and queued for its threads (taken off its queue)."""
    rows = []
    while not lane._queue.empty():
        rows.append(lane._queue.get())
    return rows
