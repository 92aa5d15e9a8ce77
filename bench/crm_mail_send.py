"""CRM bulk mail (issue 11, P3): Kizuna's outbox and `kizuna worker` against raw smtplib.

Both send to the same aiosmtpd server (a process of its own on loopback), in the same run,
with the same number of SMTP connections in parallel (--connections, default: the rows the
worker's mail lane sends at once, `concurrency` of its registration). The worker's lane runs
them as threads of several connections each (rows_per_run: one thread begins a message on
each of its connections, fences them in one statement and sends their dots), so its SMTP
connections in all are threads x connections per thread = --connections; the benchmark
counts them that way and prints both factors.

1. Kizuna: `queue_emails()` renders and queues N messages to N leads in one transaction
   (what the compose page runs), then a real `kizuna worker` process, started and idle
   beforehand, claims them under leases and sends each with the fenced two-step handoff
   (transport.py), marking it sent with its timeline entry. The clock runs from the call
   of queue_emails() until the server holds N messages and every row is marked sent;
   the server must hold each row's Message-ID exactly once.
2. The baseline: the very bytes of those N messages (built beforehand, not timed) sent with
   raw smtplib `sendmail()`, one thread and one kept-open connection per connection of the
   worker, the messages shared out between them.

Scale-out (--workers W, README "scale out"): W `kizuna worker` processes share the send,
each with connections / W lane threads; the baseline then runs in W processes too, each
with connections / W threads and connections, so both sides have the same processes and
the same SMTP connections in parallel. W = 1 is the plain single-worker measure.

Figures: P3-sqlite and P3-postgresql (Kizuna's msg/s over the baseline's, target >= 0.7),
and P5-worker-rss-mb, the worker's peak RSS (VmHWM in /proc) at the end of the send. Printed
beside them, the CPU a message of each process of the send: the worker's, the SMTP server's,
and on PostgreSQL the server processes serving the worker's connections (pg_stat_activity,
/proc), which the two cores share with the others; and from them the run's CPU ceiling, the
highest ratio the machine's cores allow at that CPU a message if nothing ever waited
(cpu_ceiling()): a ratio under the target with a ceiling under it too is limited by CPU, not
by waiting.
Each database runs in a child process of its own (Django is set up once per process).

    .venv/bin/python bench/crm_mail_send.py [--count 10000] [--databases sqlite,postgresql]
        [--connections N] [--workers W] [--record]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import smtplib
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import (  # noqa: E402
    SmtpSink,
    analyze,
    child_in_database,
    cpu_seconds,
    cpu_since,
    in_threads,
    kizuna,
    kizuna_env,
    load_average,
    machine,
    peak_rss_mb,
    postgres_backends_cpu,
    quick,
    record,
    recording,
    stop,
    wait_for,
)

PG_DATABASE = "bench_crm_mail"
TARGET_RATIO = 0.7
TARGET_RSS_MB = 150.0


Envelope = tuple[str, list[str], bytes]


def raw_smtplib(port: int, envelopes: list[Envelope], connections: int) -> float:
    """Seconds to send `envelopes` over `connections` kept-open connections in parallel."""
    parts = [envelopes[number::connections] for number in range(connections)]
    clients = [smtplib.SMTP("127.0.0.1", port) for _ in parts]
    for client in clients:
        client.ehlo()
    errors: list[BaseException] = []

    def send(client: smtplib.SMTP, part: list[Envelope]) -> None:
        try:
            for sender, recipients, data in part:
                client.sendmail(sender, recipients, data)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    seconds = in_threads(
        [partial(send, client, part) for client, part in zip(clients, parts, strict=True)]
    )
    for client in clients:
        client.quit()
    if errors:
        raise errors[0]
    return seconds


def raw_smtplib_processes(
    port: int, envelopes: list[Envelope], connections: int, processes: int
) -> tuple[float, float]:
    """raw_smtplib() in `processes` forked processes, connections / processes each: seconds
    from the moment all are connected until the last one is done, and the CPU seconds the
    sending clients used (this process's, or the forked processes')."""
    if processes == 1:
        cpu = time.process_time()
        seconds = raw_smtplib(port, envelopes, connections)
        return seconds, time.process_time() - cpu
    children_cpu = _children_cpu()
    context = multiprocessing.get_context("fork")
    go = context.Event()
    ready = context.Semaphore(0)

    def send(part: list[Envelope]) -> None:
        clients = [smtplib.SMTP("127.0.0.1", port) for _ in range(connections // processes)]
        for client in clients:
            client.ehlo()
        shares = [part[number :: len(clients)] for number in range(len(clients))]
        ready.release()
        go.wait()

        def one(client: smtplib.SMTP, share: list[Envelope]) -> None:
            for sender, recipients, data in share:
                client.sendmail(sender, recipients, data)

        threads = [
            threading.Thread(target=one, args=(client, share))
            for client, share in zip(clients, shares, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for client in clients:
            client.quit()

    workers = [
        context.Process(target=send, args=(envelopes[number::processes],))
        for number in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _worker in workers:
        assert ready.acquire(timeout=120), "a baseline process did not connect"
    started = time.perf_counter()
    go.set()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    failed = [worker.exitcode for worker in workers if worker.exitcode]
    assert not failed, f"a baseline process failed: {failed}"
    return seconds, _children_cpu() - children_cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def database_writes_floor(outbox: Any, group: int) -> float:
    """CPU seconds of this process for the database work the worker cannot do without,
    alone: for every message its lease fenced before its final dot and a "sent" mark with
    its timeline entry after the 250, in groups of `group` messages (as a sending thread
    does its batch: services._fence(), then services._mark_batch_sent()), run from one
    thread. Counts SQLite's work (in this process), not PostgreSQL's (its server)."""
    from datetime import timedelta

    from django.utils import timezone

    from kizuna.crm.mail import services
    from kizuna.crm.mail.models import OutgoingMessage
    from kizuna.work.leases import WorkStatus

    leased_until = timezone.now() + timedelta(seconds=OutgoingMessage.lease_seconds)
    outbox.update(
        status=WorkStatus.LEASED,
        leased_by="floor",
        leased_until=leased_until,
        attempts=1,
        sent_at=None,
    )
    rows = list(outbox.order_by("pk"))
    cpu = time.process_time()
    for start in range(0, len(rows), group):
        part = rows[start : start + group]
        services._fence(part)
        services._mark_batch_sent(part)
    return time.process_time() - cpu


def child(
    count: int, connections: int | None, directory: Path, processes: int = 1
) -> dict[str, Any]:
    """One database: the Kizuna send through a worker process, then the baseline."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from kizuna.crm.mail import services, transport
    from kizuna.crm.mail.models import OutgoingMessage
    from kizuna.crm.models import Lead, Organization
    from kizuna.identity.models import User
    from kizuna.work import leases
    from kizuna.work.leases import WorkStatus

    call_command("migrate", verbosity=0)
    mail_registration = next(
        registration
        for registration in leases.registrations()
        if registration.model is OutgoingMessage
    )
    lane_threads = mail_registration.concurrency
    connections = connections or lane_threads or 1
    assert connections % processes == 0, "--connections must be a multiple of --workers"
    # A worker's lane: `connections // processes` rows at once, as threads of rows_per_run
    # rows, each row of a thread's batch on an SMTP connection of its own (lanes.Lane).
    per_thread = min(mail_registration.rows_per_run, connections // processes)
    threads_per_worker = max(1, (connections // processes) // per_thread)
    organization = Organization.objects.create(name="Bench")
    sender = User.objects.create_user("ada@example.com", "x" * 20, full_name="Ada Lovelace")
    leads = Lead.objects.bulk_create(
        Lead(
            organization=organization,
            family_name=f"Family{i}",
            given_name=f"Given{i}",
            company=f"Company {i}",
            email=f"lead{i}@example.com",
        )
        for i in range(count)
    )
    analyze()

    sink = SmtpSink(directory)
    env = kizuna_env(
        os.environ["KIZUNA_DATA_DIR"],
        KIZUNA_SMTP_HOST="127.0.0.1",
        KIZUNA_SMTP_PORT=str(sink.port),
        **({"DATABASE_URL": os.environ["DATABASE_URL"]} if "DATABASE_URL" in os.environ else {}),
    )
    workers = [
        kizuna(
            [
                "worker",
                "--worker-id",
                f"bench-{number}",
                "--concurrency",
                str(connections // processes),
            ],
            env,
            log=directory / f"worker-{number}.log",
        )
        for number in range(processes)
    ]

    def workers_cpu() -> float:
        return sum(cpu_seconds(worker.pid) for worker in workers)

    try:
        # The workers are up (heartbeat written) before the clock starts.
        from kizuna.work.models import WorkerProcess

        wait_for(
            lambda: (
                WorkerProcess.objects.filter(worker_id__startswith="bench-").count() == processes
            ),
            timeout=120,
            what="the workers to start",
        )
        rss_idle = max(peak_rss_mb(worker.pid) for worker in workers)
        load_before = load_average()
        cpu_before = workers_cpu(), cpu_seconds(sink.process.pid)
        database_before = postgres_backends_cpu(connection)
        started = time.perf_counter()
        batch = services.queue_emails(
            organization=organization,
            sender=sender,
            module="leads",
            records=leads,
            subject="Hello {{ lead.given_name }}",
            body_html="<p>Dear {{ lead.full_name }} of {{ lead.company }},</p>"
            "<p>Our autumn catalogue is out.</p>",
            body_text="",
        )
        queued = time.perf_counter() - started
        outbox = OutgoingMessage.objects.filter(batch=batch)
        # Polled a few times a second: reading the server's file often took CPU from the worker.
        wait_for(
            lambda: sink.count() >= count, timeout=3600, what=f"{count} messages", interval=0.2
        )
        wait_for(
            lambda: not outbox.exclude(status=WorkStatus.DONE).exists(),
            timeout=600,
            what="every message marked sent",
        )
        kizuna_seconds = time.perf_counter() - started
        database_cpu = cpu_since(database_before, postgres_backends_cpu(connection))
        worker_cpu = workers_cpu() - cpu_before[0]
        sink_cpu = cpu_seconds(sink.process.pid) - cpu_before[1]
        rss_peak = max(peak_rss_mb(worker.pid) for worker in workers)
        load_during = load_average()
    finally:
        for worker in workers:
            stop(worker, timeout=60)

    rows = dict(outbox.values_list("message_id", "pk"))
    assert len(rows) == count, f"{len(rows)} rows for {count} leads"
    sink.check_each_arrived_once(rows)

    # The baseline: the same bytes, not built in the timing.
    envelopes = [transport.envelope(services.build_email(message)) for message in outbox]
    sink.clear()
    raw_sink_cpu = cpu_seconds(sink.process.pid)
    raw_seconds, raw_client_cpu = raw_smtplib_processes(
        sink.port, envelopes, connections, processes
    )
    raw_sink_cpu = cpu_seconds(sink.process.pid) - raw_sink_cpu
    assert sink.count() == count, f"the baseline delivered {sink.count()} of {count}"
    sink.stop()
    writes_cpu = database_writes_floor(outbox, per_thread)

    return {
        "database": connection.vendor,
        "count": count,
        "connections": connections,
        "threads_per_worker": threads_per_worker,
        "connections_per_thread": per_thread,
        "workers": processes,
        "kizuna_seconds": kizuna_seconds,
        "queue_seconds": queued,
        "raw_seconds": raw_seconds,
        "kizuna_rate": count / kizuna_seconds,
        "raw_rate": count / raw_seconds,
        "ratio": raw_seconds / kizuna_seconds,
        "worker_cpu_ms_per_message": 1000 * worker_cpu / count,
        "server_cpu_ms_per_message": 1000 * sink_cpu / count,
        "baseline_server_cpu_ms_per_message": 1000 * raw_sink_cpu / count,
        "baseline_client_cpu_ms_per_message": 1000 * raw_client_cpu / count,
        "writes_cpu_ms_per_message": 1000 * writes_cpu / count,
        "database_cpu_ms_per_message": 1000 * database_cpu / count,
        "worker_rss_idle_mb": rss_idle,
        "worker_rss_peak_mb": rss_peak,
        "load_before": load_before,
        "load_during": load_during,
        "message_bytes": sum(len(data) for _, _, data in envelopes) // count,
        "cores": os.cpu_count() or 1,
    }


def run_child(database: str, args: argparse.Namespace) -> dict[str, Any] | None:
    command = [sys.executable, __file__, "--child", "--count", str(args.count)]
    command += ["--workers", str(args.workers)]
    if args.connections:
        command += ["--connections", str(args.connections)]
    return child_in_database(
        command, database, prefix="kizuna-bench-mail-", postgres_name=PG_DATABASE
    )


def _processes(result: dict[str, Any]) -> str:
    workers = result.get("workers", 1)
    if workers == 1:
        return " (one worker process)"
    return f" in {workers} processes ({workers} workers; the baseline in {workers} processes)"


def _threads(result: dict[str, Any]) -> str:
    if "threads_per_worker" not in result:
        return ""
    return (
        f" (a worker: {result['threads_per_worker']} sending thread(s) x "
        f"{result['connections_per_thread']} connections)"
    )


def _database_cpu(result: dict[str, Any]) -> str:
    if result["database"] != "postgresql":
        return ""
    return (
        f"PostgreSQL's CPU for the worker {result['database_cpu_ms_per_message']:.2f} ms a "
        "message; "
    )


def cpu_ceiling(result: dict[str, Any]) -> float:
    """The highest ratio this run's CPU a message allows: the machine's cores spent on nothing
    but the worker, the SMTP server and (PostgreSQL) the worker's database processes, none of
    them ever waiting, at the CPU a message each took here; over the baseline's rate."""
    per_message = (
        result["worker_cpu_ms_per_message"]
        + result["server_cpu_ms_per_message"]
        + result["database_cpu_ms_per_message"]
    ) / 1000
    return result.get("cores", 1) / per_message / result["raw_rate"]


def describe(result: dict[str, Any]) -> str:
    return (
        f"{result['database']}, {result['count']:,} messages of about "
        f"{result['message_bytes']:,} bytes, {result['connections']} SMTP connections on each "
        f"side{_processes(result)}{_threads(result)}: Kizuna {result['kizuna_rate']:,.0f} msg/s "
        f"({result['kizuna_seconds']:.1f} s, "
        f"of which queue_emails {result['queue_seconds']:.1f} s), raw smtplib "
        f"{result['raw_rate']:,.0f} msg/s ({result['raw_seconds']:.1f} s): ratio "
        f"{result['ratio']:.2f} (CPU ceiling {cpu_ceiling(result):.2f}: {result.get('cores', 1)} "
        "cores spent on the worker, the SMTP server and the database at this run's CPU a "
        f"message, nothing waiting); worker CPU {result['worker_cpu_ms_per_message']:.2f} ms a "
        f"message (SMTP server {result['server_cpu_ms_per_message']:.2f} ms, baseline's "
        f"{result['baseline_server_cpu_ms_per_message']:.2f} ms); raw smtplib's own CPU "
        f"{result['baseline_client_cpu_ms_per_message']:.2f} ms a message; the worker's "
        f"database writes alone {result['writes_cpu_ms_per_message']:.2f} ms a message "
        f"(in groups of {result.get('connections_per_thread', result['connections'])}); "
        f"{_database_cpu(result)}peak RSS of a worker "
        f"{result['worker_rss_peak_mb']:.0f} MB "
        f"(idle {result['worker_rss_idle_mb']:.0f} MB); {result['load_during']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200 if quick() else 10_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--connections", type=int, default=0, help="default: the worker's mail lane threads"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (and baseline processes)"
    )
    parser.add_argument("--record", action="store_true", help="record in docs/benchmarks.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        directory = Path(os.environ["KIZUNA_DATA_DIR"])
        print(json.dumps(child(args.count, args.connections or None, directory, args.workers)))
        return

    results = []
    for database in args.databases.split(","):
        result = run_child(database.strip(), args)
        if result is None:
            continue
        print(describe(result), flush=True)
        results.append(result)
        if args.record or recording():
            record(
                f"P3-{result['database']}",
                result["kizuna_rate"],
                "msg/s",
                baseline=result["raw_rate"],
                ratio=result["ratio"],
                target=f">= {TARGET_RATIO} of raw smtplib, same connections, same run",
                met=result["ratio"] >= TARGET_RATIO,
                note=f"{describe(result)}; {machine()}",
            )
    # The worker's memory is one figure for both databases: recorded from a run of both.
    if (args.record or recording()) and {result["database"] for result in results} == {
        "sqlite",
        "postgresql",
    }:
        peak = max(results, key=lambda result: result["worker_rss_peak_mb"])
        record(
            "P5-worker-rss-mb",
            peak["worker_rss_peak_mb"],
            "MB",
            target=f"<= {TARGET_RSS_MB:.0f} MB",
            met=peak["worker_rss_peak_mb"] <= TARGET_RSS_MB,
            note="; ".join(
                f"{result['database']}: {result['worker_rss_peak_mb']:.0f} MB after "
                f"{result['count']:,} messages (idle {result['worker_rss_idle_mb']:.0f} MB)"
                for result in results
            )
            + " (VmHWM of the `kizuna worker` process)",
        )


if __name__ == "__main__":
    main()
