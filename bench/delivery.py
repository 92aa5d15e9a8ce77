"""Webhook delivery (issue 10, P2): latency on commit, isolation, drain rate, recovery.

One real `kizuna worker` process (default --concurrency 8) on a fresh PostgreSQL
database; receivers are HTTP servers in this process that verify every request
with the `standardwebhooks` package and note when it arrived. Events are written
by `publish_event()` in a transaction of this process (what a submitted response
does); "latency" is from that commit to the receiver reading the request.

1. P2-delivery-p50-ms / -p99-ms: a steady 50 events/s to a healthy endpoint.
   Baseline: the same POST sent straight from this process to the receiver
   (the floor: HTTP on loopback and signature verification).
2. P2-isolation-p99-s: the same, while another account's endpoint hangs past the
   timeout (3 s, timeout 2 s) on every request and gets as many events.
   Baseline: the healthy endpoint's p99 of run 1.
3. P2-drain-per-second: N events queued while no worker runs, then one worker
   sends them to one fast endpoint (the CRM's intake is one endpoint per account).
   Baseline: the same worker with lending off (`lanes.FAST_SECONDS = 0`: one
   endpoint gets its quarter of the lane, as before); the note also gives 4 endpoints.
4. P2-recovery-seconds: an endpoint down for an hour (simulated: its deliveries
   carry the attempts and back-off of an hour of failures) comes back; seconds
   until its whole backlog is delivered. Baseline: what the back-off schedule alone
   would have waited for the last delivery.

    .venv/bin/python bench/delivery.py [--record]   (KIZUNA_BENCH_QUICK=1: about a minute)
    .venv/bin/python bench/delivery.py --drain-only [--drain-count N] [--py-spy FILE]

--drain-only runs part 3 alone, to one endpoint (a larger --drain-count steadies the
figure); --py-spy records the worker's thread holding the GIL with py-spy while it drains
(a flame graph, or collapsed stacks if FILE ends in .txt).

The receivers are on loopback, which the Survey service refuses for the URLs users
type (SSRF guard): the bench allows their origins the way an operator allows the
co-deployed CRM, KIZUNA_WEBHOOK_ALLOWED_ORIGINS, in its own process and the
worker's; the guard stays on for every other address. The worker's log is kept and
its refused and failed attempts are counted in the summary.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import (  # noqa: E402
    cpu_seconds,
    kizuna,
    kizuna_env,
    load_average,
    machine,
    postgres_database,
    quick,
    record,
    recording,
    start,
    stop,
)


class Receiver:
    """Verifies each request, remembers the arrival time of each webhook-id."""

    def __init__(self, *, hang_seconds: float = 0.0, status: int = 204) -> None:
        self.hang_seconds = hang_seconds
        self.status = status
        self.secrets: dict[str, str] = {}  # path -> secret
        self.arrivals: dict[str, float] = {}
        self.sent_at: dict[str, float] = {}
        self.bad = 0
        self.duplicates = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                from standardwebhooks import Webhook

                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.time()
                status = receiver.status
                if receiver.hang_seconds:
                    time.sleep(receiver.hang_seconds)
                try:
                    Webhook(receiver.secrets[self.path]).verify(body, dict(self.headers))
                    payload = json.loads(body)
                    with receiver.lock:
                        message_id = self.headers["webhook-id"]
                        if message_id in receiver.arrivals:
                            receiver.duplicates += 1
                        elif status < 300:
                            receiver.arrivals[message_id] = arrived
                            receiver.sent_at[message_id] = payload["data"]["t"]
                except Exception:
                    with receiver.lock:
                        receiver.bad += 1
                    status = 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def latencies(self) -> list[float]:
        with self.lock:
            return [self.arrivals[m] - self.sent_at[m] for m in self.arrivals]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Bench:
    def __init__(self, database_url: str, data_dir: str, origins: list[str]) -> None:
        self.env = kizuna_env(
            data_dir,
            DATABASE_URL=database_url,
            KIZUNA_WEBHOOK_ALLOWED_ORIGINS=",".join(origins),
            KIZUNA_WEBHOOK_TIMEOUT_SECONDS="2",
            KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS="2",
        )
        os.environ.update(self.env)  # the database: a copy of the migrated template
        import django

        django.setup()
        from kizuna.identity.models import User
        from kizuna.survey.models import SurveyAccount

        owner = User.objects.create_user(email="bench@example.com", password="x" * 20)
        self.accounts = [
            SurveyAccount.objects.create(name=f"Bench {n}", created_by=owner) for n in range(6)
        ]
        self.worker: subprocess.Popen[bytes] | None = None
        self.log = Path(data_dir) / "worker.log"
        self.started = 0

    def endpoint(self, receiver: Receiver, path: str, account: int):  # type: ignore[no-untyped-def]
        from kizuna.survey.webhooks import services

        endpoint, secret = services.create_endpoint(
            account=self.accounts[account],
            url=receiver.origin + path,
            events=["response.completed"],
            by=None,
        )
        receiver.secrets[path] = secret
        return endpoint

    def publish(self, account: int) -> None:
        from django.db import transaction

        from kizuna.survey.webhooks import services

        with transaction.atomic():
            services.publish_event(
                account=self.accounts[account],
                event_type="response.completed",
                payload={"t": time.time()},
            )

    def steady(self, accounts: list[int], per_second: float, seconds: float) -> int:
        interval = 1 / per_second
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < seconds:
            for account in accounts:
                self.publish(account)
            count += 1
            time.sleep(max(0.0, started + count * interval - time.monotonic()))
        return count

    def start_worker(self, *, lending: bool = True) -> None:
        if lending:
            self.worker = kizuna(["worker", "--worker-id", "bench"], self.env, log=self.log)
            return
        code = (
            "import django; django.setup(); from kizuna.work import lanes; "
            "lanes.FAST_SECONDS = 0; from django.core.management import "
            "execute_from_command_line as run; run(['kizuna', 'worker', '--worker-id', 'bench'])"
        )
        self.worker = start([sys.executable, "-c", code], self.env, log=self.log)

    def wait_started(self) -> None:
        """Until the worker last started has logged that its lanes run."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.log.exists():
                started = self.log.read_text(errors="replace").count("Worker bench started")
                if started > self.started:
                    self.started = started
                    return
            time.sleep(0.1)
        raise RuntimeError("the worker did not start")

    def failures_logged(self) -> dict[str, int]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return {
            "refused as a private address": text.count("private"),
            "warnings": sum("WARNING" in line for line in text.splitlines()),
        }

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop(self.worker, timeout=60)
            self.worker = None

    def wait_done(self, count_done, total: int, timeout: float) -> float:  # type: ignore[no-untyped-def]
        started = time.monotonic()
        while count_done() < total:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"only {count_done()} of {total} delivered in {timeout} s")
            time.sleep(0.02)
        return time.monotonic() - started


