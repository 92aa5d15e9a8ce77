"""Run background work in the test's own process and transaction (import it; not a plugin)."""

from __future__ import annotations


def run_worker() -> None:
    """Run everything due (mail, deliveries, ...), as `kizuna worker` does, until none is left."""
    from kizuna.work import leases

    while leases.run_due_work(worker_id="test"):
        pass
