"""What an account relies on in the record of each webhook attempt, in publishing and in the
recovery of a failing endpoint (issue 14): the figures an administrator reads on an endpoint's
page, the reason an operator reads in the log, and the order a backlog is sent in.

Endpoints of Ada's account and of Carol's are in the database, so that a step reaching another
endpoint's deliveries shows. Deliveries go through the worker's claim and handler over real
sockets; no time is asserted, only the order of moments (an attempt starts before its request
arrives) and lower bounds the receiver guarantees (it waits before answering).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import socket
from collections.abc import Iterator

import pytest
from django.db import connection as database
from django.db import transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, DeliveryAttempt, WebhookEndpoint
from kizuna.testing.receiver import Answer, Receiver
from kizuna.work.leases import WorkStatus, claim

pytestmark = pytest.mark.django_db


@pytest.fixture
def unaccepting() -> Iterator[str]:
    """The origin of a server whose queue of connections is full: a new connection waits
    (its SYN is dropped) until the client gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    queued = []
    for _ in range(3):
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # it completes in the queue, unaccepted
            client.connect(address)
        queued.append(client)
    try:
        yield f"http://127.0.0.1:{address[1]}"
    finally:
        for client in queued:
            client.close()
        listener.close()


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


def reaching(origin: str, *, timeout: float = 30, connect: float = 30) -> override_settings:
    """Settings under which the worker may reach `origin` (on loopback), with these limits."""
    return override_settings(
        KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(origin,),
        KIZUNA_WEBHOOK_TIMEOUT_SECONDS=timeout,
        KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS=connect,
    )


def endpoints(origin: str, account: SurveyAccount, carol_account: SurveyAccount):
    """Ada's endpoints "a" and "b", Carol's "c", at paths of `origin`."""
    made = {}
    for name, owner in (("a", account), ("b", account), ("c", carol_account)):
        made[name], _secret = services.create_endpoint(
            account=owner, url=f"{origin}/{name}", events=["response.completed"], by=None
        )
    return made


def delivery(endpoint: WebhookEndpoint, label: str, *, minutes: float = 0) -> Delivery:
    return Delivery.objects.create(
        endpoint=endpoint,
        event_type="response.completed",
        payload={"data": {"label": label}},
        next_attempt_at=timezone.now() + datetime.timedelta(minutes=minutes),
    )


def send(row: Delivery) -> Delivery:
    """Claim `row` as the worker does and run the worker's handler on it."""
    [claimed] = claim(Delivery.objects.filter(pk=row.pk), worker_id="w")
    services.deliver(claimed)
    claimed.refresh_from_db()
    return claimed


def webhook_log(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (record.levelno, record.getMessage())
        for record in caplog.records
        if record.name == "kizuna.survey.webhooks.services"
    ]


# --- publishing ------------------------------------------------------------------------------


def test_publishing_in_a_submissions_transaction_costs_one_insert_and_no_savepoint(
    account: SurveyAccount, carol_account: SurveyAccount
):
    made = endpoints("https://93.184.215.14", account, carol_account)
    subscribed = services.subscribed_endpoints(account=account, event_type="response.completed")

    with transaction.atomic(), CaptureQueriesContext(database) as queries:
        published = services.publish_event(
            account=account,
            event_type="response.completed",
            payload={"response_id": "r-1"},
            endpoints=subscribed,
        )

    statements = [
        query["sql"].split()[0].upper()
        for query in queries.captured_queries
        if "pg_notify" not in query["sql"]  # the workers' wake-up on PostgreSQL
    ]
    assert statements == ["INSERT"]
    assert sorted(d.endpoint_id for d in published) == sorted([made["a"].pk, made["b"].pk])


def test_a_published_delivery_is_created_and_due_at_the_moment_its_event_is_stamped_with(
    account: SurveyAccount, carol_account: SurveyAccount
):
    endpoints("https://93.184.215.14", account, carol_account)

    services.publish_event(
        account=account, event_type="response.completed", payload={"response_id": "r-1"}
    )

    rows = list(Delivery.objects.order_by("pk"))
    assert len(rows) == 2
    for row in rows:
        # "Send again since" (created_at) and the event's webhook timestamp agree, and it is
        # due at once.
        assert row.next_attempt_at == row.created_at
        assert row.payload["timestamp"] == services.iso_time(row.created_at)


# --- endpoints -------------------------------------------------------------------------------


def test_an_endpoint_asking_for_unknown_events_is_refused_naming_each_of_them(
    client: Client, ada_sc_headers, account: SurveyAccount, carol_account: SurveyAccount
):
    endpoints("https://93.184.215.14", account, carol_account)

    response = client.post(
        "/survey/api/v1/webhooks",
        {
            "url": "https://93.184.215.14/new",
            "events": ["response.completed", "survey.deleted", "response.created"],
        },
        content_type="application/json",
        **ada_sc_headers,
    )

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {
        "events": ["Unknown events: response.created, survey.deleted."]
    }
    assert WebhookEndpoint.objects.count() == 3


