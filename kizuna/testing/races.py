"""Races on a real database: start actions at the same instant, each in its own connection.

    from kizuna.testing.races import require_postgresql, run_together

    def test_two_submits_at_once_store_one(...):
        require_postgresql("needs row locks")
        errors = run_together(submit, submit)

Mark such tests `@pytest.mark.postgres` and `@pytest.mark.django_db(transaction=True)`:
the threads must see each other's committed rows, which the per-test transaction of
plain `django_db` would hide. SQLite serializes writers, so a race there proves nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection, connections, models, transaction

__all__ = ["require_postgresql", "row_locked_elsewhere", "run_together"]


def require_postgresql(reason: str = "needs PostgreSQL row locks") -> None:
    """Skip the calling test unless the default database is PostgreSQL."""
    if connection.vendor != "postgresql":
        pytest.skip(reason)


def run_together(*actions: Callable[[], object]) -> list[BaseException]:
    """Run each action in its own thread, released together; the errors they raised.

    Every thread closes its database connections when done, so the test database
    can be dropped afterwards.
    """
    barrier = threading.Barrier(len(actions))
    errors: list[BaseException] = []

    def run(action: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            action()
        except BaseException as error:  # handed back to the test, which asserts on it
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


@contextmanager
def row_locked_elsewhere(model: type[models.Model], **lookup: Any) -> Iterator[None]:
    """Inside the block another connection holds the row of `model` found by `lookup`
    (SELECT ... FOR UPDATE in an open transaction), as a write in progress would; this
    connection waits at most 5 s for a lock there, so code that waits fails instead of
    hanging the test."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                model._default_manager.select_for_update().get(**lookup)
                locked.set()
                release.wait(timeout=60)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(timeout=60), "the other connection never locked the row"
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")
        yield
    finally:
        release.set()
        holder.join()
