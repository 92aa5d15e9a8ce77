"""Tasks the work tests enqueue (module-level, so the database backend accepts them)."""

from __future__ import annotations

import os
import signal

from django_tasks import TaskContext, task

from kizuna.work.retry import retrying


class Boom(Exception):
    pass


@retrying(max_attempts=3, base_seconds=10, max_seconds=60)
@task(takes_context=True)
def fails_until_third_attempt(context: TaskContext) -> str:
    if context.attempt < 3:
        raise Boom(f"attempt {context.attempt}")
    return "ok"


@retrying(max_attempts=2, base_seconds=1, max_seconds=1)
@task()
def always_fails_with_retries() -> None:
    raise Boom("always")


@task()
def always_fails() -> None:
    raise Boom("once")


@task()
def succeeds(value: int) -> int:
    return value * 2


@task()
def returns_something_unstorable() -> object:
    return object()


@task()
def asks_its_worker_to_stop() -> str:
    os.kill(os.getpid(), signal.SIGTERM)
    return "finished anyway"
