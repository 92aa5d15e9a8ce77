"""The bookkeeping of accepted deliveries, committed together by the lane's threads (issue 10).

An accepted delivery's attempt and its "done" mark go into a transaction shared with the
deliveries the other threads finished meanwhile (lib/group_commit.py). What each delivery
relied on before still holds: it is marked done only while its lease is still ours (a row
another worker took over after our lease ran out stays theirs, in a group or alone), every
attempt made is stored, and a worker's lane drains a backlog with each delivery done once.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, DeliveryAttempt
from kizuna.testing.processes import wait_for
from kizuna.testing.races import require_postgresql
from kizuna.testing.receiver import Answer, Receiver
from kizuna.testing.webhooks import endpoint, publish
from kizuna.testing.worker import WorkerThread
from kizuna.work import leases
from kizuna.work.leases import WorkStatus

# Only a broken run waits this long for the lane to finish.
TIMEOUT = 300


@pytest.fixture
def local(receiver: Receiver) -> Iterator[Receiver]:
    with override_settings(
        KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(receiver.origin,),
        KIZUNA_WEBHOOK_TIMEOUT_SECONDS=60,
        KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS=60,
    ):
        yield receiver


def taken_over(row: Delivery, *, by: str) -> Delivery:
    """Our lease on `row` ran out and worker `by` claimed it: its row object, as theirs."""
    Delivery.objects.filter(pk=row.pk).update(
        leased_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    [theirs] = leases.claim(Delivery.objects.filter(pk=row.pk), worker_id=by)
    return theirs


def attempt_of(delivery: Delivery) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery=delivery, attempted_at=timezone.now(), status_code=204, duration_ms=3
    )


@pytest.mark.django_db
def test_an_accepted_delivery_whose_lease_another_worker_took_stays_theirs(
    local: Receiver, account: SurveyAccount
):
    endpoint(account, local.url())
    publish(account, 1)
    [ours] = leases.claim(Delivery.objects.all(), worker_id="a")
    theirs = taken_over(ours, by="b")

    services.deliver(ours)  # the receiver accepts it: 200

    stored = Delivery.objects.get(pk=ours.pk)
    assert (stored.status, stored.leased_by, stored.attempts) == (WorkStatus.LEASED, "b", 2)
    assert stored.finished_at is None
    assert list(DeliveryAttempt.objects.values_list("delivery_id", "status_code")) == [
        (ours.pk, 200)
    ]
    assert [r.headers["webhook-id"] for r in local.requests] == [ours.message_id]
    # The worker that holds it now finishes it: the same webhook-id again (at least once).
    services.deliver(theirs)
    stored.refresh_from_db()
    assert (stored.status, stored.leased_by) == (WorkStatus.DONE, "b")
    assert [r.headers["webhook-id"] for r in local.requests] == [ours.message_id] * 2


@pytest.mark.django_db
def test_a_group_of_accepted_deliveries_marks_done_only_those_still_ours_and_keeps_every_attempt(
    account: SurveyAccount, carol_account: SurveyAccount
):
    endpoint(account, "https://93.184.215.14/a")
    endpoint(carol_account, "https://93.184.215.14/c")
    publish(account, 2)
    publish(carol_account, 1)
    Delivery.objects.update(last_error="HTTP 503")  # an earlier attempt failed
    first, second, third = leases.claim(Delivery.objects.order_by("pk"), worker_id="a")
    taken_over(second, by="b")

    marked = services._record_all_accepted(
        [(row, attempt_of(row)) for row in (first, second, third)]
    )

    assert marked == [True, False, True]
    stored = {row.pk: row for row in Delivery.objects.all()}
    for row in (first, third):
        assert (stored[row.pk].status, stored[row.pk].leased_until) == (WorkStatus.DONE, None)
        assert stored[row.pk].last_error == ""
        assert stored[row.pk].finished_at is not None
        assert (row.status, row.leased_until, row.finished_at) == (
            WorkStatus.DONE,
            None,
            stored[row.pk].finished_at,
        )
    assert (stored[second.pk].status, stored[second.pk].leased_by) == (WorkStatus.LEASED, "b")
    assert (stored[second.pk].attempts, stored[second.pk].last_error) == (2, "HTTP 503")
    assert (second.status, second.leased_by) == (WorkStatus.LEASED, "a")
    assert sorted(DeliveryAttempt.objects.values_list("delivery_id", flat=True)) == sorted(
        [first.pk, second.pk, third.pk]
    )


@pytest.mark.django_db
def test_a_group_of_accepted_deliveries_all_still_ours_is_recorded_in_one_statement_on_postgresql(
    account: SurveyAccount,
):
    """One statement on PostgreSQL (the attempts' INSERT in the UPDATE's WITH clause): a
    round trip less for each group of the lane; SQLite keeps an INSERT and an UPDATE."""
    endpoint(account, "https://93.184.215.14/a")
    publish(account, 3)
    rows = leases.claim(Delivery.objects.order_by("pk"), worker_id="a")

    with CaptureQueriesContext(connection) as queries:
        marked = services._record_all_accepted([(row, attempt_of(row)) for row in rows])

    assert marked == [True] * 3
    assert [query["sql"].split()[0] for query in queries.captured_queries] == (
        ["WITH"] if connection.vendor == "postgresql" else ["INSERT", "UPDATE"]
    )
    assert Counter(Delivery.objects.values_list("status", flat=True)) == {WorkStatus.DONE: 3}
    assert DeliveryAttempt.objects.count() == 3


@pytest.mark.django_db
def test_an_accepted_delivery_given_up_meanwhile_as_abandoned_stays_failed(
    local: Receiver, account: SurveyAccount
):
    endpoint(account, local.url())
    publish(account, 1)
    Delivery.objects.update(max_attempts=1)
    [ours] = leases.claim(Delivery.objects.all(), worker_id="a")
    # Our lease ran out on the last allowed attempt: the next claim gives the row up.
    Delivery.objects.update(leased_until=timezone.now() - datetime.timedelta(seconds=1))
    assert leases.claim(Delivery.objects.all(), worker_id="b") == []

    services.deliver(ours)

    stored = Delivery.objects.get()
    assert (stored.status, stored.last_error) == (WorkStatus.FAILED, leases.ABANDONED_ERROR)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_draining_a_backlog_with_its_threads_delivers_each_once_with_one_attempt(
    local: Receiver, account: SurveyAccount, carol_account: SurveyAccount
):
    require_postgresql("threads writing at once")
    local.default = Answer(status=204, body=b"")
    endpoint(account, local.url("/a"))
    endpoint(carol_account, local.url("/c"))
    published = publish(account, 40) + publish(carol_account, 20)

    with WorkerThread("drain", concurrency=8):
        wait_for(
            lambda: Delivery.objects.filter(status=WorkStatus.DONE).count() == 60,
            timeout=TIMEOUT,
            message="the worker delivers the backlog",
        )

    assert Counter(r.headers["webhook-id"] for r in local.requests) == {
        delivery.message_id: 1 for delivery in published
    }
    assert Counter(DeliveryAttempt.objects.values_list("delivery_id", "status_code")) == {
        (delivery.pk, 204): 1 for delivery in published
    }
    assert not Delivery.objects.exclude(leased_until=None).exists()


def in_a_transaction_seen_by(
    write_all: Callable[[Sequence[Any]], list[bool]], seen: list[bool]
) -> Callable[[Sequence[Any]], list[bool]]:
    """`write_all`, noting whether it ran inside a transaction (an atomic block)."""

    def noting(arguments: Sequence[Any]) -> list[bool]:
        seen.append(connection.in_atomic_block)
        return write_all(arguments)

    return noting


@pytest.mark.django_db(transaction=True)
def test_p2_a_group_of_accepted_deliveries_is_recorded_without_begin_and_commit_on_postgresql(
    account: SurveyAccount,
):
    """On PostgreSQL a group's bookkeeping is one statement, atomic by itself: it runs in
    autocommit, without the BEGIN and COMMIT round trips; SQLite's two statements (the
    attempts' INSERT and the UPDATE) stay in one transaction."""
    endpoint(account, "https://93.184.215.14/a")
    publish(account, 2)
    rows = leases.claim(Delivery.objects.order_by("pk"), worker_id="a")
    seen: list[bool] = []
    record = in_a_transaction_seen_by(services._record_all_accepted, seen)

    marked = [services._bookkeeping.run_batched(record, (row, attempt_of(row))) for row in rows]

    assert marked == [True, True]
    assert seen == [connection.vendor != "postgresql"] * 2
    assert Counter(Delivery.objects.values_list("status", flat=True)) == {WorkStatus.DONE: 2}
    assert DeliveryAttempt.objects.count() == 2
