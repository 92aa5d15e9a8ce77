"""Which failing endpoint is probed, and with which delivery (issue 10 point 4, issue 14).

Several endpoints of two accounts are in the database, failing, recovered, disabled or
busy, so that a probe reaching an endpoint it should leave alone shows. Probing only
changes when a waiting delivery is due; nothing is sent here.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoints(account: SurveyAccount, carol_account: SurveyAccount) -> dict[str, WebhookEndpoint]:
    """Ada's endpoints "a", "b" and "d", Carol's "c"; none failing yet."""
    made = {}
    for name, owner in (("a", account), ("b", account), ("c", carol_account), ("d", account)):
        made[name], _secret = services.create_endpoint(
            account=owner,
            url=f"https://93.184.215.14/{name}",
            events=["response.completed"],
            by=None,
        )
    return made


def failing(endpoint: WebhookEndpoint, minutes: float = 60) -> None:
    since = timezone.now() - datetime.timedelta(minutes=minutes)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=since, last_failed_at=since)


def delivery(endpoint: WebhookEndpoint, label: str, **fields: Any) -> Delivery:
    return Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={"data": {"label": label}},
        **fields,
    )


def waiting(endpoint: WebhookEndpoint, label: str, hours: float = 1) -> Delivery:
    return delivery(
        endpoint,
        label,
        attempts=5,
        last_error="HTTP 503",
        next_attempt_at=timezone.now() + datetime.timedelta(hours=hours),
    )


def due_now() -> list[str]:
    """The labels of the pending deliveries that are due now, in label order."""
    now = timezone.now()
    return sorted(
        d.payload["data"]["label"]
        for d in Delivery.objects.filter(status=WorkStatus.PENDING, next_attempt_at__lte=now)
    )


def test_a_failing_endpoint_is_probed_with_its_delivery_due_first_whatever_the_order_made(
    endpoints,
):
    a = endpoints["a"]
    failing(a)
    waiting(a, "a-later", hours=3)
    waiting(a, "a-sooner", hours=1)
    waiting(a, "a-latest", hours=5)

    assert services.probe_failing_endpoints() == 1

    assert due_now() == ["a-sooner"]


def test_of_two_deliveries_due_at_the_same_moment_the_older_is_probed(endpoints):
    a = endpoints["a"]
    failing(a)
    at = timezone.now() + datetime.timedelta(hours=1)
    delivery(a, "a-older", attempts=5, next_attempt_at=at)
    delivery(a, "a-newer", attempts=5, next_attempt_at=at)

    assert services.probe_failing_endpoints() == 1

    assert due_now() == ["a-older"]


def test_a_disabled_endpoint_is_never_probed(endpoints):
    a, b = endpoints["a"], endpoints["b"]
    services.disable_endpoint(endpoint=a, reason="410")
    failing(a)
    failing(b)
    waiting(a, "a-replayed")  # a replay made it pending again while the endpoint is disabled
    waiting(b, "b-waiting")

    assert services.probe_failing_endpoints() == 1

    assert due_now() == ["b-waiting"]


def test_an_endpoint_that_recovered_is_not_probed(endpoints):
    a, b = endpoints["a"], endpoints["b"]
    failing(a)
    failing(b)
    WebhookEndpoint.objects.filter(pk=a.pk).update(failing_since=None)  # answered 2xx since
    waiting(a, "a-refused-once")
    waiting(b, "b-waiting")

    assert services.probe_failing_endpoints() == 1

    assert due_now() == ["b-waiting"]


def test_an_endpoint_with_an_attempt_under_way_is_not_probed_and_the_next_one_is(endpoints):
    a, b, c = endpoints["a"], endpoints["b"], endpoints["c"]
    for endpoint in (a, b, c):
        failing(endpoint)
    delivery(a, "a-sending", status=WorkStatus.LEASED, attempts=3)
    waiting(a, "a-waiting")
    waiting(b, "b-waiting")
    waiting(c, "c-waiting")

    assert services.probe_failing_endpoints() == 2

    assert due_now() == ["b-waiting", "c-waiting"]


def test_an_endpoint_with_an_attempt_due_within_the_minute_is_not_probed_and_the_next_one_is(
    endpoints,
):
    a, b = endpoints["a"], endpoints["b"]
    failing(a)
    failing(b)
    waiting(a, "a-soon", hours=0.5 / 60)
    waiting(a, "a-waiting")
    waiting(b, "b-waiting")

    assert services.probe_failing_endpoints() == 1

    assert due_now() == ["b-waiting"]


def test_finished_deliveries_do_not_keep_a_failing_endpoint_from_being_probed(endpoints):
    a = endpoints["a"]
    failing(a)
    now = timezone.now()
    delivery(a, "a-done", status=WorkStatus.DONE, attempts=1, finished_at=now, next_attempt_at=now)
    delivery(
        a, "a-dead", status=WorkStatus.FAILED, attempts=26, finished_at=now, next_attempt_at=now
    )
    waiting(a, "a-waiting")

    assert services.probe_failing_endpoints() == 1

    assert due_now() == ["a-waiting"]


def test_a_failing_endpoint_with_nothing_waiting_does_not_stop_the_others_being_probed(
    endpoints,
):
    a, b, c = endpoints["a"], endpoints["b"], endpoints["c"]
    for endpoint in (a, b, c):
        failing(endpoint)
    now = timezone.now()
    delivery(a, "a-dead", status=WorkStatus.FAILED, attempts=26, finished_at=now)
    waiting(b, "b-waiting")
    waiting(c, "c-waiting")

    assert services.probe_failing_endpoints() == 2

    assert due_now() == ["b-waiting", "c-waiting"]
