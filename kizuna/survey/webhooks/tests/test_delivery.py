"""Delivering events: Standard Webhooks signing, retries, dead-lettering, 410, SSRF (DESIGN §3)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from standardwebhooks import Webhook

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint
from kizuna.testing.receiver import Answer, Receiver
from kizuna.testing.survey_keys import make_response
from kizuna.work.leases import WorkStatus, run_due_work

pytestmark = pytest.mark.django_db(transaction=False)

HORIZON = datetime.timedelta(days=3)


def test_signing_matches_the_published_standard_webhooks_test_vector():
    headers = services.signed_headers(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        message_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=datetime.datetime.fromtimestamp(1614265330, tz=datetime.UTC),
        body='{"test": 2432232314}',
    )

    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert headers["webhook-id"] == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    assert headers["webhook-timestamp"] == "1614265330"


def test_signing_a_timestamp_in_another_time_zone_gives_the_same_signature():
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    headers = services.signed_headers(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        message_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=datetime.datetime.fromtimestamp(1614265330, tz=tokyo),
        body='{"test": 2432232314}',
    )
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.fixture
def local(receiver: Receiver) -> Iterator[Receiver]:
    """The receiver's origin is allowed (like the co-deployed CRM). Its answers may take long
    on a loaded machine: the timeouts are generous, and a test of a timeout shortens it."""
    with override_settings(
        KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(receiver.origin,),
        KIZUNA_WEBHOOK_TIMEOUT_SECONDS=15,
        KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS=15,
    ):
        yield receiver


def subscribe(account: SurveyAccount, url: str, events: list[str] | None = None):
    return services.create_endpoint(
        account=account, url=url, events=events or ["response.completed"], by=None
    )


def make_due() -> None:
    Delivery.objects.filter(status=WorkStatus.PENDING).update(next_attempt_at=timezone.now())


def test_delivery_retries_after_an_error_and_a_timeout_then_succeeds(local: Receiver, survey):
    endpoint, secret = subscribe(survey.portal.account, local.url())
    response = make_response(survey)
    [delivery] = services.publish_event(
        account=survey.portal.account,
        event_type="response.completed",
        payload=services.response_payload(response),
    )
    local.answer(Answer(status=500), Answer(delay_seconds=1.5), Answer(status=204))

    run_due_work(worker_id="test")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WorkStatus.PENDING, 1)
    assert delivery.next_attempt_at > timezone.now() + datetime.timedelta(seconds=20)
    assert run_due_work(worker_id="test") == 0  # not due yet

    make_due()
    with override_settings(KIZUNA_WEBHOOK_TIMEOUT_SECONDS=0.5):
        run_due_work(worker_id="test")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WorkStatus.PENDING, 2)
    assert "No answer within 0.5 seconds" in delivery.last_error

    make_due()
    run_due_work(worker_id="test")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WorkStatus.DONE, 3)

    attempts = list(delivery.attempts_made.order_by("attempted_at", "id"))
    assert [a.status_code for a in attempts] == [500, None, 204]
    assert "No answer within" in attempts[1].error
    assert attempts[1].duration_ms >= 400
    # Same message, same webhook-id on every attempt; each one verifies with the secret.
    assert len(local.requests) == 3
    assert {r.headers["webhook-id"] for r in local.requests} == {delivery.message_id}
    for request in local.requests:
        body = Webhook(secret).verify(request.body, request.headers)
        assert body["type"] == "response.completed"
        assert body["data"]["response_id"] == str(response.pk)
        assert request.headers["content-type"] == "application/json"
    assert endpoint.signing_secret() == secret


@pytest.mark.parametrize("status", [503, 404])
def test_a_receiver_failing_for_more_than_three_days_is_dead_lettered_only_then(
    local: Receiver, survey, monkeypatch, status: int
):
    subscribe(survey.portal.account, local.url())
    local.default = Answer(status=status)
    [delivery] = services.publish_event(
        account=survey.portal.account, event_type="response.completed", payload={"n": 1}
    )
    clock = {"now": delivery.created_at}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])

    while True:
        delivery.refresh_from_db()
        if delivery.status != WorkStatus.PENDING:
            break
        # Time travel: jump straight to the next attempt.
        clock["now"] = delivery.next_attempt_at
        run_due_work(worker_id="test")

    assert delivery.status == WorkStatus.FAILED
    assert delivery.attempts == delivery.max_attempts == 26
    assert delivery.finished_at is not None
    assert delivery.finished_at - delivery.created_at > HORIZON
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 26
    assert len(local.requests) == 26


def test_shortest_possible_retry_schedule_spans_more_than_three_days():
    row = Delivery()
    shortest = sum(
        min(
            row.retry_base_seconds * row.retry_factor ** (attempt - 1),
            row.retry_max_seconds,
        )
        * (1 - row.retry_jitter_ratio)
        for attempt in range(1, row.max_attempts)
    )
    assert datetime.timedelta(seconds=shortest) > HORIZON


def test_endpoint_answering_410_is_disabled_and_gets_no_more_events(local: Receiver, survey):
    account = survey.portal.account
    endpoint, _ = subscribe(account, local.url())
    first, second = (
        services.publish_event(account=account, event_type="response.completed", payload={})[0]
        for _ in range(2)
    )
    local.answer(Answer(status=410))

    run_due_work(worker_id="test")

    endpoint.refresh_from_db()
    first.refresh_from_db()
    second.refresh_from_db()
    assert endpoint.is_enabled is False
    assert "410" in endpoint.disabled_reason
    assert (first.status, first.attempts) == (WorkStatus.FAILED, 1)
    assert second.status == WorkStatus.FAILED
    assert len(local.requests) == 1
    assert (
        services.publish_event(account=account, event_type="response.completed", payload={}) == []
    )
    make_due()
    assert run_due_work(worker_id="test") == 0
    assert len(local.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 422, 429, 500, 502, 503])
def test_every_answer_but_2xx_and_410_is_retried_later(local, survey, status):
    endpoint, _ = subscribe(survey.portal.account, local.url())
    [delivery] = services.publish_event(
        account=survey.portal.account, event_type="response.completed", payload={}
    )
    local.answer(Answer(status=status))

    run_due_work(worker_id="test")

    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WorkStatus.PENDING, 1)
    assert delivery.last_error == f"HTTP {status}"
    assert delivery.finished_at is None
    assert delivery.next_attempt_at > timezone.now()
    assert endpoint.is_enabled is True


def test_a_receiver_answering_404_mid_deploy_gets_the_response_once_it_is_back(
    local: Receiver, survey
):
    subscribe(survey.portal.account, local.url())
    response = make_response(survey)
    [delivery] = services.publish_event(
        account=survey.portal.account,
        event_type="response.completed",
        payload=services.response_payload(response),
    )
    local.answer(Answer(status=404), Answer(status=404), Answer(status=200))

    for _ in range(3):
        make_due()
        run_due_work(worker_id="test")

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WorkStatus.DONE, 3)
    assert [a.status_code for a in delivery.attempts_made.order_by("attempted_at", "id")] == [
        404,
        404,
        200,
    ]
    assert len(local.requests) == 3
    assert {json.loads(r.body)["data"]["response_id"] for r in local.requests} == {str(response.pk)}


def test_delivery_to_a_url_that_now_resolves_privately_is_refused_at_connect_time(
    receiver: Receiver, survey
):
    # Created while allowed; the deployment then stopped allowing it.
    with override_settings(KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(receiver.origin,)):
        subscribe(survey.portal.account, receiver.url())
    [delivery] = services.publish_event(
        account=survey.portal.account, event_type="response.completed", payload={}
    )

    with override_settings(KIZUNA_WEBHOOK_ALLOWED_ORIGINS=()):
        run_due_work(worker_id="test")

    delivery.refresh_from_db()
    assert delivery.status == WorkStatus.PENDING
    assert "private or reserved address" in delivery.last_error
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.0.0.1/", "http://[::1]/"],
)
def test_endpoint_on_a_private_address_is_refused_at_creation(account, url):
    from django.core.exceptions import ValidationError

    with (
        override_settings(KIZUNA_WEBHOOK_ALLOWED_ORIGINS=("http://127.0.0.1:8000",)),
        pytest.raises(ValidationError) as refused,
    ):
        subscribe(account, url)
    assert "url" in refused.value.message_dict
    assert WebhookEndpoint.objects.count() == 0


def test_default_co_deployment_allows_its_own_url(account):
    from django.conf import settings

    own = settings.KIZUNA_BASE_URL + "/crm/integrations/survey/webhook/"
    endpoint, _ = subscribe(account, own)
    assert endpoint.url == own


def test_replay_sends_a_dead_delivery_again_with_the_same_webhook_id(local: Receiver, survey, ada):
    _, secret = subscribe(survey.portal.account, local.url())
    [delivery] = services.publish_event(
        account=survey.portal.account, event_type="response.completed", payload={"x": 1}
    )
    Delivery.objects.filter(pk=delivery.pk).update(max_attempts=1)  # its last chance
    local.answer(Answer(status=500), Answer(status=200))
    run_due_work(worker_id="test")
    delivery.refresh_from_db()
    assert delivery.status == WorkStatus.FAILED

    assert services.replay_delivery(delivery=delivery, by=ada) is True
    run_due_work(worker_id="test")

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WorkStatus.DONE, 2)
    assert [r.headers["webhook-id"] for r in local.requests] == [delivery.message_id] * 2
    assert Webhook(secret).verify(local.requests[1].body, local.requests[1].headers) == {
        "type": "response.completed",
        "timestamp": delivery.payload["timestamp"],
        "data": {"x": 1},
    }


def test_body_is_the_stored_envelope_as_compact_utf8_json(local: Receiver, survey):
    subscribe(survey.portal.account, local.url())
    payload: dict[str, Any] = {"text": "素晴らしい"}
    services.publish_event(
        account=survey.portal.account, event_type="response.completed", payload=payload
    )
    run_due_work(worker_id="test")

    [request] = local.requests
    assert "素晴らしい".encode() in request.body
    assert json.loads(request.body)["data"] == payload
