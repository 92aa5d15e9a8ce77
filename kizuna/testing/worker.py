"""Background work in tests (import it; not a plugin): run what is due in the test's own
thread and transaction, or a real worker (with its lanes) in a thread of its own."""

from __future__ import annotations

import signal
import threading

from django.db import connections

from kizuna.work.workers import KizunaWorker


def run_worker() -> None:
    """Run everything due (mail, deliveries, ...), as `kizuna worker` does, until none is left."""
    from kizuna.work import leases

    while leases.run_due_work(worker_id="test"):
        pass


class WorkerThread:
    """`with WorkerThread("w1", concurrency=2) as worker:` a KizunaWorker running in a thread,
    stopped as by SIGTERM (and joined) at the end of the block."""

    def __init__(self, worker_id: str, *, concurrency: int, interval: float = 0.1) -> None:
        self.worker = KizunaWorker(
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

    def __enter__(self) -> KizunaWorker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.shutdown(signal.SIGTERM, None)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