# --- the attempt's record --------------------------------------------------------------------


def test_an_accepted_attempt_records_when_it_started_and_how_long_the_endpoint_took(
    receiver: Receiver, account: SurveyAccount, carol_account: SurveyAccount
):
    receiver.default = Answer(delay_seconds=0.3)
    with reaching(receiver.origin):
        made = endpoints(receiver.origin, account, carol_account)
        row = delivery(made["a"], "a-now")

        sent = send(row)

    assert (sent.status, sent.attempts) == (WorkStatus.DONE, 1)
    [attempt] = DeliveryAttempt.objects.filter(delivery=sent)
    [arrived] = [request.received_at for request in receiver.requests]
    assert attempt.status_code == 200
    assert attempt.attempted_at < arrived  # when it was sent, not when the answer came
    assert attempt.duration_ms >= 300  # the receiver waited 0.3 s before answering


def test_an_attempt_that_timed_out_records_when_it_started_and_is_tried_again(
    receiver: Receiver,
    account: SurveyAccount,
    carol_account: SurveyAccount,
    caplog: pytest.LogCaptureFixture,
):
    receiver.default = Answer(delay_seconds=3)
    caplog.set_level(logging.INFO)
    with reaching(receiver.origin, timeout=0.5, connect=0.5):
        made = endpoints(receiver.origin, account, carol_account)
        row = delivery(made["a"], "a-now")

        sent = send(row)

    reason = "No answer within 0.5 seconds (ReadTimeout)."
    assert (sent.status, sent.attempts, sent.last_error) == (WorkStatus.PENDING, 1, reason)
    [attempt] = DeliveryAttempt.objects.filter(delivery=sent)
    [arrived] = [request.received_at for request in receiver.requests]
    assert (attempt.status_code, attempt.error) == (None, reason)
    assert attempt.attempted_at < arrived  # when it was sent, not when it gave up
    assert attempt.duration_ms >= 500
    assert webhook_log(caplog) == [
        (
            logging.WARNING,
            f"Webhook delivery {row.pk} to endpoint {made['a'].pk} ({receiver.origin}) failed on "
            f"attempt 1: {reason}; will retry",
        )
    ]


def test_an_endpoint_that_accepts_no_connection_is_given_up_at_the_connect_timeout(
    unaccepting: str,
    account: SurveyAccount,
    carol_account: SurveyAccount,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO)
    with reaching(unaccepting, timeout=60, connect=0.3):
        made = endpoints(unaccepting, account, carol_account)
        row = delivery(made["a"], "a-now")

        sent = send(row)

    reason = "No connection within 0.3 seconds."
    assert (sent.status, sent.attempts, sent.last_error) == (WorkStatus.PENDING, 1, reason)
    assert list(DeliveryAttempt.objects.values_list("delivery_id", "error")) == [(row.pk, reason)]
    assert webhook_log(caplog) == [
        (
            logging.WARNING,
            f"Webhook delivery {row.pk} to endpoint {made['a'].pk} ({unaccepting}) failed on "
            f"attempt 1: {reason}; will retry",
        )
    ]
    assert WebhookEndpoint.objects.exclude(failing_since=None).get() == made["a"]


# --- recovery --------------------------------------------------------------------------------


def test_after_an_outage_the_backlog_is_sent_in_the_order_it_fell_due_overdue_first(
    receiver: Receiver, account: SurveyAccount, carol_account: SurveyAccount
):
    with reaching(receiver.origin):
        made = endpoints(receiver.origin, account, carol_account)
        a, c = made["a"], made["c"]
        long_ago = timezone.now() - datetime.timedelta(hours=2)
        WebhookEndpoint.objects.update(failing_since=long_ago, last_failed_at=long_ago)
        delivery(a, "a-waiting", minutes=60)
        overdue = delivery(a, "a-overdue", minutes=-10)  # due, not claimed yet: a busy worker
        delivery(c, "c-waiting", minutes=60)
        probe = delivery(a, "a-probe", minutes=-20)

        assert send(probe).status == WorkStatus.DONE

    now = timezone.now()
    waiting = Delivery.objects.filter(status=WorkStatus.PENDING).order_by("next_attempt_at", "pk")
    assert [(d.payload["data"]["label"], d.next_attempt_at <= now) for d in waiting] == [
        ("a-overdue", True),
        ("a-waiting", True),
        ("c-waiting", False),
    ]
    assert Delivery.objects.get(pk=overdue.pk).next_attempt_at == overdue.next_attempt_at