def direct_post_ms(receiver: Receiver, path: str, count: int) -> list[float]:
    from standardwebhooks import Webhook

    secret = receiver.secrets[path]
    times = []
    for number in range(count):
        body = json.dumps({"data": {"t": time.time()}}).encode()
        now = datetime.datetime.now(datetime.UTC)
        message_id = f"direct-{number}"
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, now, body.decode()),
            "content-type": "application/json",
        }
        started = time.perf_counter()
        request = urllib.request.Request(receiver.origin + path, data=body, headers=headers)
        urllib.request.urlopen(request, timeout=5).read()
        times.append((time.perf_counter() - started) * 1000)
    return times


def profile(pid: int, path: str) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` until SIGINT (py-spy from this virtualenv, or on the PATH)."""
    spy = Path(sys.executable).parent / "py-spy"
    output_format = "raw" if path.endswith(".txt") else "flamegraph"
    command = [str(spy) if spy.exists() else "py-spy", "record", "--pid", str(pid)]
    return subprocess.Popen(
        [*command, "--rate", "200", "--format", output_format, "--output", path, "--gil"],
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--drain-only", action="store_true", help="part 3 alone")
    parser.add_argument("--drain-count", type=int, help="deliveries queued (default 600)")
    parser.add_argument("--py-spy", metavar="FILE", help="profile the worker's drain")
    args = parser.parse_args()
    small = quick()
    steady_seconds = 3 if small else 20
    drain_count = args.drain_count or (60 if small else 600)
    backlog = 100 if small else 300

    healthy = Receiver()
    hanging = Receiver(hang_seconds=3.0)
    down = Receiver(status=503)
    with (
        postgres_database("bench_delivery") as url,
        tempfile.TemporaryDirectory() as data_dir,
    ):
        if url is None:
            print("delivery benchmark needs PostgreSQL", file=sys.stderr)
            return
        bench = Bench(url, data_dir, [healthy.origin, hanging.origin, down.origin])
        from django.db import transaction
        from django.db.models import Count, Q
        from django.utils import timezone

        from kizuna.survey.webhooks.models import Delivery, WebhookEndpoint
        from kizuna.work import wakeup
        from kizuna.work.leases import WorkStatus

        fast = bench.endpoint(healthy, "/fast", 0)
        rows: list[tuple[str, str, str]] = []

        floor_p50 = p50 = p99 = isolation_p99 = 0.0
        steady_published = 0
        if not args.drain_only:
            # 0. Baseline: straight POSTs.
            floor = direct_post_ms(healthy, "/fast", 200)
            floor_p50 = statistics.median(floor)

            # 1. Latency at a steady 50/s.
            bench.start_worker()
            bench.wait_started()
            published = bench.steady([0], 50, steady_seconds)
            steady_published = published
            bench.wait_done(lambda: len(healthy.arrivals), published, 120)
            latencies = [value * 1000 for value in healthy.latencies()]
            p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
            rows.append(
                (
                    f"steady 50/s, healthy endpoint ({published} events)",
                    f"{p50:.0f} ms",
                    f"{p99:.0f} ms",
                )
            )

            # 2. Isolation: another account's endpoint hangs past the timeout.
            bench.endpoint(hanging, "/hang", 1)
            healthy.arrivals.clear()
            healthy.sent_at.clear()
            published = bench.steady([1, 0], 20, steady_seconds)
            bench.wait_done(lambda: len(healthy.arrivals), published, 120)
            isolated = healthy.latencies()
            isolation_p99 = percentile(isolated, 0.99)
            rows.append(
                (
                    "steady 20/s each, another endpoint hanging (3 s, timeout 2 s)",
                    f"{statistics.median(isolated) * 1000:.0f} ms",
                    f"{isolation_p99 * 1000:.0f} ms",
                )
            )
            print(*rows[-1], sep=" | ", flush=True)
            WebhookEndpoint.objects.filter(url__endswith="/hang").update(is_enabled=False)
            Delivery.objects.filter(endpoint__url__endswith="/hang").delete()

        # 3. Drain: a backlog queued while no worker runs, made due at once when the
        # worker is up (its start-up is not part of the figure).
        bench.stop_worker()
        drain = {}
        drains = [
            ("1 endpoint", 1, True),
            ("1 endpoint, lending off (a quarter of the lane)", 1, False),
            ("4 endpoints", 4, True),
        ]
        for label, endpoints, lending in drains[:1] if args.drain_only else drains:
            targets = [fast] + [
                bench.endpoint(healthy, f"/drain{endpoints}-{n}", 2 + n)
                for n in range(endpoints - 1)
            ]
            accounts = [0] + [2 + n for n in range(endpoints - 1)]
            for _ in range(drain_count // endpoints):
                for account in accounts:
                    bench.publish(account)
            backlog_rows = Delivery.objects.filter(endpoint__in=targets, status=WorkStatus.PENDING)
            backlog_rows.update(next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
            pending = backlog_rows.count()
            before = Delivery.objects.filter(endpoint__in=targets, status=WorkStatus.DONE).count()
            bench.start_worker(lending=lending)
            bench.wait_started()
            assert bench.worker is not None
            cpu_before = cpu_seconds(bench.worker.pid)
            spy = None
            if args.py_spy and (endpoints, lending) == (1, True):
                spy = profile(bench.worker.pid, args.py_spy)
            with transaction.atomic():
                backlog_rows.update(next_attempt_at=timezone.now())
                wakeup.notify(Delivery)
            seconds = bench.wait_done(
                lambda before=before, targets=targets: (
                    Delivery.objects.filter(endpoint__in=targets, status=WorkStatus.DONE).count()
                    - before
                ),
                pending,
                900,
            )
            cpu_ms = (cpu_seconds(bench.worker.pid) - cpu_before) * 1000 / pending
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            bench.stop_worker()
            drain[(endpoints, lending)] = pending / seconds
            rows.append(
                (
                    f"drain {pending} queued to {label}",
                    f"{drain[(endpoints, lending)]:.0f}/s",
                    f"worker CPU {cpu_ms:.1f} ms a delivery",
                )
            )
            print(*rows[-1], sep=" | ", flush=True)
            for target in targets[1:]:
                WebhookEndpoint.objects.filter(pk=target.pk).update(is_enabled=False)

        if args.drain_only:
            print(f"\n{machine()}, {datetime.date.today()}, PostgreSQL, one worker --concurrency 8")
            for row in rows:
                print(" | ".join(row))
            print(f"load average at the end: {load_average()}")
            return

        # 4. Recovery after a simulated one-hour outage.
        outage = bench.endpoint(down, "/down", 5)
        for _ in range(backlog):
            bench.publish(5)
        now = datetime.datetime.now(datetime.UTC)
        hour_ago = now - datetime.timedelta(hours=1)
        # An hour of failures: 7 attempts each, the next one up to ~64 min (+-20 %) away.
        deliveries = list(Delivery.objects.filter(endpoint=outage))
        latest = now
        for number, delivery in enumerate(deliveries):
            delivery.attempts = 7
            delivery.next_attempt_at = now + datetime.timedelta(
                seconds=delivery.retry_delay(7).total_seconds() * (number + 1) / len(deliveries)
            )
            latest = max(latest, delivery.next_attempt_at)
        Delivery.objects.bulk_update(deliveries, ["attempts", "next_attempt_at"])
        WebhookEndpoint.objects.filter(pk=outage.pk).update(
            failing_since=hour_ago, last_failed_at=now - datetime.timedelta(minutes=1)
        )
        bench.start_worker()
        bench.wait_started()
        down.status = 204  # the receiver is back
        recovery = bench.wait_done(
            lambda: Delivery.objects.filter(endpoint=outage, status=WorkStatus.DONE).count(),
            backlog,
            600,
        )
        bench.stop_worker()
        schedule_wait = (latest - now).total_seconds()
        rows.append(
            (
                f"recovery: {backlog} deliveries after a 1 h outage",
                f"{recovery:.1f} s",
                f"back-off alone: {schedule_wait / 60:.0f} min",
            )
        )
        logged = bench.failures_logged()
        load = load_average()
        counts = Delivery.objects.aggregate(
            done=Count("pk", filter=Q(status=WorkStatus.DONE)), total=Count("pk")
        )

    print(f"\n{machine()}, {datetime.date.today()}, PostgreSQL, one worker --concurrency 8")
    print(f"floor: straight POST p50 {floor_p50:.1f} ms")
    for row in rows:
        print(" | ".join(row))
    print(
        f"bad signatures {healthy.bad + hanging.bad + down.bad}, duplicates "
        f"{healthy.duplicates + down.duplicates}, deliveries {counts}, worker log: {logged}"
    )
    print(f"load average at the end: {load}")
    if not (args.record or recording()):
        return
    note = f"{machine()}; {load}; one worker, --concurrency 8; PostgreSQL"
    record(
        "P2-delivery-p50-ms",
        p50,
        "ms",
        target="<= 100",
        met=p50 <= 100,
        baseline=floor_p50,
        ratio=p50 / floor_p50,
        note=note
        + f"; 50/s asked for {steady_seconds} s, {steady_published / steady_seconds:.0f}/s "
        + "published",
    )
    record("P2-delivery-p99-ms", p99, "ms", target="<= 500", met=p99 <= 500, note=note)
    record(
        "P2-isolation-p99-s",
        isolation_p99,
        "s",
        target="<= 2",
        met=isolation_p99 <= 2,
        baseline=p99 / 1000,
        ratio=isolation_p99 / (p99 / 1000),
        note=note,
    )
    record(
        "P2-drain-per-second",
        drain[(1, True)],
        "deliveries/s",
        target=">= 500",
        met=drain[(1, True)] >= 500,
        baseline=drain[(1, False)],
        ratio=drain[(1, True)] / drain[(1, False)],
        note=note
        + f"; {drain_count} queued to one endpoint; baseline: lending off (a quarter of the "
        + f"lane); 4 endpoints: {drain[(4, True)]:.0f}/s",
    )
    record(
        "P2-recovery-seconds",
        recovery,
        "s",
        target="<= 120",
        met=recovery <= 120,
        baseline=schedule_wait,
        ratio=recovery / schedule_wait,
        note=note + f"; {backlog} deliveries after a simulated 1 h outage",
    )


if __name__ == "__main__":
    main()
