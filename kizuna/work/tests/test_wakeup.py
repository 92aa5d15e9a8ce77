"""Wake on commit (issue 10, point 3): PostgreSQL NOTIFY from the transaction that writes work.

The worker polls only every 30 s here: a row picked up within seconds of its
commit was picked up because the commit woke the worker.
"""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from kizuna.testing.processes import wait_for
from kizuna.testing.races import require_postgresql
from kizuna.testing.worker import WorkerThread
from kizuna.work import wakeup
from kizuna.work.leases import WorkStatus
from kizuna.work.models import ProbeWork

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

POLL_SECONDS = 30.0


def listening(worker) -> bool:
    return worker.is_listening


def test_p3_a_committed_row_wakes_a_worker_that_polls_only_every_30_seconds():
    require_postgresql("LISTEN/NOTIFY")
    with WorkerThread("listening", concurrency=2, interval=POLL_SECONDS) as worker:
        wait_for(lambda: listening(worker), timeout=10, message="the worker listens")
        time.sleep(0.5)  # its lanes went to sleep after their first look
        with transaction.atomic():
            ProbeWork.objects.create(key="woken")
            wakeup.notify(ProbeWork)

        wait_for(
            lambda: ProbeWork.objects.filter(key="woken", status=WorkStatus.DONE).exists(),
            timeout=10,
            message="the commit woke the worker",
        )


def test_p3_a_rolled_back_row_wakes_nobody_and_leaves_nothing():
    require_postgresql("LISTEN/NOTIFY")
    with WorkerThread("listening", concurrency=2, interval=POLL_SECONDS) as worker:
        wait_for(lambda: listening(worker), timeout=10, message="the worker listens")
        with pytest.raises(RuntimeError), transaction.atomic():
            ProbeWork.objects.create(key="rolled-back")
            wakeup.notify(ProbeWork)
            raise RuntimeError("rolled back")

    assert not ProbeWork.objects.exists()


def test_p3_without_postgresql_notify_does_nothing(settings):
    # SQLite (and any database without NOTIFY): the lanes' short poll finds the row.
    if wakeup.is_available():
        pytest.skip("PostgreSQL notifies")
    with transaction.atomic():
        wakeup.notify(ProbeWork)
