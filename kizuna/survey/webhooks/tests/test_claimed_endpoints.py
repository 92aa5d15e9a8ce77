"""The webhook lane reads the endpoints of a claim once, not once a delivery (issue 10, P2).

The lane's prepare() (services.read_endpoints) looks up each endpoint of the deliveries it
just claimed and hands it to deliver(), which then sends without a lookup of its own; a
delivery nobody prepared (run_due_work, a test) is looked up as before. What deliver()
checks is unchanged: a disabled endpoint is refused, read at the claim or at the send.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.testing.receiver import Receiver
from kizuna.testing.webhooks import endpoint, publish
from kizuna.testing.worker import queued_rows
from kizuna.work import lanes, leases
from kizuna.work.leases import WorkStatus


@pytest.fixture
def local(receiver: Receiver) -> Iterator[Receiver]:
    with override_settings(KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(receiver.origin,)):
        yield receiver


def endpoint_reads(queries: CaptureQueriesContext) -> int:
    table = f'FROM "{WebhookEndpoint._meta.db_table}"'
    return sum(
        query["sql"].startswith("SELECT") and table in query["sql"]
        for query in queries.captured_queries
    )


def webhook_lane() -> lanes.Lane:
    """The lane `kizuna worker` runs for deliveries (its registration from apps.py)."""
    [registration] = [found for found in leases.registrations() if found.model is Delivery]
    return lanes.Lane(
        registration, worker_id="w", threads=8, poll_seconds=1, should_stop=lambda: False
    )


@pytest.mark.django_db
def test_p2_a_lanes_claim_reads_each_endpoint_once_and_its_deliveries_are_sent_without_a_lookup(
    local: Receiver, account: SurveyAccount, carol_account: SurveyAccount
):
    first = endpoint(account, local.url("/first"))
    second = endpoint(carol_account, local.url("/second"))
    publish(account, 3)
    publish(carol_account, 3)
    lane = webhook_lane()  # two threads an endpoint: four deliveries of the six

    with CaptureQueriesContext(connection) as claiming:
        assert lane.fill() == 4
    claimed = queued_rows(lane)
    with CaptureQueriesContext(connection) as sending:
        for delivery in claimed:
            services.deliver(delivery)

    assert endpoint_reads(claiming) == 2
    assert endpoint_reads(sending) == 0
    assert sorted(request.path for request in local.requests) == ["/first"] * 2 + ["/second"] * 2
    assert sorted(
        Delivery.objects.filter(status=WorkStatus.DONE).values_list("endpoint_id", flat=True)
    ) == sorted([first.pk, first.pk, second.pk, second.pk])


@pytest.mark.django_db
def test_p2_a_delivery_nobody_prepared_looks_its_endpoint_up_and_a_prepared_one_only_once(
    local: Receiver, account: SurveyAccount
):
    endpoint(account, local.url("/hook"))
    publish(account, 2)
    prepared, alone = leases.claim(Delivery.objects.order_by("pk"), worker_id="w")
    services.read_endpoints([prepared])

    with CaptureQueriesContext(connection) as sending:
        services.deliver(prepared)
        services.deliver(alone)
    # A delivery sent again from the same object (a test, a replay) reads its endpoint anew.
    Delivery.objects.filter(pk=prepared.pk).update(status=WorkStatus.LEASED)
    prepared.status = WorkStatus.LEASED
    with CaptureQueriesContext(connection) as again:
        services.deliver(prepared)

    assert (endpoint_reads(sending), endpoint_reads(again)) == (1, 1)
    assert [request.path for request in local.requests] == ["/hook"] * 3


@pytest.mark.django_db
def test_p2_a_delivery_claimed_before_its_endpoint_was_disabled_and_read_after_is_refused_unsent(
    local: Receiver, account: SurveyAccount
):
    hook = endpoint(account, local.url("/hook"))
    publish(account, 1)
    [claimed] = leases.claim(Delivery.objects.all(), worker_id="w")
    services.disable_endpoint(endpoint=hook, reason="410 Gone")
    services.read_endpoints([claimed])

    services.deliver(claimed)

    stored = Delivery.objects.get()
    assert (stored.status, stored.last_error) == (
        WorkStatus.FAILED,
        "The endpoint is disabled: 410 Gone",
    )
    assert local.requests == []


@pytest.mark.django_db
def test_p2_each_delivery_of_a_claim_gets_its_own_copy_of_their_endpoint(
    account: SurveyAccount,
):
    endpoint(account, "https://93.184.215.14/hook")
    publish(account, 2)
    claimed = leases.claim(Delivery.objects.order_by("pk"), worker_id="w")

    services.read_endpoints(claimed)

    first, second = (row.__dict__[services._CLAIMED_ENDPOINT] for row in claimed)
    assert first is not second
    assert first.pk == second.pk == claimed[0].endpoint_id
    assert first._state is not second._state
