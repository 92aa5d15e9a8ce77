"""Tasks the work tests enqueue (module-level, so the database backend accepts them)."""

from __future__ import annotations

import os
import signal
import time

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


def _take_over(context: TaskContext) -> None:
    """Another worker took the task back meanwhile (as after a lost heartbeat)."""
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(pk=context.task_result.id).update(
        worker_ids=[*context.task_result.worker_ids, "second"]
    )


@task(takes_context=True)
def is_taken_over_then_succeeds(context: TaskContext) -> str:
    _take_over(context)
    return "too late"


@task(takes_context=True)
def is_taken_over_then_fails(context: TaskContext) -> None:
    _take_over(context)
    raise Boom("too late")


@task(takes_context=True)
def describes_its_call(context: TaskContext, first: int, second: int = 0) -> str:
    return f"attempt {context.attempt}: {first}, {second}"


def _hide_table(table: str) -> None:
    """The table goes away under the worker (a restore in progress, say); the test puts it back."""
    from django.db import OperationalError, connection

    # On SQLite the worker's lanes may be reading the table at that instant: try again.
    for _attempt in range(100):
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
            return
        except OperationalError as error:
            if "locked" not in str(error):
                raise
            time.sleep(0.05)
    raise RuntimeError(f"{table} stayed locked")


@task()
def hides_the_task_table_then_fails(table: str) -> None:
    _hide_table(table)
    raise Boom("and its failure cannot be recorded")


@task()
def hides_the_worker_table_then_stops_its_worker(table: str) -> str:
    os.kill(os.getpid(), signal.SIGTERM)  # first: the worker stops even if this task fails
    _hide_table(table)
    return "stopped"
