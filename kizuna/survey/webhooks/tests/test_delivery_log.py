"""What an operator reads in the log about webhook delivery (issue 10 point 5, issue 14): a
delivery given up names it, and an endpoint answering again says how many deliveries that
waited are due now. Two endpoints of two accounts are failing, so that a count reaching the
other endpoint's deliveries shows.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator

import pytest
from django.test import override_settings
from django.utils import timezone, translation

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.testing.receiver import Answer, Receiver
from kizuna.work.leases import WorkStatus, run_due_work

pytestmark = pytest.mark.django_db


@pytest.fixture
def local(receiver: Receiver) -> Iterator[Receiver]:
    with (
        translation.override("en"),
        override_settings(
            KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(receiver.origin,),
            KIZUNA_WEBHOOK_TIMEOUT_SECONDS=15,
            KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS=15,
        ),
    ):
        yield receiver


@pytest.fixture
def endpoints(
    local: Receiver, account: SurveyAccount, carol_account: SurveyAccount
) -> dict[str, WebhookEndpoint]:
    made = {}
    for name, owner in (("a", account), ("c", carol_account)):
        made[name], _secret = services.create_endpoint(
            account=owner, url=local.url(f"/{name}"), events=["response.completed"], by=None
        )
    return made


def delivery(endpoint: WebhookEndpoint, label: str, hours: float = 0) -> Delivery:
    return Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={"data": {"label": label}},
        next_attempt_at=timezone.now() + datetime.timedelta(hours=hours),
    )


def webhook_log(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "kizuna.survey.webhooks.services"
    ]


def test_a_delivery_stopped_by_a_410_is_logged_as_given_up(
    local: Receiver, endpoints, caplog: pytest.LogCaptureFixture
):
    a = endpoints["a"]
    sent = delivery(a, "a-now")
    local.answer(Answer(status=410))
    caplog.set_level(logging.INFO)

    run_due_work(worker_id="w")

    assert webhook_log(caplog) == [
        (
            logging.WARNING,
            f"Webhook delivery {sent.pk} to endpoint {a.pk} ({local.origin}) failed on attempt 1: "
            "HTTP 410; given up",
        )
    ]


def test_an_endpoint_answering_again_after_an_outage_logs_how_many_deliveries_are_due_now(
    local: Receiver, endpoints, caplog: pytest.LogCaptureFixture
):
    a, c = endpoints["a"], endpoints["c"]
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    WebhookEndpoint.objects.update(failing_since=long_ago, last_failed_at=long_ago)
    delivery(a, "a-waiting-1", hours=1)
    delivery(a, "a-waiting-2", hours=2)
    delivery(c, "c-waiting", hours=1)
    delivery(a, "a-now")
    caplog.set_level(logging.INFO)

    assert run_due_work(worker_id="w") == 1

    assert webhook_log(caplog) == [
        (
            logging.INFO,
            f"Webhook endpoint {a.pk} ({local.origin}) answers again: "
            "2 waiting deliveries are due now",
        )
    ]
    due = {
        d.payload["data"]["label"]
        for d in Delivery.objects.filter(
            status=WorkStatus.PENDING, next_attempt_at__lte=timezone.now()
        )
    }
    assert due == {"a-waiting-1", "a-waiting-2"}
