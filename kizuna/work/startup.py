"""Checks `kizuna serve` and `kizuna worker` make before starting anything.

Each failure is one line (a CommandError) saying what to do, instead of children
that start, fail and get restarted in a loop.
"""

from __future__ import annotations

import errno
import socket

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.utils import DatabaseError
from django.utils.translation import gettext as _


def check_database() -> None:
    """The database answers and every migration is applied."""
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandError(
            _("Cannot use the database (check DATABASE_URL): %(reason)s") % {"reason": reason}
        ) from None
    if unapplied:
        raise CommandError(
            _("The database is not up to date: run `kizuna migrate` first (%(count)d to apply).")
            % {"count": len(unapplied)}
        )


def check_port_free(bind: str) -> None:
    """Nothing else listens on HOST:PORT (gunicorn would fail after we said we run)."""
    host, _separator, port = bind.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CommandError(
                    _("%(bind)s is already in use: stop what listens there or set KIZUNA_BIND.")
                    % {"bind": bind}
                ) from None
            reason = {"bind": bind, "reason": error.strerror}
            raise CommandError(_("Cannot listen on %(bind)s: %(reason)s") % reason) from None
