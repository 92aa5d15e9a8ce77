"""Opt-in retries for django-tasks tasks, and recovery of tasks whose worker died.

django-tasks-db runs a task once: an exception marks it FAILED, and a worker killed
mid-task leaves it RUNNING forever. Here a task can opt in to retries:

    @retrying(max_attempts=8, base_seconds=30, max_seconds=3600)
    @task()
    def deliver_webhook(delivery_id: int) -> None: ...

When it raises, `kizuna worker` puts its result back to READY with run_after set
to now + exponential back-off with jitter, until max_attempts runs have failed.
The attempt number is len(worker_ids): django-tasks-db appends the worker id on
each claim. Tasks without @retrying fail once, as before.

Every `kizuna worker` beats a heartbeat (models.WorkerProcess). A RUNNING task
whose last worker has not beaten for KIZUNA_WORKER_LEASE_SECONDS was abandoned
by a dead worker: recover_abandoned_tasks() puts it back to READY if it retries
and has attempts left, and marks it FAILED with a WorkerDied reason otherwise.
Each change is a conditional UPDATE (still RUNNING, same worker_ids), so two
workers recovering at once, or a slow worker finishing late, never both win.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from traceback import format_exception
from typing import Any, TypeVar

from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import TaskResultStatus
from django_tasks.base import Task
from django_tasks.utils import get_module_path
from django_tasks_db.models import DBTaskResult

from kizuna.work.backoff import backoff_delay
from kizuna.work.models import WorkerProcess, heartbeat_cutoff

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WorkerDied(Exception):
    """Recorded on a task whose worker stopped beating while it ran the task."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float
    factor: float = 2.0
    jitter_ratio: float = 0.2

    def delay(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt number `attempt` (1-based)."""
        return timedelta(
            seconds=backoff_delay(
                attempt,
                base_seconds=self.base_seconds,
                max_seconds=self.max_seconds,
                factor=self.factor,
                jitter_ratio=self.jitter_ratio,
            )
        )

    def allows_another_attempt(self, attempts: int) -> bool:
        return attempts < self.max_attempts


_policies: dict[str, RetryPolicy] = {}


def retrying(
    *,
    max_attempts: int = 5,
    base_seconds: float = 30.0,
    max_seconds: float = 3600.0,
    factor: float = 2.0,
    jitter_ratio: float = 0.2,
) -> Callable[[T], T]:
    """Opt a task in to retries; put it above @task (or below it, on the function).

    max_attempts counts every run, the first one included.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if base_seconds < 0 or max_seconds < base_seconds:
        raise ValueError("need 0 <= base_seconds <= max_seconds")
    policy = RetryPolicy(max_attempts, base_seconds, max_seconds, factor, jitter_ratio)

    def decorate(target: T) -> T:
        if isinstance(target, Task):
            path = target.module_path
        elif callable(target):
            path = get_module_path(target)
        else:
            raise TypeError("@retrying decorates a django-tasks Task or a function")
        _policies[path] = policy
        return target

    return decorate


def policy_for(task_path: str) -> RetryPolicy | None:
    """The retry policy of the task at `task_path`, None when it does not retry."""
    if task_path not in _policies:
        # Importing the task's module runs its @retrying; a worker that has not run
        # this task yet (recovering another worker's) has not imported it.
        try:
            import_string(task_path)
        except ImportError:
            return None
    return _policies.get(task_path)


def _claimed_by(result: DBTaskResult) -> Q:
    # The row is still in the state we read it in: nobody finished, retried or
    # recovered it since, and no other worker claimed it again.
    return Q(pk=result.pk, status=TaskResultStatus.RUNNING, worker_ids=result.worker_ids)


def finish_successfully(result: DBTaskResult, return_value: Any) -> bool:
    """Record success; False if the task was taken away from this worker meanwhile."""
    # Fail here, before touching the database, when the value cannot be stored.
    json.dumps(return_value)
    now = timezone.now()
    updated = DBTaskResult.objects.filter(_claimed_by(result)).update(
        status=TaskResultStatus.SUCCESSFUL,
        finished_at=now,
        return_value=return_value,
        exception_class_path="",
        traceback="",
    )
    if updated:
        result.status = TaskResultStatus.SUCCESSFUL
        result.finished_at = now
        result.return_value = return_value
        result.exception_class_path = result.traceback = ""
    return bool(updated)


def finish_with_error(
    result: DBTaskResult,
    *,
    exception_class_path: str,
    traceback: str,
    now: datetime | None = None,
) -> TaskResultStatus | None:
    """Retry later if the task opted in and has attempts left, else mark it FAILED.

    Returns the new status, or None if the task was taken away from this worker.
    """
    now = now or timezone.now()
    attempts = len(result.worker_ids)
    policy = policy_for(result.task_path)
    values: dict[str, Any] = {
        "exception_class_path": exception_class_path,
        "traceback": traceback,
        "return_value": None,
    }
    if policy is not None and policy.allows_another_attempt(attempts):
        values.update(
            status=TaskResultStatus.READY,
            run_after=now + policy.delay(attempts),
            finished_at=None,
        )
    else:
        values.update(status=TaskResultStatus.FAILED, finished_at=now)
    if not DBTaskResult.objects.filter(_claimed_by(result)).update(**values):
        return None
    for name, value in values.items():
        setattr(result, name, value)
    status: TaskResultStatus = values["status"]
    return status


def finish_with_exception(result: DBTaskResult, error: BaseException) -> TaskResultStatus | None:
    return finish_with_error(
        result,
        exception_class_path=f"{type(error).__module__}.{type(error).__qualname__}",
        traceback="".join(format_exception(error)),
    )


@dataclass(frozen=True)
class Recovery:
    task_id: str
    task_path: str
    worker_id: str
    status: TaskResultStatus


def recover_abandoned_tasks(*, now: datetime | None = None) -> list[Recovery]:
    """Take back RUNNING tasks whose worker has no live heartbeat."""
    now = now or timezone.now()
    cutoff = heartbeat_cutoff(now)
    live = set(WorkerProcess.objects.alive(now=now).values_list("worker_id", flat=True))
    # started_at guards a task claimed a moment ago by a worker registered a moment
    # ago, and tasks of a worker that never registered (a plain db_worker).
    candidates = DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING, started_at__lt=cutoff
    ).only("id", "task_path", "worker_ids", "status", "started_at")
    recovered = []
    for result in candidates:
        worker_id = result.worker_ids[-1] if result.worker_ids else ""
        if worker_id in live:
            continue
        reason = (
            f"Worker {worker_id or '(unknown)'} stopped sending heartbeats while running "
            f"this task (attempt {len(result.worker_ids)}, started at "
            f"{result.started_at.isoformat() if result.started_at else 'unknown'}); "
            "it was most likely killed.\n"
        )
        status = finish_with_error(
            result,
            exception_class_path=f"{WorkerDied.__module__}.{WorkerDied.__qualname__}",
            traceback=reason,
            now=now,
        )
        if status is None:
            continue  # another worker recovered it, or its worker finished it just now
        logger.warning(
            "Recovered task %s (%s) abandoned by worker %s: now %s",
            result.pk,
            result.task_path,
            worker_id,
            status,
        )
        recovered.append(Recovery(str(result.pk), result.task_path, worker_id, status))
    return recovered
