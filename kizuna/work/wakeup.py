"""Waking workers when new work is committed (PostgreSQL LISTEN/NOTIFY).

A service that writes leased work (an outbox row) calls notify(Model) in the same
transaction. PostgreSQL delivers the notification only when that transaction
commits, and never if it rolls back, so a worker wakes exactly when the row
becomes visible to it. Each worker holds one extra connection that LISTENs
(Listener) and wakes the lane of that kind at once; while it listens, idle lanes
poll only every LISTENING_POLL_SECONDS, for retries falling due and leases running
out. SQLite has no notifications: there the lanes poll every SQLITE_POLL_SECONDS,
with a read that takes no write lock (kizuna/work/lanes.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, models

logger = logging.getLogger(__name__)

CHANNEL = "kizuna_work"
# While a worker listens, its idle lanes look for due retries this often.
LISTENING_POLL_SECONDS = 5.0
SQLITE_POLL_SECONDS = 0.25
RECONNECT_SECONDS = 5.0


def is_available(using: str = DEFAULT_DB_ALIAS) -> bool:
    return connections[using].vendor == "postgresql"


def notify(model: type[models.Model], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Wake the workers for `model` when the current transaction commits (PostgreSQL)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, model._meta.label])


class Listener(threading.Thread):
    """LISTENs on its own connection and calls on_wake(label) for every notification.

    on_state(True) when it listens, on_state(False) when the connection was lost (the
    lanes go back to polling often); it reconnects every RECONNECT_SECONDS meanwhile.
    """

    def __init__(
        self,
        *,
        on_wake: Callable[[str], None],
        on_state: Callable[[bool], None],
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        super().__init__(name="work-listener", daemon=True)
        self.on_wake = on_wake
        self.on_state = on_state
        self.using = using
        self._stopped = threading.Event()
        self._connection: psycopg.Connection[Any] | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        params = dict(connections[self.using].get_connection_params())
        for django_only in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(django_only, None)
        connection = psycopg.connect(**params, autocommit=True)
        connection.execute(f"LISTEN {CHANNEL}")
        return connection

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._connection = self._connect()
                # Whatever was committed while nobody listened; then say we listen, so
                # that once on_state(True) returned no wake-up from connecting is left.
                self.on_wake("")
                self.on_state(True)
                while not self._stopped.is_set():
                    for notification in self._connection.notifies(timeout=0.5):
                        self.on_wake(notification.payload)
            except psycopg.Error:
                if self._stopped.is_set():
                    break
                logger.warning(
                    "Lost the connection that listens for new work; polling until it is back",
                    exc_info=True,
                )
                self.on_state(False)
                self._stopped.wait(RECONNECT_SECONDS)
            finally:
                if self._connection is not None:
                    with contextlib.suppress(psycopg.Error):
                        self._connection.close()
                    self._connection = None

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=2)
