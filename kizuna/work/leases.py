"""Rows as durable work: status, attempts, next attempt time and a lease.

The critical paths (outgoing mail, webhook deliveries) keep each unit of work as a
row of a model that inherits LeasedWork. A worker claims due rows with
SELECT ... FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite serializes writers anyway),
sets a lease, does the work, then marks the row done or schedules a retry with
exponential back-off and jitter. A row whose worker died keeps status "leased"
until its lease expires, or until its worker misses its heartbeats for
KIZUNA_WORKER_LEASE_SECONDS (whichever comes first); then any worker may claim it
again. A live worker renews the leases of the rows in its hands with its heartbeat
(renew()), so a lease runs out only when its worker is gone or stuck. Handlers must
be safe to run twice for the same row; only the worker holding the current lease
can finish it.

    class OutgoingMessage(LeasedWork): ...

    register(OutgoingMessage, send_outgoing_message)   # in AppConfig.ready()

The worker process (`kizuna worker`) runs each registered kind in a lane of its own
(kizuna/work/lanes.py): threads, and a cap per key (the endpoint of a delivery) so
one slow receiver cannot hold up the others. `kizuna worker --batch` and the tests
call run_due_work(), one batch of every kind in this thread.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from django.db import DatabaseError, connections, models, transaction
from django.db.models import F, Func, Q
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.work.backoff import backoff_delay

logger = logging.getLogger(__name__)


class WorkStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    LEASED = "leased", _("In progress")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class LeasedWork(models.Model):
    """Abstract: one unit of durable work claimed by a worker under a lease."""

    status = models.CharField(
        _("status"), max_length=16, choices=WorkStatus.choices, default=WorkStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    max_attempts = models.PositiveIntegerField(_("maximum attempts"), default=20)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    leased_until = models.DateTimeField(_("leased until"), null=True, blank=True)
    leased_by = models.CharField(_("leased by"), max_length=100, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    # Back-off: base * factor ** (attempt - 1), capped, with +-jitter_ratio jitter.
    retry_base_seconds: ClassVar[float] = 30.0
    retry_factor: ClassVar[float] = 2.0
    retry_max_seconds: ClassVar[float] = 6 * 3600.0
    retry_jitter_ratio: ClassVar[float] = 0.2
    lease_seconds: ClassVar[int] = 300

    class Meta:
        abstract = True

    def retry_delay(self, attempt: int) -> timedelta:
        return timedelta(
            seconds=backoff_delay(
                attempt,
                base_seconds=self.retry_base_seconds,
                max_seconds=self.retry_max_seconds,
                factor=self.retry_factor,
                jitter_ratio=self.retry_jitter_ratio,
            )
        )


W = TypeVar("W", bound=LeasedWork)

ABANDONED_ERROR = (
    "The worker running the last allowed attempt stopped (lease expired or heartbeat lost)."
)


def due(queryset: models.QuerySet[W]) -> models.QuerySet[W]:
    """Rows a worker may claim now: pending and due, or leased by a worker that is gone.

    Gone: the lease expired, or the worker holding it stopped beating its heartbeat.
    """
    from kizuna.work.models import heartbeat_cutoff  # models.py imports this module

    now = timezone.now()
    return queryset.filter(_is_due(now=now, cutoff=heartbeat_cutoff(now)))


def _is_due(*, now: datetime, cutoff: datetime) -> Q:
    """due()'s condition at `now`, for workers whose last heartbeat before `cutoff` is gone."""
    return _is_pending_due(now) | _is_left_by_its_worker(now=now, cutoff=cutoff)


def _is_pending_due(now: datetime) -> Q:
    return Q(status=WorkStatus.PENDING, next_attempt_at__lte=now)


def _is_left_by_its_worker(*, now: datetime, cutoff: datetime) -> Q:
    """Leased rows whose lease ran out or whose worker stopped beating its heartbeat."""
    from kizuna.work.models import WorkerProcess

    dead_workers = WorkerProcess.objects.filter(heartbeat_at__lt=cutoff).values("worker_id")
    return Q(status=WorkStatus.LEASED) & (Q(leased_until__lt=now) | Q(leased_by__in=dead_workers))


