"""Wake on commit (issue 10, point 3): PostgreSQL NOTIFY from the transaction that writes work.

The worker's lanes poll only once an hour here, and each test first waits until the
lane sleeps with no wake-up pending (Lane.is_asleep): from then on only a wake-up
makes it look at the table, so a row done within the test was woken for. The same
test shows the other side: a row committed without a notify stays untouched while
a later notification (a barrier: PostgreSQL delivers them in commit order) arrives.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from kizuna.testing.processes import wait_for
from kizuna.testing.races import require_postgresql
from kizuna.testing.worker import POLL_ONLY_WHEN_WOKEN, WorkerThread, barrier, sleeping_lane
from kizuna.work import wakeup
from kizuna.work.leases import WorkStatus
from kizuna.work.models import ProbeWork

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_p3_only_the_notify_of_a_commit_wakes_a_sleeping_lane():
    require_postgresql("LISTEN/NOTIFY")
    with WorkerThread("listening", concurrency=2, interval=POLL_ONLY_WHEN_WOKEN) as worker:
        lane = sleeping_lane(worker, ProbeWork)
        ProbeWork.objects.create(key="unannounced")
        barrier(worker)
        assert lane.is_asleep()
        assert ProbeWork.objects.get().status == WorkStatus.PENDING

        with transaction.atomic():
            ProbeWork.objects.create(key="announced")
            wakeup.notify(ProbeWork)

        wait_for(
            lambda: (
                set(ProbeWork.objects.values_list("key", "status"))
                == {("unannounced", WorkStatus.DONE), ("announced", WorkStatus.DONE)}
            ),
            timeout=60,
            message="the commit woke the lane, which took both rows",
        )
    assert ProbeWork._meta.label in worker.wakes


def test_p3_a_rolled_back_row_wakes_nobody_and_leaves_nothing():
    require_postgresql("LISTEN/NOTIFY")
    with WorkerThread("listening", concurrency=2, interval=POLL_ONLY_WHEN_WOKEN) as worker:
        lane = sleeping_lane(worker, ProbeWork)
        with pytest.raises(RuntimeError), transaction.atomic():
            ProbeWork.objects.create(key="rolled-back")
            wakeup.notify(ProbeWork)
            raise RuntimeError("rolled back")
        barrier(worker)
        assert lane.is_asleep()
        assert ProbeWork._meta.label not in worker.wakes

    assert not ProbeWork.objects.exists()


def test_p3_without_postgresql_notify_does_nothing(settings):
    # SQLite (and any database without NOTIFY): the lanes' short poll finds the row.
    if wakeup.is_available():
        pytest.skip("PostgreSQL notifies")
    with transaction.atomic():
        wakeup.notify(ProbeWork)
