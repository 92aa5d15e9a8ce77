"""Intake of a backlog (issue #7): N response events waiting, drained into CRM records.

Co-deployed Kizuna (bench/_integration.py: CRM and Survey on one database, web in gunicorn
2 x 8 threads). N leads are invited through the Survey API; while no worker runs (the receiver
was down), each invitation is answered: the rows the Survey's submit service writes, in bulk
(_integration.backlog_in_bulk), so N `response.completed` deliveries wait in the outbox. Then:

1. end to end (the figure): `kizuna worker` (default --concurrency 8) starts and delivers
   the backlog over HTTP to the CRM's intake, which verifies each signature and records the
   response on its lead. Rate = responses recorded per second, from the first recorded to
   the last (SurveyResponse.recorded_at; the worker's start-up is left out, and given in
   the note);
2. the same backlog again with `--concurrency 32`, whose per-endpoint cap (a quarter of the
   lane's threads) is 8 instead of 2: how much of the figure is the delivery worker's cap;
3. the CRM's intake alone (baseline): the same N deliveries, signed by this process and
   POSTed straight to the intake URL from 8 threads, no worker in between;
4. the same backlog healed by the reconciliation pull instead (GET /responses in pages of
   500, each response recorded under the intake's rules), as the worker runs it.

Between runs the CRM's records of the responses are removed (responses, intake events,
timeline entries) and the deliveries made due again; the Survey's rows stay. The periodic
reconciliation (15 minutes after enabling) is held back for the run.

    .venv/bin/python bench/integration_intake.py [--count 10000] [--databases postgresql]
        [--profile] [--record]     (KIZUNA_BENCH_QUICK=1: 200 events, PostgreSQL, no pass 2)

--profile also runs the intake of 300 deliveries in this process under cProfile (the whole
request through Django's test client) and prints where its time goes and the queries of one;
--profile=only does just that; --profile=worker profiles the worker's loop instead.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import load_average, machine, quick, record, recording, wait_for  # noqa: E402
from _integration import (  # noqa: E402
    Deployment,
    analyze,
    backlog_in_bulk,
    per_database,
    set_up_world,
)

TARGET = 500.0


def recorded_rate(expected: int) -> tuple[float, float]:
    """(responses per second from the first recorded to the last, seconds between them)."""
    from django.db.models import Max, Min

    from kizuna.crm.integration.models import SurveyResponse

    span = SurveyResponse.objects.aggregate(first=Min("recorded_at"), last=Max("recorded_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    return (expected - 1) / seconds if seconds > 0 else float("inf"), seconds


def hold_periodic_reconciliation() -> None:
    """The periodic pull (15 minutes after enabling) would record part of the backlog in
    pages while the deliveries are measured: it waits for a day here."""
    import datetime

    from django.utils import timezone

    from kizuna.crm.integration.models import Reconciliation

    Reconciliation.objects.update(next_attempt_at=timezone.now() + datetime.timedelta(days=1))


def pull(count: int) -> dict[str, Any]:
    """The same backlog healed by reconciliation instead (GET /responses, pages of 500, each
    response recorded under the intake's rules), run in this process as the worker runs it."""
    from django.utils import timezone

    from kizuna.crm.integration.models import Connection, SurveyResponse
    from kizuna.crm.integration.responses import services

    connection = Connection.objects.get()
    Connection.objects.filter(pk=connection.pk).update(reconciled_until=None)
    connection.refresh_from_db()
    load = load_average()
    started = time.monotonic()
    found = services.reconcile(connection=connection, until=timezone.now())
    seconds = time.monotonic() - started
    recorded = SurveyResponse.objects.count()
    assert found == recorded == count, f"pull: {found} found, {recorded} of {count} recorded"
    return {"rate": count / seconds, "seconds": seconds, "load": load}


def reset_crm() -> None:
    """The CRM forgets the responses; the Survey's deliveries are due again."""
    from django.utils import timezone

    from kizuna.crm.integration.models import IntakeEvent, SurveyInvitation, SurveyResponse
    from kizuna.crm.models import Activity
    from kizuna.survey.webhooks.models import Delivery, DeliveryAttempt
    from kizuna.work.leases import WorkStatus

    SurveyResponse.objects.all().delete()
    IntakeEvent.objects.all().delete()
    Activity.objects.filter(kind__startswith="survey").delete()
    SurveyInvitation.objects.update(completed_at=None)
    DeliveryAttempt.objects.all().delete()
    Delivery.objects.update(
        status=WorkStatus.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        leased_until=None,
        last_error="",
    )


def drain(deployment: Deployment, count: int, *, concurrency: int) -> dict[str, Any]:
    from kizuna.crm.integration.models import SurveyResponse
    from kizuna.survey.webhooks.models import Delivery, DeliveryAttempt
    from kizuna.work.leases import WorkStatus

    load = load_average()
    started = time.monotonic()
    deployment.start_worker(concurrency=concurrency)
    wait_for(
        lambda: SurveyResponse.objects.count() >= count,
        timeout=3600,
        interval=0.2,
        what="every response recorded in the CRM",
    )
    total = time.monotonic() - started
    wait_for(
        lambda: not Delivery.objects.exclude(status=WorkStatus.DONE).exists(),
        timeout=120,
        what="every delivery done",
    )
    deployment.stop_worker()
    rate, span = recorded_rate(count)
    durations = list(DeliveryAttempt.objects.values_list("duration_ms", flat=True))
    return {
        "rate": rate,
        "span": span,
        "total": total,
        "load": load,
        # The worker's view: how long the CRM took to answer each delivery.
        "post_ms_p50": statistics.median(durations),
        "post_ms_mean": statistics.fmean(durations),
    }


def direct(deployment: Deployment, count: int, threads: int = 8) -> dict[str, Any]:
    """Every delivery signed here and POSTed straight to the intake, `threads` at a time."""
    import httpx
    from django.utils import timezone

    from kizuna.crm.integration.models import SurveyResponse
    from kizuna.survey.webhooks.models import Delivery
    from kizuna.survey.webhooks.services import signed_headers

    deliveries = list(Delivery.objects.select_related("endpoint").order_by("pk"))
    secret = deliveries[0].endpoint.signing_secret()
    url = deliveries[0].endpoint.url
    bodies = [
        (
            delivery.message_id,
            json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")),
        )
        for delivery in deliveries
    ]
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    position = iter(range(len(bodies)))

    def sender() -> None:
        with httpx.Client(timeout=30) as client:
            while True:
                with lock:
                    index = next(position, None)
                if index is None:
                    return
                message_id, body = bodies[index]
                headers = signed_headers(
                    secret=secret, message_id=message_id, timestamp=timezone.now(), body=body
                )
                status = client.post(url, content=body.encode(), headers=headers).status_code
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

    load = load_average()
    started = time.monotonic()
    workers = [threading.Thread(target=sender) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.monotonic() - started
    recorded = SurveyResponse.objects.count()
    assert recorded == count, f"direct: {recorded} of {count} recorded, statuses {statuses}"
    return {"rate": count / seconds, "seconds": seconds, "statuses": statuses, "load": load}


def profile_intake(count: int) -> str:
    """The intake URL (the whole Django request: middleware, view, receive_webhook) for `count`
    deliveries in this process, under cProfile; and the queries of one delivery."""
    from django.db import connection as database
    from django.test import Client
    from django.utils import timezone

    from kizuna.survey.webhooks.models import Delivery
    from kizuna.survey.webhooks.services import signed_headers

    deliveries = list(Delivery.objects.select_related("endpoint").order_by("pk")[:count])
    secret = deliveries[0].endpoint.signing_secret()
    path = "/" + deliveries[0].endpoint.url.split("/", 3)[3]
    client = Client(HTTP_HOST=deliveries[0].endpoint.url.split("/")[2])
    prepared = []
    for delivery in deliveries:
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":"))
        headers = signed_headers(
            secret=secret, message_id=delivery.message_id, timestamp=timezone.now(), body=body
        )
        prepared.append((body, {k: v for k, v in headers.items() if k != "content-type"}))

    def post(body: str, headers: dict[str, str]) -> None:
        answer = client.post(path, data=body, content_type="application/json", headers=headers)
        assert answer.status_code == 200, answer.content

    database.force_debug_cursor = True
    database.queries_log.clear()
    post(*prepared[0])
    queries = list(database.queries)
    database.force_debug_cursor = False
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for body, headers in prepared[1:]:
        post(body, headers)
    profiler.disable()
    seconds = time.perf_counter() - started
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
    sql = "\n".join(f"  {query['sql'][:160]}" for query in queries)
    if database.vendor == "postgresql":
        # The plan of the intake's one lookup (the record, "recorded already?", its invitation).
        selects = [query for query in queries[1:] if query["sql"].startswith("SELECT")]
        slowest = max(selects, key=lambda query: float(query["time"]))
        with database.cursor() as cursor:
            cursor.execute("EXPLAIN ANALYZE " + slowest["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        sql += f"\nslowest ({slowest['time']} s), EXPLAIN ANALYZE:\n{plan}"
    return (
        f"in-process intake: {(count - 1) / seconds:.0f}/s (one thread, under cProfile); "
        f"{len(queries)} queries for one delivery:\n{sql}\n" + out.getvalue()
    )


def profile_worker(count: int) -> str:
    """`count` deliveries of the backlog sent by the worker's own loop (run_due_work, one
    thread) in this process, under cProfile: the Survey side of each delivery and the
    HTTP wait for the CRM's answer, apart."""
    from kizuna.crm.integration.models import SurveyResponse
    from kizuna.work import leases

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    while SurveyResponse.objects.count() < count and leases.run_due_work(worker_id="profile"):
        pass
    profiler.disable()
    seconds = time.perf_counter() - started
    done = SurveyResponse.objects.count()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    return f"in-process worker: {done / seconds:.0f}/s (one thread, under cProfile)\n" + (
        out.getvalue()
    )


def child(database_url: str, count: int, profile: str) -> dict[str, Any]:
    from django.db import connection as database

    with Deployment(database_url if database_url != "sqlite" else "") as deployment:
        deployment.start_web()
        started = time.monotonic()
        world = set_up_world(leads=count)
        backlog_in_bulk(world, world.lead_ids)
        analyze()
        hold_periodic_reconciliation()
        print(
            f"{deployment.vendor}: {count} responses submitted, deliveries waiting "
            f"({time.monotonic() - started:.0f} s to set up)",
            flush=True,
        )
        result: dict[str, Any] = {"vendor": database.vendor, "count": count}
        if profile == "only":
            print(profile_intake(min(300, count)), flush=True)
            return result
        if profile == "worker":
            print(profile_worker(min(300, count)), flush=True)
            return result
        result["drain"] = drain(deployment, count, concurrency=8)
        print(f"  end to end, --concurrency 8: {result['drain']}", flush=True)
        reset_crm()
        if not quick():
            result["drain32"] = drain(deployment, count, concurrency=32)
            print(f"  end to end, --concurrency 32: {result['drain32']}", flush=True)
            reset_crm()
        result["direct"] = direct(deployment, count)
        print(f"  intake alone, 8 senders: {result['direct']}", flush=True)
        reset_crm()
        result["pull"] = pull(count)
        print(f"  reconciliation pull: {result['pull']}", flush=True)
        if profile:
            reset_crm()
            print(profile_intake(min(300, count)), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200 if quick() else 10_000)
    parser.add_argument("--databases", default="postgresql", help="postgresql,sqlite")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="also",
        default="",
        help="also; only (the intake, no drains); worker (the worker's loop, no drains)",
    )
    parser.add_argument("--record", action="store_true", help="write docs/benchmarks.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.count, args.profile)))
        return
    extra = ["--count", str(args.count)] + ([f"--profile={args.profile}"] if args.profile else [])
    results = per_database(__file__, args.databases.split(","), extra)
    for database, result in results.items():
        if "drain" not in result:
            continue
        drain8, alone = result["drain"], result["direct"]
        drain32 = result.get("drain32")
        wider = (
            f"with --concurrency 32 (8 at a time) {drain32['rate']:,.0f}/s ({drain32['load']}); "
            if drain32
            else ""
        )
        line = (
            f"{result['count']:,} waiting response.completed events, {database}, {machine()}: "
            f"end to end (worker --concurrency 8, 2 deliveries at a time to the one endpoint) "
            f"{drain8['rate']:,.0f}/s ({drain8['load']}; {drain8['total']:.1f} s with the "
            f"worker's start); {wider}the CRM intake alone, 8 senders POSTing signed "
            f"deliveries straight to it: {alone['rate']:,.0f}/s ({alone['load']}); "
            f"the same backlog pulled by reconciliation (pages of 500): "
            f"{result['pull']['rate']:,.0f}/s ({result['pull']['load']})"
        )
        print(line)
        if args.record or recording():
            record(
                f"I7-intake-backlog-per-second-{database}",
                drain8["rate"],
                "responses/s",
                baseline=alone["rate"],
                ratio=drain8["rate"] / alone["rate"],
                target=f">= {TARGET:.0f} recorded per second from a backlog of 10,000",
                met=drain8["rate"] >= TARGET and result["count"] >= 10_000,
                note=line,
            )


if __name__ == "__main__":
    main()
