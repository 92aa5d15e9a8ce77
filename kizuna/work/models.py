"""Worker processes and their heartbeats, plus the probe work a health check and the tests use."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.work.leases import LeasedWork


def lease_seconds() -> float:
    """How long a worker may go without a heartbeat before its work is taken back."""
    return float(settings.KIZUNA_WORKER_LEASE_SECONDS)


def heartbeat_cutoff(now: datetime | None = None) -> datetime:
    """A worker whose last heartbeat is older than this is dead."""
    return (now or timezone.now()) - timedelta(seconds=lease_seconds())


def heartbeat_seconds() -> float:
    # Five beats per lease: a worker must miss several in a row before it is
    # declared dead, so a short stall (a slow query, a GC pause) is not enough.
    return max(lease_seconds() / 5, 0.2)


class WorkerProcessQuerySet(models.QuerySet["WorkerProcess"]):
    def alive(self, *, now: datetime | None = None) -> WorkerProcessQuerySet:
        return self.filter(heartbeat_at__gte=heartbeat_cutoff(now))

    def stale(self, *, now: datetime | None = None) -> WorkerProcessQuerySet:
        return self.filter(heartbeat_at__lt=heartbeat_cutoff(now))


class WorkerProcess(models.Model):
    """One running `kizuna worker` process, kept fresh by its heartbeat thread.

    A worker registers before it claims anything and deletes its row when it stops
    cleanly; a row whose heartbeat is older than the lease belongs to a worker that
    died, and the work it held is recovered by the others.
    """

    # django-tasks-db stores worker ids in DBTaskResult.worker_ids and caps them at 64.
    worker_id = models.CharField(_("worker id"), max_length=64, unique=True)
    hostname = models.CharField(_("host name"), max_length=255)
    pid = models.PositiveIntegerField(_("process id"))
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    heartbeat_at = models.DateTimeField(_("last heartbeat at"), default=timezone.now)

    objects = WorkerProcessQuerySet.as_manager()

    class Meta:
        verbose_name = _("worker process")
        verbose_name_plural = _("worker processes")
        ordering = ["started_at"]

    def __str__(self) -> str:
        return f"{self.worker_id} ({self.hostname}, pid {self.pid})"

    @property
    def is_alive(self) -> bool:
        return self.heartbeat_at >= heartbeat_cutoff()


class ProbeWork(LeasedWork):
    """A unit of leased work that does nothing but leave a ProbeEffect behind.

    A health check can enqueue one to prove that a worker picks up and finishes
    leased work; the crash tests enqueue many with a hold time and kill a worker
    in the middle of one.
    """

    key = models.CharField(_("key"), max_length=100, unique=True)
    hold_seconds = models.FloatField(_("hold time in seconds"), default=0.0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("probe work")
        verbose_name_plural = _("probe work")
        # The index of claims (kizuna/work/leases.py), as every kind of leased work has one.
        indexes: ClassVar = [
            models.Index(fields=["status", "next_attempt_at", "id"], name="work_probe_due_order"),
        ]

    def __str__(self) -> str:
        return self.key


class ProbeEffect(models.Model):
    """What a probe (a ProbeWork row or a probe task) did: one row per key.

    `repeats` counts the runs that found the effect already recorded, so a test
    can tell "done once" from "done twice, recorded once".
    """

    key = models.CharField(_("key"), max_length=100, unique=True)
    worker_id = models.CharField(_("worker id"), max_length=64, blank=True)
    repeats = models.PositiveIntegerField(_("repeated runs"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("probe effect")
        verbose_name_plural = _("probe effects")

    def __str__(self) -> str:
        return self.key
