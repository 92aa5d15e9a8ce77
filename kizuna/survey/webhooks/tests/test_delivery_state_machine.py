"""Webhook delivery under any order of faults (issue 10, point 6): a Hypothesis state machine.

Responses are submitted (publish_event, as a submission does), endpoints go down (503),
hang past the timeout, answer 410 or come back, endpoints are added, workers claim rows,
send them with the real handler to a real HTTP receiver, renew their leases with their
heartbeat, are killed (before sending, or after the receiver got the request but before
it was recorded) and restarted, and time passes. Workers are played one step at a time
in this thread (leases.claim, leases.run_row, leases.renew, the heartbeat): the machine
chooses what each one does next, which a real process would leave to the scheduler.

The clock is the machine's (timezone.now is replaced): time passes in steps of at most
BEAT_SECONDS, in each of which the live workers beat and renew what they hold, as their
heartbeat thread does, and the worker's periodic probe of failing endpoints runs. A
killed worker beats no more: its rows come back once its heartbeat is older than
KIZUNA_WORKER_LEASE_SECONDS.

After every step:
- no row is held by two workers, and every row a live worker holds is leased to it and
  its lease has not run out (no row held past its lease by a live worker);
- every request the receiver got is correctly signed (Standard Webhooks, with the
  endpoint's secret and the machine's time), and carries a delivery of that endpoint
  with its own body: a second copy only with the same webhook-id.
At the end the endpoints answer again, the workers run until nothing is due, and every
delivery is done and received at least once, or dead-lettered (an endpoint that answered
410, or every attempt used): the counts add up.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from standardwebhooks import Webhook

from kizuna.lib import http as outbound
from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.work import leases
from kizuna.work.leases import WorkStatus
from kizuna.work.models import lease_seconds
from kizuna.work.workers import beat, register_worker

TIMEOUT_SECONDS = 0.2
HANG_SECONDS = 0.4
# Live workers beat (and renew what they hold) at least this often: within the 30 s after
# which a silent worker is dead, and the 120 s of a delivery's lease.
BEAT_SECONDS = 25.0
MODES = ("up", "down", "hang", "gone")
STATUS = {"up": 204, "down": 503, "gone": 410}


class ModalReceiver:
    """Answers each path as its mode says; keeps every request it read."""

    def __init__(self) -> None:
        self.modes: dict[str, str] = {}
        # path, headers, body, and the machine's time when it arrived
        self.requests: list[tuple[str, dict[str, str], bytes, datetime.datetime]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver.lock:
                    receiver.requests.append((self.path, headers, body, timezone.now()))
                    mode = receiver.modes.get(self.path, "up")
                if mode == "hang":
                    time.sleep(HANG_SECONDS)
                try:
                    self.send_response(STATUS.get(mode, 204))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def modal_receiver() -> Iterator[ModalReceiver]:
    receiver = ModalReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        with override_settings(
            KIZUNA_WEBHOOK_ALLOWED_ORIGINS=(receiver.origin,),
            KIZUNA_WEBHOOK_TIMEOUT_SECONDS=TIMEOUT_SECONDS,
            KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS=TIMEOUT_SECONDS,
        ):
            yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


class Clock:
    """The machine's time: timezone.now() while the machine runs."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