# The SELECT of claim_due() is compiled once per thread and shape with these placeholders in
# place of the values of each claim (no row has these times, no key is negative).
_NOW = datetime(1970, 1, 2, 3, 4, 5, 600_001, tzinfo=UTC)
_CUTOFF = datetime(1970, 1, 2, 3, 4, 5, 600_002, tzinfo=UTC)
_SKIPPED = -7_777_000_001
_compiled = threading.local()

# How often a claim whose pending rows fill its limit also looks for rows left by their worker.
# Such rows are claimable only once their worker's heartbeat is KIZUNA_WORKER_LEASE_SECONDS old
# (or their lease ran out): looking once a second adds at most that much to their rescue.
LEFT_ROWS_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class _DueSelect:
    """due() of a kind, locked, in due order, up to a limit, without some keys: its SQL with
    the places of now, the cutoff and the skipped keys among its parameters."""

    sql: str
    params: list[Any]
    now_places: list[int]
    cutoff_places: list[int]
    # (place among the parameters, which skipped key goes there)
    skipped_places: list[tuple[int, int]]
    compiler: Any


def _due_select(
    model: type[LeasedWork], using: str, limit: int, key: str, skipped: int, always_left: bool
) -> _DueSelect:
    """The claim's SELECT: the first `limit` pending rows that are due, and the first `limit`
    leased rows left by their worker, each locked (SKIP LOCKED) in due order, then the first
    `limit` of both in that order. Unless `always_left`, the second part runs only when the
    pending rows found are fewer than `limit` (a one-time filter: its index is not read at all).

    Two parts, because one condition with an OR of both could use no index for its order:
    PostgreSQL then read and sorted every due row to lock the first few (4,000 pending
    deliveries: 8 ms a claim, most of the database's CPU of a drain). Each part reads the
    (status, next_attempt_at, id) index in order and stops at `limit` rows: that index, with
    the id, is the ORDER BY itself (with (status, next_attempt_at), rows queued together share
    one time, and PostgreSQL sorted every pending row of a bulk send to lock the first 32).
    PostgreSQL still chose to read every due row through a bitmap of that index and sort them
    when its statistics were of before the bulk send (2 pending rows estimated, 4,000 there):
    _select_due() turns sorts off for the claim (but for the last one, of at most 2 x `limit`
    rows, which no plan avoids), so that its plan cannot depend on the statistics.

    The second part reads every index entry of a leased row version, live or not (each lease
    and renewal leaves one until VACUUM: 7,000 in a bulk send), to find usually none: a claim
    whose pending rows fill its limit skips it, but for once every LEFT_ROWS_EVERY_SECONDS
    (_select_due()).
    """
    shapes: dict[tuple[Any, ...], _DueSelect] = _compiled.__dict__.setdefault("shapes", {})
    shape = (model, using, limit, key, skipped, always_left)
    found = shapes.get(shape)
    if found is not None:
        return found
    connection = connections[using]
    placeholders = [_SKIPPED - number for number in range(skipped)]
    rows = model._default_manager.db_manager(using).all()
    if skipped:
        rows = rows.exclude(**{f"{key}__in": placeholders})
    pending = rows.filter(_is_pending_due(_NOW))
    left = rows.filter(_is_left_by_its_worker(now=_NOW, cutoff=_CUTOFF))
    if not always_left:
        # Constant text around an int; the ORM has no expression for a count of a CTE.
        room = f"(SELECT COUNT(*) FROM due_pending) < {int(limit)}"  # noqa: S608
        left = left.extra(where=[room])  # noqa: S610
    parts = [
        part.select_for_update(skip_locked=True)
        .order_by("next_attempt_at", "pk")[:limit]
        .query.get_compiler(using=using)
        for part in (pending, left)
    ]
    (pending_sql, pending_params), (left_sql, left_params) = (part.as_sql() for part in parts)
    meta = model._meta
    order = ", ".join(
        connection.ops.quote_name(field.column)
        for field in (meta.get_field("next_attempt_at"), meta.pk)
    )
    sql = (
        f"WITH due_pending AS ({pending_sql}), due_left AS ({left_sql}) "  # noqa: S608
        "SELECT * FROM due_pending UNION ALL SELECT * FROM due_left "
        f"ORDER BY {order} LIMIT {int(limit)}"
    )
    params = [*pending_params, *left_params]
    now, cutoff = (connection.ops.adapt_datetimefield_value(value) for value in (_NOW, _CUTOFF))
    found = _DueSelect(
        sql=sql,
        params=params,
        now_places=[n for n, param in enumerate(params) if param == now],
        cutoff_places=[n for n, param in enumerate(params) if param == cutoff],
        # A key field of text compares with the placeholder as text.
        skipped_places=[
            (n, number)
            for n, param in enumerate(params)
            for number, placeholder in enumerate(placeholders)
            if param in (placeholder, str(placeholder))
        ],
        compiler=parts[0],
    )
    if len(shapes) >= 256:
        shapes.clear()
    shapes[shape] = found
    return found


