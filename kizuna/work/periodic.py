"""Small recurring jobs the worker's main thread runs between its other work.

    periodic.register(probe_failing_endpoints, every_seconds=10)   # in AppConfig.ready()

A job runs in every worker process, so it must be cheap and safe to run at the
same time in several (an UPDATE guarded by its own filter, not a read-modify-write).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class Job:
    function: Callable[[], object]
    every_seconds: float
    last_run: float = field(default=0.0)


_registry: dict[str, Job] = {}


def register(function: Callable[[], object], *, every_seconds: float) -> None:
    _registry[f"{function.__module__}.{function.__qualname__}"] = Job(function, every_seconds)


def run_due() -> int:
    """Run the jobs whose interval has passed; how many ran. A failing job is logged."""
    ran = 0
    for name, job in _registry.items():
        now = time.monotonic()
        if now - job.last_run < job.every_seconds:
            continue
        job.last_run = now
        try:
            job.function()
        except Exception:
            logger.exception("Periodic job %s failed", name)
        ran += 1
    return ran
