"""The PostgreSQL backend's health check: a closed connection is found without a query."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's backend"),
]


@pytest.fixture
def kept() -> Iterator[BaseDatabaseWrapper]:
    """A connection of its own, as a server thread keeps one between requests."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def test_11_a_healthy_idle_connection_is_usable_without_a_query(
    kept: BaseDatabaseWrapper,
) -> None:
    with kept.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]

    assert kept.is_usable()
    with connection.cursor() as cursor:
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        # The last statement the server saw from it is still ours, not a `SELECT 1`.
        assert cursor.fetchone()[0] == "SELECT pg_backend_pid()"


def test_11_a_connection_the_server_closed_is_not_usable(kept: BaseDatabaseWrapper) -> None:
    with kept.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 10
    while kept.is_usable() and time.monotonic() < deadline:
        time.sleep(0.05)

    assert not kept.is_usable()


def test_11_a_request_after_the_server_closed_its_connection_is_answered(
    kept: BaseDatabaseWrapper,
) -> None:
    """What Django does with the health check at a request's start: close the dead
    connection and open another, so the request's queries run."""
    with kept.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.5)

    kept.close_if_unusable_or_obsolete()  # request_started
    with kept.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1