def _select_due(
    model: type[W], *, using: str, limit: int, now: datetime, skip: tuple[str, Collection[Any]]
) -> list[W]:
    """due(), locked (SKIP LOCKED), first due first, up to `limit`, without the rows whose
    field skip[0] is among skip[1]: the query of claim() run from its SQL compiled once.

    Rows left by their worker are looked for when the pending rows do not fill `limit`, and
    otherwise once every LEFT_ROWS_EVERY_SECONDS in this thread (a lane's claims are all made
    in its dispatcher's thread): under a backlog they wait that much longer at most.
    """
    from kizuna.work.models import heartbeat_cutoff

    looked: dict[tuple[Any, str], float] = _compiled.__dict__.setdefault("left_looked_at", {})
    always_left = time.monotonic() - looked.get((model, using), -math.inf) >= (
        LEFT_ROWS_EVERY_SECONDS
    )
    key, skipped_values = skip[0], list(dict.fromkeys(skip[1]))
    select = _due_select(model, using, limit, key, len(skipped_values) if key else 0, always_left)
    connection = connections[using]
    params = list(select.params)
    for place in select.now_places:
        params[place] = connection.ops.adapt_datetimefield_value(now)
    cutoff = connection.ops.adapt_datetimefield_value(heartbeat_cutoff(now))
    for place in select.cutoff_places:
        params[place] = cutoff
    for place, number in select.skipped_places:
        params[place] = skipped_values[number]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # For this claim's transaction: read the due index in order, never all due rows
            # and a sort (see _due_select()). Without JIT: the last sort, which no plan
            # avoids, then costs so much that PostgreSQL compiled each claim (1.4 s).
            cursor.execute(
                "SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true)"
            )
        cursor.execute(select.sql, params)
        rows = cursor.fetchall()
    found: list[W] = []
    if rows:
        compiler = select.compiler
        fields = compiler.klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        names = [column[0].target.attname for column in compiler.select[start:end]]
        found = [
            model.from_db(using, names, converted[start:end])
            for converted in compiler.results_iter(results=[rows])
        ]
    if always_left or sum(row.status == WorkStatus.PENDING for row in found) < limit:
        looked[(model, using)] = time.monotonic()  # the second part ran
    return found


def look_for_left_rows_at_next_claims() -> None:
    """This thread's next claim of each kind looks for rows left by their worker, whatever
    the pending rows (a test's rows are not those an earlier test's claim looked at)."""
    _compiled.__dict__.pop("left_looked_at", None)


def _locked_due(queryset: models.QuerySet[W], *, limit: int, now: datetime) -> list[W]:
    """due() of `queryset`, locked (SKIP LOCKED), first due first, up to `limit`: in two
    queries, as _due_select() says why (each reads the index in order)."""
    from kizuna.work.models import heartbeat_cutoff

    parts = [
        list(
            queryset.filter(condition)
            .select_for_update(skip_locked=True)
            .order_by("next_attempt_at", "pk")[:limit]
        )
        for condition in (
            _is_pending_due(now),
            _is_left_by_its_worker(now=now, cutoff=heartbeat_cutoff(now)),
        )
    ]
    return sorted([*parts[0], *parts[1]], key=lambda row: (row.next_attempt_at, row.pk))[:limit]


