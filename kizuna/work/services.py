"""The probe: a small piece of work that proves a worker picks work up and finishes it."""

from __future__ import annotations

import time

from django.db import transaction
from django.db.models import F

from kizuna.work.leases import mark_done
from kizuna.work.models import ProbeEffect, ProbeWork


def record_probe_effect(*, key: str, worker_id: str, hold_seconds: float = 0.0) -> bool:
    """Record the probe's effect once per key; True if this run recorded it.

    The effect and the hold happen in one transaction: a worker killed during the
    hold leaves nothing behind, like a real handler killed before its commit.
    Must be called inside a transaction.atomic() block, which it holds open.
    """
    effect, created = ProbeEffect.objects.get_or_create(key=key, defaults={"worker_id": worker_id})
    if not created:
        ProbeEffect.objects.filter(pk=effect.pk).update(repeats=F("repeats") + 1)
    if hold_seconds > 0:
        time.sleep(hold_seconds)
    return created


def handle_probe_work(row: ProbeWork) -> None:
    """The leased-work handler of ProbeWork: record the effect and finish, atomically."""
    with transaction.atomic():
        record_probe_effect(key=row.key, worker_id=row.leased_by, hold_seconds=row.hold_seconds)
        if not mark_done(row):
            # Our lease expired and another worker owns the row now: its run counts.
            transaction.set_rollback(True)
