"""Fast recovery and visible failures (issue 10, points 4 and 5).

An endpoint that answers 2xx again gets its waiting deliveries at once; a failing
endpoint is probed once a minute meanwhile; administrators retry all failed
deliveries or resend everything since a moment (Settings > Webhooks and the API);
every failed attempt is logged at WARNING with the origin, never the URL.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone, translation

from kizuna.survey.audit.models import AuditAction, AuditEntry
from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.testing.receiver import Answer, Receiver
from kizuna.work.leases import WorkStatus, run_due_work

pytestmark = pytest.mark.django_db

TOKEN_PATH = "/hooks/secret-token-123"


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def local(receiver: Receiver) -> Iterator[Receiver]:
    with override_settings(
        KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(receiver.origin,),
        KIZUNA_WEBHOOK_TIMEOUT_SECONDS=15,
        KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS=15,
    ):
        yield receiver


@pytest.fixture
def endpoints(local: Receiver, account: SurveyAccount, carol_account: SurveyAccount):
    """Ada's endpoints "a" and "b" and Carol's "c", each at its own path of the receiver."""
    made = {}
    for name, owner in (("a", account), ("b", account), ("c", carol_account)):
        made[name], _secret = services.create_endpoint(
            account=owner,
            url=local.url(f"/{name}{TOKEN_PATH}"),
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
    """A delivery that failed before and waits for its next attempt `hours` from now."""
    return delivery(
        endpoint,
        label,
        attempts=5,
        last_error="HTTP 503",
        next_attempt_at=timezone.now() + datetime.timedelta(hours=hours),
    )


def dead(endpoint: WebhookEndpoint, label: str, **fields: Any) -> Delivery:
    return delivery(
        endpoint,
        label,
        status=WorkStatus.FAILED,
        attempts=26,
        finished_at=timezone.now(),
        last_error="HTTP 503",
        **fields,
    )


def done(endpoint: WebhookEndpoint, label: str, **fields: Any) -> Delivery:
    return delivery(
        endpoint, label, status=WorkStatus.DONE, attempts=1, finished_at=timezone.now(), **fields
    )


def states() -> dict[str, tuple[str, bool]]:
    """label: (status, due now)."""
    now = timezone.now()
    return {
        d.payload["data"]["label"]: (d.status, d.next_attempt_at <= now)
        for d in Delivery.objects.order_by("pk")
    }


def failing(endpoint: WebhookEndpoint, minutes: float = 60) -> None:
    since = timezone.now() - datetime.timedelta(minutes=minutes)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=since, last_failed_at=since)


def run_all() -> None:
    while run_due_work(worker_id="w"):
        pass


# --- point 4: recovery -------------------------------------------------------------------------


def test_p4_an_endpoint_answering_2xx_again_gets_its_waiting_deliveries_at_once(local, endpoints):
    a, b, c = endpoints["a"], endpoints["b"], endpoints["c"]
    for name, endpoint in endpoints.items():
        failing(endpoint)
        waiting(endpoint, f"{name}-waiting")
    delivery(a, "a-new")  # a fresh event, sent at once: it finds "a" working again

    run_all()

    assert states() == {
        "a-waiting": (WorkStatus.DONE, True),
        "b-waiting": (WorkStatus.PENDING, False),
        "c-waiting": (WorkStatus.PENDING, False),
        "a-new": (WorkStatus.DONE, True),
    }
    assert {e.pk: e.failing_since is None for e in WebhookEndpoint.objects.all()} == {
        a.pk: True,
        b.pk: False,
        c.pk: False,
    }


def test_p4_a_success_between_recent_failures_leaves_the_others_to_their_back_off(local, endpoints):
    a = endpoints["a"]
    failing(a, minutes=0.2)  # one delivery refused seconds ago, the endpoint is up
    waiting(a, "a-refused")
    delivery(a, "a-new")

    run_all()

    assert states() == {"a-refused": (WorkStatus.PENDING, False), "a-new": (WorkStatus.DONE, True)}
    assert WebhookEndpoint.objects.get(pk=a.pk).failing_since is None


def test_p4_a_failing_endpoint_is_probed_with_one_delivery_once_a_minute(endpoints):
    a, b, c = endpoints["a"], endpoints["b"], endpoints["c"]
    failing(a)
    waiting(a, "a-first", hours=1)
    waiting(a, "a-second", hours=2)
    failing(b, minutes=0.5)  # failed half a minute ago: too soon to probe
    waiting(b, "b-waiting")
    waiting(c, "c-healthy")  # not failing: its own schedule

    assert services.probe_failing_endpoints() == 1

    assert states() == {
        "a-first": (WorkStatus.PENDING, True),
        "a-second": (WorkStatus.PENDING, False),
        "b-waiting": (WorkStatus.PENDING, False),
        "c-healthy": (WorkStatus.PENDING, False),
    }
    # The probe is due: nothing more until it has been tried.
    assert services.probe_failing_endpoints() == 0


def test_p4_an_endpoint_still_down_is_probed_again_only_after_a_minute(local, endpoints):
    a = endpoints["a"]
    failing(a)
    waiting(a, "a-first")
    waiting(a, "a-second", hours=2)
    local.default = Answer(status=503)

    assert services.probe_failing_endpoints() == 1
    run_all()

    assert states()["a-first"] == (WorkStatus.PENDING, False)
    assert services.probe_failing_endpoints() == 0
    failing(a, minutes=1.5)
    assert services.probe_failing_endpoints() == 1


def test_p4_a_failure_marks_the_endpoint_failing_and_keeps_when_it_started(local, endpoints):
    a, b = endpoints["a"], endpoints["b"]
    delivery(a, "a1")
    local.default = Answer(status=500)

    run_all()
    first = WebhookEndpoint.objects.get(pk=a.pk)
    delivery(a, "a2")
    run_all()
    second = WebhookEndpoint.objects.get(pk=a.pk)

    assert first.failing_since is not None
    assert second.failing_since == first.failing_since
    assert second.last_failed_at is not None and first.last_failed_at is not None
    assert second.last_failed_at > first.last_failed_at
    assert WebhookEndpoint.objects.get(pk=b.pk).failing_since is None


def retry_url(endpoint: WebhookEndpoint) -> str:
    return reverse("survey:survey_webhooks:endpoint-retry-failed", args=[endpoint.pk])


def resend_url(endpoint: WebhookEndpoint) -> str:
    return reverse("survey:survey_webhooks:endpoint-resend", args=[endpoint.pk])


def test_p4_retrying_all_failed_sends_that_endpoints_dead_letters_again(
    ada_client: Client, endpoints, ada
):
    a, b, c = endpoints["a"], endpoints["b"], endpoints["c"]
    dead(a, "a-dead-1")
    dead(a, "a-dead-2")
    done(a, "a-done")
    dead(b, "b-dead")
    dead(c, "c-dead")

    page = ada_client.post(retry_url(a), follow=True)

    assert "2 failed deliveries will be sent again in a moment." in page.content.decode()
    assert states() == {
        "a-dead-1": (WorkStatus.PENDING, True),
        "a-dead-2": (WorkStatus.PENDING, True),
        "a-done": (WorkStatus.DONE, True),
        "b-dead": (WorkStatus.FAILED, True),
        "c-dead": (WorkStatus.FAILED, True),
    }
    retried = Delivery.objects.get(payload__data__label="a-dead-1")
    assert (retried.max_attempts, retried.finished_at) == (26 + 26, None)
    entry = AuditEntry.objects.get(action=AuditAction.WEBHOOK_FAILED_RETRIED)
    assert (entry.actor, entry.account_id, entry.data) == (ada, a.account_id, {"count": 2})


def test_p4_resending_since_a_moment_sends_that_endpoints_deliveries_since_then_again(
    ada_client: Client, endpoints
):
    a, b = endpoints["a"], endpoints["b"]
    now = timezone.now()
    before, after = now - datetime.timedelta(hours=3), now - datetime.timedelta(hours=1)
    done(a, "a-old", created_at=before)
    done(a, "a-recent", created_at=after)
    dead(a, "a-recent-dead", created_at=after)
    delivery(a, "a-sending", status=WorkStatus.LEASED, attempts=1, created_at=after)
    done(b, "b-recent", created_at=after)
    since = timezone.localtime(now - datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")

    page = ada_client.post(resend_url(a), {"since": since}, follow=True)

    assert "2 deliveries will be sent again in a moment." in page.content.decode()
    assert states() == {
        "a-old": (WorkStatus.DONE, True),
        "a-recent": (WorkStatus.PENDING, True),
        "a-recent-dead": (WorkStatus.PENDING, True),
        "a-sending": (WorkStatus.LEASED, True),
        "b-recent": (WorkStatus.DONE, True),
    }
    entry = AuditEntry.objects.get(action=AuditAction.WEBHOOK_DELIVERIES_RESENT)
    assert entry.data["count"] == 2


def test_p4_resending_without_a_time_changes_nothing(ada_client: Client, endpoints):
    done(endpoints["a"], "a-done")

    page = ada_client.post(resend_url(endpoints["a"]), {"since": "yesterday"}, follow=True)

    assert "Enter the date and time to send again from." in page.content.decode()
    assert states() == {"a-done": (WorkStatus.DONE, True)}


def test_p4_only_administrators_of_the_account_may_retry_or_resend(
    bob_client: Client, carol_client: Client, charlie_client: Client, endpoints
):
    a = endpoints["a"]
    dead(a, "a-dead")
    since = {"since": "2020-01-01T00:00"}

    assert bob_client.post(retry_url(a)).status_code == 403
    assert bob_client.post(resend_url(a), since).status_code == 403
    assert carol_client.post(retry_url(a)).status_code == 404
    assert carol_client.post(resend_url(a), since).status_code == 404
    assert charlie_client.post(retry_url(a)).status_code == 404
    assert states() == {"a-dead": (WorkStatus.FAILED, True)}
    assert not AuditEntry.objects.filter(
        action__in=[AuditAction.WEBHOOK_FAILED_RETRIED, AuditAction.WEBHOOK_DELIVERIES_RESENT]
    ).exists()


def test_p4_the_api_retries_failed_and_resends_since_for_its_own_account_only(
    endpoints, ada_sc_headers, carol_sc_headers, client: Client
):
    a, c = endpoints["a"], endpoints["c"]
    dead(a, "a-dead")
    done(a, "a-done", created_at=timezone.now() - datetime.timedelta(minutes=5))
    dead(c, "c-dead")
    base = f"/survey/api/v1/webhooks/{a.pk}"

    retried = client.post(f"{base}/retry-failed", **ada_sc_headers)
    resent = client.post(
        f"{base}/resend",
        {"since": (timezone.now() - datetime.timedelta(hours=1)).isoformat()},
        content_type="application/json",
        **ada_sc_headers,
    )
    other = client.post(f"{base}/retry-failed", **carol_sc_headers)

    assert (retried.status_code, retried.json()) == (200, {"count": 1})
    assert (resent.status_code, resent.json()) == (200, {"count": 2})
    assert other.status_code == 404
    assert states() == {
        "a-dead": (WorkStatus.PENDING, True),
        "a-done": (WorkStatus.PENDING, True),
        "c-dead": (WorkStatus.FAILED, True),
    }


def test_p4_a_disabled_endpoint_is_enabled_before_its_deliveries_are_sent_again(
    ada_client: Client, endpoints, ada_sc_headers, client: Client
):
    a = endpoints["a"]
    dead(a, "a-dead")
    services.disable_endpoint(endpoint=a, reason="410")

    page = ada_client.post(retry_url(a), follow=True)
    api = client.post(f"/survey/api/v1/webhooks/{a.pk}/retry-failed", **ada_sc_headers)

    assert "Enable the endpoint before replaying its deliveries." in page.content.decode()
    assert api.status_code == 422
    assert states() == {"a-dead": (WorkStatus.FAILED, True)}


# --- point 5: visible failures -----------------------------------------------------------------


def test_p5_every_failed_attempt_is_logged_at_warning_with_the_origin_never_the_url(
    local, endpoints, caplog
):
    a = endpoints["a"]
    delivery(a, "a-500")
    local.answer(Answer(status=500))
    caplog.set_level(logging.INFO)

    run_all()
    d = Delivery.objects.get()

    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "kizuna" in r.name
    ]
    assert warnings == [
        f"Webhook delivery {d.pk} to endpoint {a.pk} ({local.origin}) failed on attempt 1: "
        "HTTP 500; will retry"
    ]
    assert not [r for r in caplog.records if "secret-token" in r.getMessage()]


def test_p5_a_refused_connection_is_logged_too(endpoints, caplog, settings):
    settings.KIZUNA_WEBHOOK_ALLOWED_ORIGINS = ("http://127.0.0.1:9",)
    endpoint, _secret = services.create_endpoint(
        account=endpoints["a"].account,
        url="http://127.0.0.1:9/x/token",
        events=["response.completed"],
        by=None,
    )
    delivery(endpoint, "refused")

    run_all()

    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING and "webhooks" in r.name]
    assert (
        f"to endpoint {endpoint.pk} (http://127.0.0.1:9) failed on attempt 1"
        in warning.getMessage()
    )
    assert "token" not in warning.getMessage()


def test_p5_settings_show_a_warning_for_an_endpoint_that_keeps_failing(
    ada_client: Client, endpoints
):
    failing(endpoints["a"])

    listing = ada_client.get(reverse("survey:survey_webhooks:endpoints")).content.decode()
    detail = ada_client.get(
        reverse("survey:survey_webhooks:endpoint", args=[endpoints["a"].pk])
    ).content.decode()
    healthy = ada_client.get(
        reverse("survey:survey_webhooks:endpoint", args=[endpoints["b"].pk])
    ).content.decode()

    assert listing.count("badge webhook-failing") == 1
    assert "This endpoint has been failing since" in detail
    assert "This endpoint has been failing since" not in healthy


def test_p5_the_settings_warning_is_in_japanese_too(ada_client: Client, endpoints):
    failing(endpoints["a"])

    detail = ada_client.get(
        reverse("survey:survey_webhooks:endpoint", args=[endpoints["a"].pk]),
        headers={"accept-language": "ja"},
    ).content.decode()

    assert "このエンドポイントへの送信は" in detail
    assert "すべて再試行" in detail