def _runnable(
    queryset: models.QuerySet[W],
    *,
    limit: int,
    now: datetime,
    choose: Callable[[list[W]], list[W]] | None = None,
    select: Callable[[], list[W]] | None = None,
) -> list[W]:
    """Lock up to `limit` due rows to run, failing those abandoned on their last attempt;
    `choose` keeps those to run among the rest (the others are left as they are).
    `select()`: the due rows locked, when the caller has a faster query of them.

    Selects again while a batch held nothing but abandoned rows, so that a worker
    does not go to sleep while other rows are due.
    """
    while True:
        selected = select() if select is not None else _locked_due(queryset, limit=limit, now=now)
        # A worker died during the last allowed attempt: give up instead of running
        # the row once more than max_attempts.
        exhausted = [
            row
            for row in selected
            if row.status == WorkStatus.LEASED and row.attempts >= row.max_attempts
        ]
        if exhausted:
            queryset.model._default_manager.using(queryset.db).filter(
                pk__in=[row.pk for row in exhausted]
            ).update(
                status=WorkStatus.FAILED,
                finished_at=now,
                leased_until=None,
                last_error=ABANDONED_ERROR,
            )
        rows = [row for row in selected if row not in exhausted]
        if choose is not None and rows:
            rows = choose(rows)
        if rows or not exhausted:
            return rows


def claim(
    queryset: models.QuerySet[W],
    *,
    worker_id: str,
    limit: int = 10,
    choose: Callable[[list[W]], list[W]] | None = None,
) -> list[W]:
    """Lease up to `limit` due rows for this worker; no two workers get the same row.

    choose(rows), given the first `limit` due rows (in the order they fell due), returns
    those to lease: the others are not touched, and are free again for any worker
    when this claim's transaction ends.
    """
    now = timezone.now()
    with transaction.atomic(using=queryset.db):
        rows = _runnable(queryset, limit=limit, now=now, choose=choose)
        return _lease(rows, using=queryset.db, worker_id=worker_id, now=now)


def claim_due(
    model: type[W],
    *,
    worker_id: str,
    limit: int = 10,
    choose: Callable[[list[W]], list[W]] | None = None,
    skip: tuple[str, Collection[Any]] = ("", ()),
) -> list[W]:
    """claim() of the rows of `model` (but those whose field skip[0] has a value among
    skip[1]), with its query compiled once: a lane's claim, many times a second, spent more
    CPU building its query through the ORM than the database spent running it."""
    queryset = model._default_manager.all()
    using = queryset.db
    now = timezone.now()

    def select() -> list[W]:
        return _select_due(model, using=using, limit=limit, now=now, skip=skip)

    with transaction.atomic(using=using):
        rows = _runnable(queryset, limit=limit, now=now, choose=choose, select=select)
        return _lease(rows, using=using, worker_id=worker_id, now=now)


