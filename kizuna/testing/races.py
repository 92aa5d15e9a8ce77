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
from collections.abc import Callable

import pytest
from django.db import connection, connections

__all__ = ["require_postgresql", "run_together"]


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
