"""What an administrator relies on when sending deliveries again (issue 10 point 4, issue 14).

"Retry all failed" and "send again since" make the deliveries due now whatever their
back-off said, with a fresh retry schedule, on that endpoint only. Nothing is sent here:
the tests read what the worker would claim next.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone

from kizuna.identity.models import User
from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.work.leases import WorkStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoints(account: SurveyAccount, carol_account: SurveyAccount) -> dict[str, WebhookEndpoint]:
    made = {}
    for name, owner in (("a", account), ("b", account), ("c", carol_account)):
        made[name], _secret = services.create_endpoint(
            account=owner,
            url=f"https://93.184.215.14/{name}",
            events=["response.completed"],
            by=None,
        )
    return made


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
    now = timezone.now()
    return sorted(
        d.payload["data"]["label"]
        for d in Delivery.objects.filter(status=WorkStatus.PENDING, next_attempt_at__lte=now)
    )


def test_retrying_all_failed_sends_at_once_what_a_410_stopped_mid_back_off(endpoints, ada: User):
    a, b = endpoints["a"], endpoints["b"]
    waiting(a, "a-waiting")
    waiting(b, "b-waiting")
    services.disable_endpoint(endpoint=a, reason="410")  # a-waiting failed, next attempt unchanged
    services.enable_endpoint(endpoint=a, by=ada)

    assert services.retry_failed_deliveries(endpoint=a, by=ada) == 1

    assert due_now() == ["a-waiting"]
    retried = Delivery.objects.get(payload__data__label="a-waiting")
    assert (retried.status, retried.finished_at, retried.max_attempts) == (
        WorkStatus.PENDING,
        None,
        5 + 26,
    )


def test_sending_again_since_a_moment_makes_a_delivery_waiting_its_back_off_due_now(
    endpoints, ada: User
):
    a, b = endpoints["a"], endpoints["b"]
    waiting(a, "a-waiting")
    waiting(b, "b-waiting")
    since = timezone.now() - datetime.timedelta(hours=1)

    assert services.resend_deliveries_since(endpoint=a, since=since, by=ada) == 1

    assert due_now() == ["a-waiting"]
    assert Delivery.objects.get(payload__data__label="a-waiting").max_attempts == 5 + 26