def _lease(rows: list[W], *, using: str, worker_id: str, now: datetime) -> list[W]:
    """Lease the selected `rows` (locked by the caller's transaction) to `worker_id`: one
    UPDATE, its SQL written here rather than compiled by the ORM for every claim."""
    if not rows:
        return []
    model = type(rows[0])
    connection = connections[using]
    leased_until = now + timedelta(seconds=model.lease_seconds)
    meta = model._meta
    fields: list[Any] = [
        meta.get_field(name) for name in ("status", "leased_until", "leased_by", "attempts")
    ]
    status, until, holder, attempts = (connection.ops.quote_name(f.column) for f in fields)
    sql = (
        f"UPDATE {connection.ops.quote_name(meta.db_table)} "  # noqa: S608
        f"SET {status} = %s, {until} = %s, {holder} = %s, {attempts} = {attempts} + 1 "
        f"WHERE {connection.ops.quote_name(meta.pk.column)} IN ({', '.join(['%s'] * len(rows))})"
    )
    params = [
        WorkStatus.LEASED.value,
        fields[1].get_db_prep_save(leased_until, connection),
        worker_id,
        *(meta.pk.get_db_prep_value(row.pk, connection) for row in rows),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    for row in rows:
        row.status = WorkStatus.LEASED
        row.leased_until = leased_until
        row.leased_by = worker_id
        row.attempts += 1
    return rows


class _NotFromAnIndex(Func):
    """`(condition) IS TRUE`: the same rows as the condition, which PostgreSQL then cannot read
    from an index (see _still_leased())."""

    template = "(%(expressions)s) IS TRUE"
    output_field = models.BooleanField()


def _still_leased() -> _NotFromAnIndex:
    """status = leased, for the fences of rows named by their ids: the ids' primary key is
    what PostgreSQL must read. Written as a plain condition, the planner read the due index's
    "leased" entries instead (a few leased rows in its statistics), and so every version of
    a leased row until VACUUM (one per lease and renewal): a sending group's fenced renewal
    of 8 rows took 9 ms and 900 buffers in a bulk send, against 0.3 ms through the ids."""
    return _NotFromAnIndex(Exact(F("status"), WorkStatus.LEASED.value))


def _still_ours(row: LeasedWork) -> Q:
    # Only the worker holding the lease may finish the row: a worker whose lease
    # expired and was re-claimed by another must not overwrite that one's result.
    # Each claim increments attempts, so this also tells a re-claim by the same
    # worker id apart from the claim this row object came from.
    return Q(_still_leased(), pk=row.pk, leased_by=row.leased_by, attempts=row.attempts)


def _manager(row: LeasedWork) -> models.Manager[Any]:
    return type(row)._default_manager.db_manager(row._state.db)


def mark_done(row: LeasedWork, **fields: Any) -> bool:
    """Finish the row; False if another worker took it over after our lease expired."""
    values: dict[str, Any] = {
        "status": WorkStatus.DONE,
        "finished_at": timezone.now(),
        "leased_until": None,
        "last_error": "",
        **fields,
    }
    updated = _manager(row).filter(_still_ours(row)).update(**values)
    if updated:
        for name, value in values.items():
            setattr(row, name, value)
    return bool(updated)


def update_if_held(row: LeasedWork, **fields: Any) -> bool:
    """Save `fields` of a row still under this worker's lease (progress of a long handler);
    False if another worker took it over after our lease expired."""
    updated = _manager(row).filter(_still_ours(row)).update(**fields)
    if updated:
        for name, value in fields.items():
            setattr(row, name, value)
    return bool(updated)


def _update_all_if_held(rows: Sequence[LeasedWork], values: dict[str, Any]) -> bool:
    if not rows:
        return True
    manager = _manager(rows[0])
    # _still_ours() of each row, one IN per (holder, attempt): a condition per row cost more
    # to compile than the UPDATE took to run.
    by_claim: dict[tuple[str, int], list[Any]] = {}
    for row in rows:
        by_claim.setdefault((row.leased_by, row.attempts), []).append(row.pk)
    held = Q()
    for (leased_by, attempts), pks in by_claim.items():
        held |= Q(pk__in=pks, leased_by=leased_by, attempts=attempts)
    with transaction.atomic(using=manager.db):  # a savepoint in the caller's transaction
        if manager.filter(held, _still_leased()).update(**values) != len(rows):
            transaction.set_rollback(True, using=manager.db)
            return False
    for row in rows:
        for name, value in values.items():
            setattr(row, name, value)
    return True


def update_all_if_held(rows: Sequence[LeasedWork], **fields: Any) -> bool:
    """update_if_held() for several rows of one kind in one statement, all or nothing:
    False, with nothing changed, if another worker took any of them (then ask row by row)."""
    return _update_all_if_held(rows, fields)


def mark_all_done(rows: Sequence[LeasedWork], **fields: Any) -> bool:
    """mark_done() for several rows of one kind in one statement, all or nothing: False,
    with nothing changed, if another worker took any of them (then mark them row by row)."""
    return _update_all_if_held(
        rows,
        {
            "status": WorkStatus.DONE,
            "finished_at": timezone.now(),
            "leased_until": None,
            "last_error": "",
            **fields,
        },
    )


def _quoted_column(model: type[LeasedWork], connection: Any, name: str) -> str:
    field: Any = model._meta.get_field(name)
    return str(connection.ops.quote_name(field.column))


def _held_condition(
    rows: Sequence[LeasedWork], column: Callable[[str], str]
) -> tuple[str, list[Any]]:
    """_still_ours() of each row as SQL (and its parameters): one IN per claim (holder and
    attempt), and the status written as _still_leased() does, so that PostgreSQL reads the
    ids' primary key, not the due index's leased entries."""
    by_claim: dict[tuple[str, int], list[Any]] = {}
    for row in rows:
        by_claim.setdefault((row.leased_by, row.attempts), []).append(row.pk)
    pk, leased_by, attempts = column("id"), column("leased_by"), column("attempts")
    claims, params = [], []
    for (holder, attempt), pks in by_claim.items():
        claims.append(
            f"({pk} IN ({', '.join(['%s'] * len(pks))}) AND {leased_by} = %s AND {attempts} = %s)"
        )
        params += [*pks, holder, attempt]
    params.append(WorkStatus.LEASED)
    return f"({' OR '.join(claims)}) AND ({column('status')} = %s) IS TRUE", params


def update_each_if_held(
    rows: Sequence[LeasedWork],
    *,
    along_with: tuple[str, list[Any]] | None = None,
    followed_by: tuple[str, list[Any]] | None = None,
    **fields: Any,
) -> list[bool]:
    """update_if_held() of several rows of one kind in one UPDATE ... RETURNING; per row (in
    order), whether it was still held and so written.

    along_with: another write (SQL, parameters) to run with it whether or not the rows are
    still held (a delivery's attempt, stored even when another worker took the delivery
    over): on PostgreSQL in the same statement (a WITH clause), which saves a lane's group a
    round trip to the database; elsewhere just before it.

    followed_by: PostgreSQL only, a write (SQL, parameters) of the rows written, which it
    reads, every column, from a WITH clause named `held`, in the same statement (all or
    nothing even in autocommit, one round trip): CRM mail's "sent" marks and their timeline
    entries.

    The fence is _still_ours(), condition for condition (same holder, same attempt, still
    leased), one IN per claim, so the rows another worker took over are told apart in the
    same statement: no savepoint and no second pass row by row, as update_all_if_held()
    needs. A lane's hot path (CRM mail's renewals and sent marks, webhook deliveries' done
    marks) spent more CPU building those through the ORM than the database spent on them.
    """
    if not rows:
        return []
    model = type(rows[0])
    connection = connections[_manager(rows[0]).db]

    column = functools.partial(_quoted_column, model, connection)

    named: list[Any] = [model._meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in named)
    params: list[Any] = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(named, fields.values(), strict=True)
    ]
    pk = column("id")
    held_sql, held_params = _held_condition(rows, column)
    params += held_params
    sql = (
        f"UPDATE {connection.ops.quote_name(model._meta.db_table)} "  # noqa: S608
        f"SET {assignments} WHERE {held_sql} RETURNING {'*' if followed_by else pk}"
    )
    together = connection.vendor == "postgresql"
    if followed_by is not None and not together:
        raise ValueError("followed_by needs PostgreSQL (writes in a WITH clause)")
    if together and (along_with or followed_by):
        clauses, first = [], []
        if along_with is not None:
            clauses.append(f"along_with AS ({along_with[0]})")
            first = along_with[1]
        if followed_by is None:
            sql, params = f"WITH {', '.join(clauses)} {sql}", [*first, *params]
        else:
            clauses += [f"held AS ({sql})", f"followed_by AS ({followed_by[0]})"]
            sql = f"WITH {', '.join(clauses)} SELECT {pk} FROM held"  # noqa: S608
            params = [*first, *params, *followed_by[1]]
    with connection.cursor() as cursor:
        if along_with is not None and not together:
            cursor.execute(*along_with)
        cursor.execute(sql, params)
        updated = {row[0] for row in cursor.fetchall()}
    held = [row.pk in updated for row in rows]
    for row, is_held in zip(rows, held, strict=True):
        if is_held:
            for name, value in fields.items():
                setattr(row, name, value)
    return held


