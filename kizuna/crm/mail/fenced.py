"""The fenced writes of a sending group as plain SQL: a lease renewed, a message marked sent.

A worker's sending threads hand these writes to one shared transaction (group_commit.py),
one statement for the whole group. Built through the ORM (a Q per claim, a savepoint, and
row by row again when another worker had taken one of the rows) they cost the worker more
CPU than handing the message to the SMTP server (bench/crm_mail_send.py). Here each is one
UPDATE ... RETURNING of the ids it changed, so the rows another worker took over are told
apart in the same statement: no savepoint, no second pass.

Fencing is the ORM version's, condition for condition (leases._still_ours): a row is
written only while it is still leased to the claim the row object came from (same holder,
same attempt).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections, router

from kizuna.crm.mail.models import OutgoingMessage
from kizuna.work.leases import WorkStatus


def _column(connection: Any, name: str) -> str:
    field: Any = OutgoingMessage._meta.get_field(name)
    return str(connection.ops.quote_name(field.column))


def _update_held(messages: Sequence[OutgoingMessage], values: dict[str, Any]) -> list[bool]:
    """UPDATE `values` of the messages still held by their claim; per message (in order),
    whether it was."""
    connection = connections[router.db_for_write(OutgoingMessage)]
    if not messages:
        return []
    fields: list[Any] = [OutgoingMessage._meta.get_field(name) for name in values]
    assignments = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in fields)
    params: list[Any] = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(fields, values.values(), strict=True)
    ]
    by_claim: dict[tuple[str, int], list[Any]] = {}
    for message in messages:
        by_claim.setdefault((message.leased_by, message.attempts), []).append(message.pk)
    pk, leased_by, attempts = (
        _column(connection, name) for name in ("id", "leased_by", "attempts")
    )
    claims = []
    for (holder, attempt), pks in by_claim.items():
        claims.append(
            f"({pk} IN ({', '.join(['%s'] * len(pks))}) AND {leased_by} = %s AND {attempts} = %s)"
        )
        params += [*pks, holder, attempt]
    params.append(WorkStatus.LEASED)
    table = connection.ops.quote_name(OutgoingMessage._meta.db_table)
    sql = (
        f"UPDATE {table} SET {assignments} WHERE ({' OR '.join(claims)}) "  # noqa: S608
        f"AND {_column(connection, 'status')} = %s RETURNING {pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        updated = {row[0] for row in cursor.fetchall()}
    held = [message.pk in updated for message in messages]
    for message, is_held in zip(messages, held, strict=True):
        if is_held:
            for name, value in values.items():
                setattr(message, name, value)
    return held


def renew_leases(messages: Sequence[OutgoingMessage], *, until: datetime) -> list[bool]:
    """Extend the leases of the messages still held; per message, whether it was."""
    return _update_held(messages, {"leased_until": until})


def mark_sent(messages: Sequence[OutgoingMessage], *, at: datetime) -> list[bool]:
    """Mark sent (done) the messages still held; per message, whether it was."""
    values: dict[str, Any] = {
        "status": WorkStatus.DONE,
        "finished_at": at,
        "leased_until": None,
        "last_error": "",
        "sent_at": at,
    }
    return _update_held(messages, values)
