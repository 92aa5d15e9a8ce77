"""The fault suite of webhook delivery (issue 10, point 6): real workers, real receivers.

`kizuna worker` processes run against the PostgreSQL test database; receivers are
HTTP servers in this process that verify every request with `standardwebhooks`
(signature and a 5-minute timestamp tolerance, with their own clock). After each
fault, `assert_accounted_for` checks the promises of DESIGN §3: every event
accepted by its endpoint at least once, duplicates only with the same webhook-id,
nothing accepted that the database does not list, every row done or refused
(dead-lettered), and the counts add up. Back-off is hours long: once a fault is
over, a test moves waiting retries to now ("time passes") instead of sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import Popen

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook

from kizuna.survey.models import SurveyAccount
from kizuna.survey.webhooks import services
from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
from kizuna.testing.processes import (
    database_url,
    free_port,
    kizuna_env,
    start_kizuna,
    stop,
    wait_for,
)
from kizuna.testing.races import require_postgresql
from kizuna.work.leases import WorkStatus
from kizuna.work.models import WorkerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 2
TIMEOUT_SECONDS = 2


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    require_postgresql("real worker processes racing need PostgreSQL")


class Receiver:
    """An endpoint host: per path a behaviour ("ok", "500", "410", "hang"), verified requests."""

    def __init__(self, port: int = 0) -> None:
        self.behaviour: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.skew_seconds = 0.0
        self.accepted: dict[str, Counter[str]] = {}
        self.refused: Counter[str] = Counter()
        self.in_flight = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.in_flight += 1
                try:
                    status = receiver.handle(self.path, dict(self.headers), body)
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up (timeout)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def verify(self, path: str, headers: dict[str, str], body: bytes) -> str:
        """The webhook-id of a request signed with the path's secret, at our clock's time."""
        lowered = {name.lower(): value for name, value in headers.items()}
        if self.skew_seconds:
            # Webhook.verify() reads the real clock: check the time ourselves, then the rest.
            sent = int(lowered["webhook-timestamp"])
            if abs(time.time() + self.skew_seconds - sent) > 5 * 60:
                raise ValueError("timestamp outside the tolerance")
            key = base64.b64decode(self.secrets[path].removeprefix("whsec_"))
            signed = f"{lowered['webhook-id']}.{sent}.".encode() + body
            expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            if f"v1,{expected}" not in lowered["webhook-signature"].split():
                raise ValueError("bad signature")
        else:
            Webhook(self.secrets[path]).verify(body, lowered)
        json.loads(body)
        return lowered["webhook-id"]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        behaviour = self.behaviour.get(path, "ok")
        if behaviour == "hang":
            time.sleep(TIMEOUT_SECONDS + 1.5)
            return 204
        if behaviour in {"500", "410"}:
            return int(behaviour)
        try:
            message_id = self.verify(path, headers, body)
        except Exception:
            with self.lock:
                self.refused[path] += 1
            return 400
        if behaviour == "slow":
            time.sleep(1.0)
        with self.lock:
            self.accepted.setdefault(path, Counter())[message_id] += 1
        return 204

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    made = Receiver()
    settings.KIZUNA_WEBHOOK_ALLOWED_ORIGINS = (made.origin,)
    try:
        yield made
    finally:
        made.close()


class Workers:
    def __init__(self, tmp_path: Path, origins: list[str]) -> None:
        self.tmp_path = tmp_path
        self.origins = origins
        self.processes: dict[str, Popen[bytes]] = {}
        self.log = tmp_path / "workers.log"

    def start(self, name: str, *, concurrency: int = 4) -> Popen[bytes]:
        env = kizuna_env(
            self.tmp_path,
            DATABASE_URL=f"{database_url()}?application_name={name}",
            KIZUNA_WORKER_LEASE_SECONDS=str(LEASE_SECONDS),
            KIZUNA_WEBHOOK_ALLOWED_ORIGINS=",".join(self.origins),
            KIZUNA_WEBHOOK_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
            KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
        )
        process = start_kizuna(
            ["worker", "--interval", "0.1", "--worker-id", name, "--concurrency", str(concurrency)],
            env,
            self.log,
        )
        self.processes[name] = process
        wait_for(
            lambda: WorkerProcess.objects.filter(worker_id=name).exists(),
            timeout=60,
            message=f"worker {name} registered",
        )
        return process

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                assert stop(process, timeout=30) == 0


@pytest.fixture
def workers(tmp_path: Path, receiver: Receiver) -> Iterator[Workers]:
    made = Workers(tmp_path, [receiver.origin])
    try:
        yield made
    finally:
        for process in made.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def endpoint(receiver: Receiver, account: SurveyAccount, path: str) -> WebhookEndpoint:
    made, secret = services.create_endpoint(
        account=account, url=receiver.origin + path, events=["response.completed"], by=None
    )
    receiver.secrets[path] = secret
    return made


def publish(account: SurveyAccount, count: int) -> None:
    for number in range(count):
        services.publish_event(
            account=account, event_type="response.completed", payload={"n": number}
        )


def time_passes() -> None:
    """Waiting retries fall due now, as they would after their back-off."""
    Delivery.objects.filter(status=WorkStatus.PENDING).update(next_attempt_at=timezone.now())


def all_finished() -> bool:
    return not Delivery.objects.filter(status__in=[WorkStatus.PENDING, WorkStatus.LEASED]).exists()


def finish(*, timeout: float = 60) -> None:
    """Wait until every row is done or refused, letting time pass for retries."""
    deadline = time.monotonic() + timeout
    while not all_finished():
        assert time.monotonic() < deadline, "rows left unfinished"
        time_passes()
        time.sleep(0.3)


def assert_accounted_for(
    receiver: Receiver, *, refused_paths: frozenset[str] = frozenset()
) -> Counter[str]:
    """The promises of DESIGN §3; returns the duplicates (webhook-id: extra copies)."""
    duplicates: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for endpoint in WebhookEndpoint.objects.all():
        path = endpoint.url.removeprefix(receiver.origin)
        deliveries = list(Delivery.objects.filter(endpoint=endpoint))
        accepted = receiver.accepted.get(path, Counter())
        done = {d.message_id for d in deliveries if d.status == WorkStatus.DONE}
        statuses.update(d.status for d in deliveries)
        if path in refused_paths:
            assert {d.status for d in deliveries} <= {WorkStatus.FAILED}, path
            assert not accepted, path
            continue
        # Every event accepted at least once, and only events the database lists.
        assert set(accepted) == done == {d.message_id for d in deliveries}, path
        duplicates.update({m: n - 1 for m, n in accepted.items() if n > 1})
    assert set(statuses) <= {WorkStatus.DONE, WorkStatus.FAILED}
    assert sum(statuses.values()) == Delivery.objects.count()
    return duplicates


# --- the faults ---------------------------------------------------------------------------------


def test_p6_a_worker_killed_mid_delivery_loses_nothing_and_repeats_only_what_it_held(
    receiver: Receiver, workers: Workers, account: SurveyAccount, carol_account: SurveyAccount
):
    endpoint(receiver, account, "/a")
    endpoint(receiver, carol_account, "/b")
    receiver.behaviour["/a"] = receiver.behaviour["/b"] = "slow"
    publish(account, 10)
    publish(carol_account, 10)

    workers.start("victim")
    wait_for(lambda: receiver.in_flight >= 2, timeout=30, message="the victim is sending")
    workers.kill("victim")
    workers.start("survivor")
    finish()

    duplicates = assert_accounted_for(receiver)
    # Only what the victim had in hand (4 threads) can arrive twice, with its webhook-id.
    assert sum(duplicates.values()) <= 4
    assert set(Delivery.objects.filter(attempts__gt=1).values_list("leased_by", flat=True)) <= {
        "survivor"
    }
    workers.stop_all()


def test_p6_two_workers_racing_send_every_delivery_exactly_once(
    receiver: Receiver, workers: Workers, account: SurveyAccount, carol_account: SurveyAccount
):
    endpoint(receiver, account, "/a")
    endpoint(receiver, carol_account, "/b")
    publish(account, 30)
    publish(carol_account, 30)

    workers.start("one")
    workers.start("two")
    finish()

    assert assert_accounted_for(receiver) == Counter()
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
    workers.stop_all()


def test_p6_receivers_down_failing_and_hanging_get_everything_once_they_recover(
    receiver: Receiver,
    workers: Workers,
    account: SurveyAccount,
    carol_account: SurveyAccount,
    settings,
):
    down_port = free_port()
    settings.KIZUNA_WEBHOOK_ALLOWED_ORIGINS += (f"http://127.0.0.1:{down_port}",)
    endpoint(receiver, account, "/failing")
    endpoint(receiver, account, "/hanging")
    endpoint(receiver, carol_account, "/healthy")
    down, down_secret = services.create_endpoint(
        account=carol_account,
        url=f"http://127.0.0.1:{down_port}/down",
        events=["response.completed"],
        by=None,
    )
    workers.origins.append(f"http://127.0.0.1:{down_port}")
    receiver.behaviour.update({"/failing": "500", "/hanging": "hang"})
    publish(account, 5)
    publish(carol_account, 5)

    workers.start("worker")
    wait_for(
        lambda: (
            not Delivery.objects.filter(attempts=0).exists()
            and len(receiver.accepted.get("/healthy", ())) == 5
        ),
        timeout=60,
        message="every delivery tried once, the healthy endpoint served",
    )
    failing = set(WebhookEndpoint.objects.exclude(failing_since=None).values_list("url", flat=True))
    assert failing == {
        receiver.origin + "/failing",
        receiver.origin + "/hanging",
        f"http://127.0.0.1:{down_port}/down",
    }

    receiver.behaviour.clear()
    back = Receiver(port=down_port)
    back.secrets["/down"] = down_secret
    try:
        finish()
        assert len(back.accepted["/down"]) == 5
        assert set(back.accepted["/down"]) == set(
            Delivery.objects.filter(endpoint=down).values_list("message_id", flat=True)
        )
    finally:
        back.close()
    Delivery.objects.filter(endpoint=down).delete()
    down.delete()
    assert_accounted_for(receiver)
    assert not WebhookEndpoint.objects.exclude(failing_since=None).exists()
    workers.stop_all()


def test_p6_database_connections_cut_mid_batch_lose_nothing(
    receiver: Receiver, workers: Workers, account: SurveyAccount
):
    endpoint(receiver, account, "/a")
    receiver.behaviour["/a"] = "slow"
    publish(account, 12)

    workers.start("worker")
    wait_for(lambda: receiver.in_flight >= 1, timeout=30, message="the worker is sending")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    receiver.behaviour.clear()
    finish()

    assert_accounted_for(receiver)
    assert workers.processes["worker"].poll() is None  # the worker lived through it
    workers.stop_all()


def test_p6_an_endpoint_answering_410_stops_only_its_own_deliveries(
    receiver: Receiver, workers: Workers, account: SurveyAccount, carol_account: SurveyAccount
):
    gone = endpoint(receiver, account, "/gone")
    endpoint(receiver, carol_account, "/kept")
    receiver.behaviour["/gone"] = "410"
    publish(account, 6)
    publish(carol_account, 6)

    workers.start("worker")
    finish()

    assert_accounted_for(receiver, refused_paths=frozenset({"/gone"}))
    assert not WebhookEndpoint.objects.get(pk=gone.pk).is_enabled
    assert set(
        WebhookEndpoint.objects.exclude(pk=gone.pk).values_list("is_enabled", flat=True)
    ) == {True}
    workers.stop_all()


def test_p6_a_receiver_whose_clock_is_off_by_more_than_5_minutes_gets_everything_once_fixed(
    receiver: Receiver, workers: Workers, account: SurveyAccount
):
    endpoint(receiver, account, "/skewed")
    receiver.skew_seconds = 6 * 60
    publish(account, 4)

    workers.start("worker")
    wait_for(
        lambda: (
            set(Delivery.objects.values_list("status", "last_error"))
            == {(WorkStatus.PENDING, "HTTP 400")}
        ),
        timeout=30,
        message="every request refused for its timestamp, and waiting to be tried again",
    )
    assert receiver.refused["/skewed"] == 4
    assert WebhookEndpoint.objects.get().failing_since is not None

    receiver.skew_seconds = 0
    finish()

    assert assert_accounted_for(receiver) == Counter()
    workers.stop_all()