def each_held(rows: Sequence[LeasedWork]) -> list[bool]:
    """Per row (in order), whether this worker still holds it: update_each_if_held()'s fence,
    condition for condition, read in one SELECT without writing anything."""
    if not rows:
        return []
    model = type(rows[0])
    connection = connections[_manager(rows[0]).db]

    column = functools.partial(_quoted_column, model, connection)

    held_sql, params = _held_condition(rows, column)
    sql = (
        f"SELECT {column('id')} FROM {connection.ops.quote_name(model._meta.db_table)} "  # noqa: S608
        f"WHERE {held_sql}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = {row[0] for row in cursor.fetchall()}
    return [row.pk in found for row in rows]


def mark_each_done(
    rows: Sequence[LeasedWork], *, along_with: tuple[str, list[Any]] | None = None, **fields: Any
) -> list[bool]:
    """mark_done() of several rows of one kind in one statement (update_each_if_held(), with
    its along_with); per row, whether it was still held and so marked."""
    return update_each_if_held(
        rows,
        along_with=along_with,
        status=WorkStatus.DONE,
        finished_at=timezone.now(),
        leased_until=None,
        last_error="",
        **fields,
    )


def mark_failed(row: LeasedWork, *, error: str, retry: bool = True, **fields: Any) -> bool:
    """Record a failed attempt: retry later with back-off, or give up for good."""
    now = timezone.now()
    gives_up = not retry or row.attempts >= row.max_attempts
    values: dict[str, Any] = {"leased_until": None, "last_error": error[:4000], **fields}
    if gives_up:
        values.update(status=WorkStatus.FAILED, finished_at=now)
    else:
        values.update(
            status=WorkStatus.PENDING, next_attempt_at=now + row.retry_delay(row.attempts)
        )
    updated = _manager(row).filter(_still_ours(row)).update(**values)
    if updated:
        for name, value in values.items():
            setattr(row, name, value)
    return bool(updated)


def renew(model: type[LeasedWork], *, pks: Iterable[Any], worker_id: str) -> int:
    """Extend the leases of the rows `worker_id` still holds; how many it renewed.

    The worker calls this with its heartbeat for the rows it is working on, so that a
    slow batch never outlives its lease while its worker is alive. A row taken over
    by another worker (its lease had run out) is not ours any more and is left alone.
    A row locked by another transaction is skipped (SKIP LOCKED on PostgreSQL): that is
    this worker's own handler writing it (a sending group's fenced renewal or done mark),
    or a claim that will find it held. Waiting for it instead could deadlock with a group
    that locks the same rows in another order; the next heartbeat renews what was skipped.
    """
    pks = list(pks)
    if not pks:
        return 0
    manager = model._default_manager
    with transaction.atomic(using=manager.db):
        free = (
            manager.filter(_still_leased(), pk__in=pks, leased_by=worker_id)
            .select_for_update(skip_locked=True)
            .values("pk")
        )
        return manager.filter(pk__in=free).update(
            leased_until=timezone.now() + timedelta(seconds=model.lease_seconds)
        )


def release(row: LeasedWork) -> bool:
    """Give back a claimed row that this worker did not start (it is stopping)."""
    updated = (
        _manager(row)
        .filter(_still_ours(row))
        .update(
            status=WorkStatus.PENDING,
            leased_until=None,
            leased_by="",
            attempts=models.F("attempts") - 1,
        )
    )
    if updated:
        row.status, row.leased_until, row.leased_by = WorkStatus.PENDING, None, ""
        row.attempts -= 1
    return bool(updated)


@dataclass(frozen=True)
class Registration:
    """A kind of leased work and how the worker runs it.

    concurrency: at most this many rows of the kind at once in one worker (None: the
    worker's --concurrency). lane_key: a field whose value shares out the kind's
    threads (a delivery's endpoint_id): at most per_key_limit rows with one value run
    at once (default: a quarter of the lane's threads), so one slow receiver leaves
    the other threads to the others. claim_ahead: rows a lane without lane_key claims
    beyond its free threads and keeps queued for them, so that one claim serves many
    rows instead of one claim per finished row (each costs a transaction).
    prepare: called by a lane with the rows of each claim, after the claim commits and
    before any of them runs, to read what they all need in one query (a delivery's
    endpoint) instead of one query per row; the handler must still work without it
    (run_due_work() and tests call it with rows nobody prepared).
    run_many: a handler of several rows at once (`rows_per_run` at most), which a lane
    calls instead of `handler` with the rows queued for it: one thread sends a batch over
    several connections and writes each step of it in one statement (the CRM's mail). A
    lane of `threads` rows at once then runs threads // rows_per_run such runners.
    """

    model: type[LeasedWork]
    handler: Callable[[Any], None]
    batch_size: int
    concurrency: int | None = None
    lane_key: str | None = None
    per_key_limit: int | None = None
    claim_ahead: int = 0
    prepare: Callable[[list[Any]], None] | None = None
    run_many: Callable[[list[Any]], None] | None = None
    rows_per_run: int = 1


_registry: dict[str, Registration] = {}


def register(
    model: type[W],
    handler: Callable[[W], None],
    *,
    batch_size: int = 10,
    concurrency: int | None = None,
    lane_key: str | None = None,
    per_key_limit: int | None = None,
    claim_ahead: int = 0,
    prepare: Callable[[list[W]], None] | None = None,
    run_many: Callable[[list[W]], None] | None = None,
    rows_per_run: int = 1,
) -> None:
    """Have the worker run `handler(row)` for each due row of `model` (or `run_many(rows)`
    for up to rows_per_run of them at once).

    The handler does the work and calls mark_done() or mark_failed() itself; an
    exception escaping it is recorded as a failed attempt and retried (of each row of the
    batch it did not finish). Handlers of one kind run on several threads at once (see
    Registration).
    """
    if claim_ahead and lane_key:
        raise ValueError("claim_ahead would hold rows beyond their key's limit")
    _registry[model._meta.label] = Registration(
        model,
        handler,
        batch_size,
        concurrency=concurrency,
        lane_key=lane_key,
        per_key_limit=per_key_limit,
        claim_ahead=claim_ahead,
        prepare=prepare,
        run_many=run_many,
        rows_per_run=max(1, rows_per_run) if run_many is not None else 1,
    )


def registrations() -> list[Registration]:
    return list(_registry.values())


def run_due_work(*, worker_id: str, should_stop: Callable[[], bool] | None = None) -> int:
    """Claim and run one batch of every registered kind; returns how many rows ran.

    When should_stop() turns true (the worker was asked to stop), the row in hand
    is finished and the rest of the batch is released for other workers.
    """
    ran = 0
    for registration in registrations():
        if should_stop is not None and should_stop():
            break
        try:
            rows = claim(
                registration.model._default_manager.all(),
                worker_id=worker_id,
                limit=registration.batch_size,
            )
        except DatabaseError:
            # One kind that cannot be claimed (its table is missing or locked)
            # must not stop the others; the worker goes on and tries again later.
            logger.exception("Cannot claim %s", registration.model._meta.label)
            continue
        size = registration.rows_per_run
        for index in range(0, len(rows), size):
            if should_stop is not None and should_stop():
                for unstarted in rows[index:]:
                    release(unstarted)
                break
            run_rows(registration, rows[index : index + size])
            ran += len(rows[index : index + size])
    return ran


def run_row(registration: Registration, row: LeasedWork) -> None:
    """Run the handler for one claimed row; an exception is a failed attempt."""
    try:
        registration.handler(row)
    except Exception as error:
        logger.exception("%s %s failed", registration.model._meta.label, row.pk)
        mark_failed(row, error=f"{type(error).__name__}: {error}")


def run_rows(registration: Registration, rows: Sequence[LeasedWork]) -> None:
    """Run the kind's batch handler (run_many) for these claimed rows, or its handler for
    one; an exception is a failed attempt of each row the handler had not finished
    (mark_failed() is fenced: a row it marked done, or another worker holds, is left)."""
    if registration.run_many is None:
        for row in rows:
            run_row(registration, row)
        return
    try:
        registration.run_many(list(rows))
    except Exception as error:
        logger.exception(
            "%s %s failed", registration.model._meta.label, ", ".join(str(row.pk) for row in rows)
        )
        for row in rows:
            if row.status == WorkStatus.LEASED:
                mark_failed(row, error=f"{type(error).__name__}: {error}")