class DeliveryMachine(RuleBasedStateMachine):
    receiver: ModalReceiver
    clock: Clock
    accounts: list[SurveyAccount]

    def __init__(self) -> None:
        super().__init__()
        # Every example starts from the same database: its rows are rolled back at the end.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.registration = next(r for r in leases.registrations() if r.model is Delivery)
        self.endpoints: list[WebhookEndpoint] = []
        self.secrets: dict[str, str] = {}  # path -> signing secret
        self.hands: dict[str, list[Delivery]] = {}  # live worker -> rows claimed, not run
        self.dead: list[str] = []
        self.expected: dict[str, set[int]] = {}  # response id -> endpoints subscribed
        self.workers_started = 0
        self.receiver.requests.clear()
        self.receiver.modes.clear()
        for account in self.accounts:
            self._add_endpoint(account)
        self._restart()

    def teardown(self) -> None:
        try:
            self._drain_and_check()
        finally:
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

    # Helpers -------------------------------------------------------------------------------

    def _add_endpoint(self, account: SurveyAccount) -> None:
        path = f"/endpoint-{len(self.endpoints)}"
        endpoint, secret = services.create_endpoint(
            account=account,
            url=self.receiver.origin + path,
            events=["response.completed"],
            by=None,
        )
        self.endpoints.append(endpoint)
        self.secrets[path] = secret

    def _restart(self) -> None:
        self.workers_started += 1
        worker_id = f"worker-{self.workers_started}"
        register_worker(worker_id)
        self.hands[worker_id] = []

    def _beat_live_workers(self) -> None:
        for worker_id, hand in self.hands.items():
            beat(worker_id)
            leases.renew(Delivery, pks=[row.pk for row in hand], worker_id=worker_id)

    def _pass_time(self, seconds: float) -> None:
        while seconds > 0:
            step = min(seconds, BEAT_SECONDS)
            self.clock.now += datetime.timedelta(seconds=step)
            seconds -= step
            self._beat_live_workers()
            services.probe_failing_endpoints()

    def _run(self, worker_id: str) -> None:
        row = self.hands[worker_id].pop(0)
        leases.run_row(self.registration, row)

    # Rules ---------------------------------------------------------------------------------

    @rule(account=st.integers(0, 1))
    def submit(self, account: int) -> None:
        response_id = f"r-{len(self.expected)}"
        # Subscribed: every endpoint of the account, but those that answered 410.
        self.expected[response_id] = {
            endpoint.pk
            for endpoint in WebhookEndpoint.objects.filter(
                account=self.accounts[account], is_enabled=True
            )
        }
        with transaction.atomic():
            services.publish_event(
                account=self.accounts[account],
                event_type="response.completed",
                payload={"response_id": response_id},
            )

    @rule(endpoint=st.integers(0, 3), mode=st.sampled_from(MODES))
    def endpoint_answers(self, endpoint: int, mode: str) -> None:
        path = f"/endpoint-{endpoint % len(self.endpoints)}"
        with self.receiver.lock:
            self.receiver.modes[path] = mode

    @precondition(lambda self: len(self.endpoints) < 4)
    @rule(account=st.integers(0, 1))
    def add_endpoint(self, account: int) -> None:
        self._add_endpoint(self.accounts[account])

    @precondition(lambda self: bool(self.hands))
    @rule(data=st.data(), limit=st.integers(1, 3))
    def claim(self, data: st.DataObject, limit: int) -> None:
        worker_id = data.draw(st.sampled_from(sorted(self.hands)))
        self.hands[worker_id] += leases.claim(
            Delivery.objects.all(), worker_id=worker_id, limit=limit
        )

    @precondition(lambda self: any(self.hands.values()))
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        worker_id = data.draw(st.sampled_from(sorted(w for w, hand in self.hands.items() if hand)))
        self._run(worker_id)

    @precondition(lambda self: bool(self.hands))
    @rule(data=st.data(), after_sending=st.booleans())
    def kill_worker(self, data: st.DataObject, after_sending: bool) -> None:
        worker_id = data.draw(st.sampled_from(sorted(self.hands)))
        hand = self.hands.pop(worker_id)
        self.dead.append(worker_id)
        if after_sending and hand:
            # The receiver got it; the worker died before recording the answer.
            row = hand[0]
            endpoint = WebhookEndpoint.objects.get(pk=row.endpoint_id)
            body = json.dumps(row.payload, ensure_ascii=False, separators=(",", ":"))
            headers = services.signed_headers(
                secret=endpoint.signing_secret(),
                message_id=row.message_id,
                timestamp=timezone.now(),
                body=body,
            )
            with contextlib.suppress(outbound.OutboundError):
                outbound.post(
                    endpoint.url,
                    content=body.encode(),
                    headers=headers,
                    allowed_origins=(self.receiver.origin,),
                    timeout_seconds=TIMEOUT_SECONDS,
                )

    @precondition(lambda self: len(self.hands) < 3)
    @rule()
    def restart_worker(self) -> None:
        self._restart()

    @rule(seconds=st.sampled_from([1, 30, 130, 600]))
    def time_passes(self, seconds: float) -> None:
        """1 s: nothing runs out; 30 s: a dead worker's heartbeat is stale; 130 s: past a
        delivery's lease; 600 s: several retries fall due."""
        self._pass_time(seconds)

    # Invariants ----------------------------------------------------------------------------

    @invariant()
    def no_row_is_held_past_its_lease_or_by_two_workers(self) -> None:
        held = [row.pk for hand in self.hands.values() for row in hand]
        assert len(held) == len(set(held)), "a row in the hands of two workers"
        now = timezone.now()
        for worker_id, hand in self.hands.items():
            for row in Delivery.objects.filter(pk__in=[row.pk for row in hand]):
                assert (row.status, row.leased_by) == (WorkStatus.LEASED, worker_id)
                assert row.leased_until is not None and row.leased_until > now
        leased_to_live = Delivery.objects.filter(
            status=WorkStatus.LEASED, leased_by__in=list(self.hands)
        )
        assert set(leased_to_live.values_list("pk", flat=True)) == set(held)

    @invariant()
    def every_request_received_is_a_signed_delivery_of_its_endpoint(self) -> None:
        with self.receiver.lock:
            requests = list(self.receiver.requests)
        deliveries = {
            row.message_id: row
            for row in Delivery.objects.select_related("endpoint").filter(
                message_id__in=[request[1]["webhook-id"] for request in requests]
            )
        }
        for path, headers, body, received_at in requests:
            message_id = headers["webhook-id"]
            timestamp = datetime.datetime.fromtimestamp(
                int(headers["webhook-timestamp"]), datetime.UTC
            )
            signature = Webhook(self.secrets[path]).sign(message_id, timestamp, body.decode())
            assert headers["webhook-signature"] == signature
            # Signed when sent (the receiver's tolerance is about this time).
            assert 0 <= (received_at - timestamp).total_seconds() < 1
            delivery = deliveries[message_id]
            assert delivery.endpoint.url == self.receiver.origin + path
            assert json.loads(body) == delivery.payload

    # The end -------------------------------------------------------------------------------

    def _drain_and_check(self) -> None:
        with self.receiver.lock:
            self.receiver.modes.clear()  # every endpoint answers 204 again
        if not self.hands:
            self._restart()
        for worker_id in list(self.hands):
            while self.hands[worker_id]:
                self._run(worker_id)
        worker_id = next(iter(self.hands))
        unfinished = Delivery.objects.filter(status__in=[WorkStatus.PENDING, WorkStatus.LEASED])
        for _round in range(100):
            if not unfinished.exists():
                break
            self.hands[worker_id] += leases.claim(
                Delivery.objects.all(), worker_id=worker_id, limit=100
            )
            if self.hands[worker_id]:
                while self.hands[worker_id]:
                    self._run(worker_id)
                continue
            # Nothing due: let dead workers' heartbeats go stale, then wait for the back-off.
            self._pass_time(lease_seconds() + 1)
            waiting = unfinished.filter(status=WorkStatus.PENDING).order_by("next_attempt_at")
            first = waiting.first()
            if first is not None and first.next_attempt_at > self.clock.now:
                self.clock.now = first.next_attempt_at
                self._beat_live_workers()
        assert not unfinished.exists(), "deliveries still unfinished after the drain"

        rows = list(Delivery.objects.select_related("endpoint"))
        assert sorted(
            (row.payload["data"]["response_id"], row.endpoint_id) for row in rows
        ) == sorted(
            (response_id, endpoint)
            for response_id, endpoints in self.expected.items()
            for endpoint in endpoints
        ), "one delivery per response and subscribed endpoint"
        counts = Counter(row.status for row in rows)
        assert counts[WorkStatus.DONE] + counts[WorkStatus.FAILED] == len(rows)
        with self.receiver.lock:
            received = Counter(
                (path, headers["webhook-id"]) for path, headers, _b, _t in self.receiver.requests
            )
        for row in rows:
            path = row.endpoint.url.removeprefix(self.receiver.origin)
            if row.status == WorkStatus.DONE:
                assert received[(path, row.message_id)] >= 1
            else:
                assert not row.endpoint.is_enabled or row.attempts >= row.max_attempts
        for endpoint in WebhookEndpoint.objects.filter(is_enabled=False):
            assert endpoint.deliveries.filter(attempts_made__status_code=410).exists(), (
                "only a 410 disables an endpoint"
            )


@pytest.mark.django_db
def test_p6_every_response_is_delivered_signed_whatever_the_order_of_faults(
    modal_receiver: ModalReceiver,
    account: SurveyAccount,
    carol_account: SurveyAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    DeliveryMachine.receiver = modal_receiver
    DeliveryMachine.clock = clock
    DeliveryMachine.accounts = [account, carol_account]
    run_state_machine_as_test(
        DeliveryMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
