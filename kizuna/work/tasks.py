"""Tasks of the work app."""

from __future__ import annotations

from django.db import transaction
from django_tasks import TaskContext, task

from kizuna.work.retry import retrying
from kizuna.work.services import record_probe_effect


@retrying(max_attempts=5, base_seconds=0.5, max_seconds=5)
@task(takes_context=True)
def probe(context: TaskContext, key: str, hold_seconds: float = 0.0) -> bool:
    """Leave a ProbeEffect for `key`; safe to run twice (the second run records nothing)."""
    worker_id = context.task_result.worker_ids[-1] if context.task_result.worker_ids else ""
    with transaction.atomic():
        return record_probe_effect(key=key, worker_id=worker_id, hold_seconds=hold_seconds)
