"""Django's PostgreSQL backend, its connection health check made without a query.

With CONN_HEALTH_CHECKS Django checks a kept connection before the first query of every
request with `SELECT 1`: a round trip and a statement for the server on every public survey
page (issue 11). A connection the server has closed (a restart, a terminated backend, an
idle timeout, a fail-over) is one whose socket has something to read, its end or the
server's farewell, while an idle healthy connection outside a transaction has nothing to
read: one poll() of the socket tells them apart, without waiting and without a round trip.
A connection found unusable is closed and opened again, as Django does after a failed
`SELECT 1`.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != TransactionStatus.IDLE:
            # Within a transaction (or a failed one) only a query can tell.
            return bool(super().is_usable())
        try:
            poller = select.poll()
            poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False
