"""Intake of a backlog (issue #7): N response events waiting, drained into CRM records.

Co-deployed Kizuna (bench/_integration.py: CRM and Survey on one database, web in gunicorn
2 x 8 threads). N leads are invited through the Survey API; the CRM was down for OUTAGE (the
integration enabled before it, its last pull made then) while each invitation was answered,
one after the other through the outage: the rows the Survey's submit service writes, in bulk
(_integration.backlog_in_bulk), so N `response.completed` deliveries wait in the outbox, due
now. Before each end-to-end pass the outage is made to end as its last response is submitted
(outage_ends_now: the backlog moved later in time). Then:

1. end to end (the figure): `kizuna worker` (default --concurrency 8) starts and delivers
   the backlog over HTTP to the CRM's intake. The first late delivery brings the periodic
   reconciliation forward (its next run is a day away otherwise), which records the backlog
   from GET /responses a page per transaction; the deliveries still queued then find their
   responses recorded. Rate = responses recorded per second, from the first recorded to the
   last (SurveyResponse.recorded_at; the worker's start-up is left out, and given in the
   note). Also measured: until every delivery is acknowledged (the Survey's outbox empty);
2. the CRM's intake alone, one delivery per request (baseline, the way every event was
   recorded before the pull was brought forward): the first BASELINE deliveries, signed by
   this process and POSTed straight to the intake URL from 8 threads, no worker running;
3. the same backlog healed by the reconciliation pull alone, run in this process (GET
   /responses in pages of 500, a page per transaction).

Between runs the CRM's records of the responses are removed (responses, intake events,
timeline entries, the pull's progress) and the deliveries made due again; the Survey's rows
stay.

    .venv/bin/python bench/integration_intake.py [--count 10000] [--databases postgresql]
        [--profile] [--port N] [--record]     (KIZUNA_BENCH_QUICK=1: 200 events, PostgreSQL)

--profile also runs the intake of 300 deliveries in this process under cProfile (the whole
request through Django's test client) and prints where its time goes and the queries of one;
--profile=only does just that; --profile=worker profiles the worker's loop instead.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
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

from _harness import analyze, load_average, machine, quick, record, recording, wait_for  # noqa: E402
from _integration import (  # noqa: E402
    Deployment,
    backlog_in_bulk,
    per_database,
    set_up_world,
)

TARGET = 500.0
OUTAGE_MINUTES = 10
BASELINE = 1000


def recorded_rate(expected: int) -> tuple[float, float]:
    """(responses per second from the first recorded to the last, seconds between them)."""
    from django.db.models import Max, Min

    from kizuna.crm.integration.models import SurveyResponse

    span = SurveyResponse.objects.aggregate(first=Min("recorded_at"), last=Max("recorded_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    return (expected - 1) / seconds if seconds > 0 else float("inf"), seconds


def timeline(bucket: float = 1.0) -> str:
    """Responses recorded per `bucket` seconds from the first recorded, and the deliveries'
    answers over the same time (what the drain spent its time on)."""
    from django.db.models import Min

    from kizuna.crm.integration.models import SurveyResponse
    from kizuna.survey.webhooks.models import DeliveryAttempt

    first = SurveyResponse.objects.aggregate(first=Min("recorded_at"))["first"]
    recorded: dict[int, int] = {}
    for at in SurveyResponse.objects.values_list("recorded_at", flat=True):
        slot = int((at - first).total_seconds() // bucket)
        recorded[slot] = recorded.get(slot, 0) + 1
    answered: dict[tuple[int, int | None], int] = {}
    for at, status in DeliveryAttempt.objects.values_list("attempted_at", "status_code"):
        slot = int((at - first).total_seconds() // bucket)
        answered[slot, status] = answered.get((slot, status), 0) + 1
    slots = sorted({slot for slot in recorded} | {slot for slot, _status in answered})
    lines = []
    for slot in slots:
        statuses = ", ".join(
            f"{status}: {n}" for (at, status), n in sorted(answered.items(), key=str) if at == slot
        )
        lines.append(f"    {slot * bucket:6.0f} s  recorded {recorded.get(slot, 0):5}  {statuses}")
    return "\n".join(lines)


def outage_ends_now() -> float:
    """The backlog moved later in time (the Survey's responses, their deliveries' event times)
    so that the last response was submitted just now: the CRM comes back as the outage's last
    response is submitted, and the responses of its last seconds are still inside the pull's
    margin (RECONCILIATION_MARGIN) when the first late delivery brings the pull forward. How
    many seconds before the end of this the last response was submitted.

    Without it the gap depended on how long the set-up took after writing the backlog (10 to
    50 s with the machine's load), and with it whether the first pull covered every response.
    """
    from django.db import connection as database
    from django.db.models import F, Max
    from django.utils import timezone

    from kizuna.survey.models import Response
    from kizuna.survey.webhooks.models import Delivery
    from kizuna.survey.webhooks.services import iso_time

    last = Response.objects.aggregate(last=Max("submitted_at"))["last"]
    later = timezone.now() - last
    Response.objects.update(submitted_at=F("submitted_at") + later)
    if database.vendor == "postgresql":
        moved = """to_jsonb(to_char(((payload{path})::timestamptz + %s) AT TIME ZONE 'UTC',
            'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))"""
        event_time = moved.format(path="->>'timestamp'")
        submitted = moved.format(path="->'data'->>'submitted_at'")
        with database.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Delivery._meta.db_table} SET payload = jsonb_set(jsonb_set(payload, "
                f"'{{timestamp}}', {event_time}), '{{data,submitted_at}}', {submitted})",
                [later, later],
            )
    else:
        deliveries = list(Delivery.objects.all())
        for delivery in deliveries:
            for place in (delivery.payload, delivery.payload["data"]):
                key = "timestamp" if place is delivery.payload else "submitted_at"
                moment = datetime.datetime.fromisoformat(place[key].replace("Z", "+00:00"))
                place[key] = iso_time(moment + later)
        Delivery.objects.bulk_update(deliveries, ["payload"], batch_size=500)
    last = Response.objects.aggregate(last=Max("submitted_at"))["last"]
    return (timezone.now() - last).total_seconds()


def hold_periodic_reconciliation() -> None:
    """The periodic pull is not due for a day, and the last one was made before the outage:
    only a late delivery brings it forward."""
    import datetime

    from django.utils import timezone

    from kizuna.crm.integration.models import Connection, Reconciliation
    from kizuna.work.leases import WorkStatus

    Reconciliation.objects.update(
        status=WorkStatus.PENDING,
        leased_until=None,
        next_attempt_at=timezone.now() + datetime.timedelta(days=1),
        last_recorded=0,
    )
    connection = Connection.objects.get()
    Connection.objects.filter(pk=connection.pk).update(reconciled_until=connection.enabled_at)


def pull(count: int) -> dict[str, Any]:
    """The same backlog healed by reconciliation instead (GET /responses, pages of 500, each
    response recorded under the intake's rules), run in this process as the worker runs it."""
    from django.utils import timezone

    from kizuna.crm.integration.models import Connection, SurveyResponse
    from kizuna.crm.integration.responses import services

    connection = Connection.objects.get()
    load = load_average()
    started, cpu = time.monotonic(), time.process_time()
    found = services.reconcile(connection=connection, until=timezone.now())
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    recorded = SurveyResponse.objects.count()
    assert found == recorded == count, f"pull: {found} found, {recorded} of {count} recorded"
    # CPU of this process (the CRM's side: recording, and reading the pages in the asking
    # thread), a figure the load of the machine moves less than the rate.
    return {"rate": count / seconds, "seconds": seconds, "cpu_ms": cpu * 1000 / count, "load": load}


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
    hold_periodic_reconciliation()


def drain(deployment: Deployment, count: int, *, concurrency: int) -> dict[str, Any]:
    from kizuna.crm.integration.models import (
        IntakeEvent,
        IntakeOutcome,
        SurveyResponse,
    )
    from kizuna.survey.webhooks.models import Delivery, DeliveryAttempt
    from kizuna.work.leases import WorkStatus

    load = load_average()
    ended = outage_ends_now()
    started = time.monotonic()
    deployment.start_worker(concurrency=concurrency)
    wait_for(
        lambda: SurveyResponse.objects.count() >= count,
        timeout=3600,
        interval=0.2,
        what="every response recorded in the CRM",
    )
    total = time.monotonic() - started
    load_after = load_average()
    wait_for(
        lambda: not Delivery.objects.exclude(status=WorkStatus.DONE).exists(),
        timeout=7200,
        interval=1.0,
        what="every delivery acknowledged",
    )
    acknowledged = time.monotonic() - started
    deployment.stop_worker()
    rate, span = recorded_rate(count)
    print(timeline(), flush=True)
    durations = list(DeliveryAttempt.objects.values_list("duration_ms", flat=True))
    return {
        "rate": rate,
        "span": span,
        "total": total,
        "load": load,
        "load_after": load_after,
        # The last response of the backlog was submitted this long before the worker started.
        "last_submitted_s": round(ended, 2),
        # Until the Survey's outbox is empty: every delivery acknowledged by the CRM.
        "acknowledged": acknowledged,
        "by_deliveries": IntakeEvent.objects.filter(outcome=IntakeOutcome.RECORDED).count(),
        "by_pull": SurveyResponse.objects.count()
        - IntakeEvent.objects.filter(outcome=IntakeOutcome.RECORDED).count(),
        # The worker's view: how long the CRM took to answer each delivery.
        "post_ms_p50": statistics.median(durations),
        "post_ms_mean": statistics.fmean(durations),
    }


def direct(deployment: Deployment, count: int, threads: int = 8) -> dict[str, Any]:
    """The first `count` deliveries signed here and POSTed straight to the intake, `threads` at
    a time; no worker runs, so each is recorded by its own request."""
    import httpx
    from django.utils import timezone

    from kizuna.crm.integration.models import SurveyResponse
    from kizuna.survey.webhooks.models import Delivery
    from kizuna.survey.webhooks.services import signed_headers

    deliveries = list(Delivery.objects.select_related("endpoint").order_by("pk")[:count])
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


def profile_pull(count: int) -> str:
    """The reconciliation pull of the whole backlog in this process under cProfile (the
    Survey's side of GET /responses runs in gunicorn: its share is the HTTP wait)."""
    from django.db import connection as database

    database.force_debug_cursor = True
    database.queries_log.clear()
    profiler = cProfile.Profile()
    profiler.enable()
    result = pull(count)
    profiler.disable()
    database.force_debug_cursor = False
    slowest = sorted(database.queries, key=lambda query: -float(query["time"]))[:12]
    sql = "\n".join(f"  {query['time']} s {query['sql'][:150]}" for query in slowest)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return (
        f"in-process pull: {result['rate']:.0f}/s (under cProfile); its slowest queries:\n"
        f"{sql}\n" + out.getvalue()
    )


def profile_listing() -> str:
    """GET /survey/api/v1/responses?limit=500 (the Survey's side of a pull's page) through
    Django's test client in this process, under cProfile."""
    from django.test import Client

    from kizuna.crm.integration.models import Connection

    credentials = Connection.objects.get().credentials()
    client = Client(
        HTTP_HOST="127.0.0.1", HTTP_X_SC_EMAIL=credentials.email, HTTP_X_SC_KEY=credentials.key
    )
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    page = client.get("/survey/api/v1/responses", {"limit": 500})
    profiler.disable()
    seconds = time.perf_counter() - started
    assert page.status_code == 200, page.content[:500]
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    return (
        f"GET /responses?limit=500 in this process: {seconds:.2f} s under cProfile, "
        f"{len(page.content):,} bytes\n" + out.getvalue()
    )


def child(database_url: str, count: int, profile: str, port: int) -> dict[str, Any]:
    from django.db import connection as database

    with Deployment(database_url if database_url != "sqlite" else "", port=port) as deployment:
        deployment.start_web()
        started = time.monotonic()
        world = set_up_world(leads=count)
        backlog_in_bulk(world, world.lead_ids, outage=datetime.timedelta(minutes=OUTAGE_MINUTES))
        analyze()
        hold_periodic_reconciliation()
        print(
            f"{deployment.vendor}: {count} responses submitted, deliveries waiting "
            f"({time.monotonic() - started:.0f} s to set up)",
            flush=True,
        )
        result: dict[str, Any] = {"vendor": database.vendor, "count": count}
        if profile == "pull-cpu":
            result["pull"] = pull(count)
            print(f"  reconciliation pull: {result['pull']}", flush=True)
            return result
        if profile == "only":
            print(profile_intake(min(300, count)), flush=True)
            return result
        if profile == "worker":
            print(profile_worker(min(300, count)), flush=True)
            return result
        if profile == "pull":
            print(profile_listing(), flush=True)
            print(profile_pull(count), flush=True)
            return result
        result["drain"] = drain(deployment, count, concurrency=8)
        print(f"  end to end, --concurrency 8: {result['drain']}", flush=True)
        if profile == "drain":
            return result
        reset_crm()
        result["direct"] = direct(deployment, min(count, BASELINE))
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
    parser.add_argument("--count", type=int, default=100 if quick() else 10_000)
    parser.add_argument("--databases", default="postgresql", help="postgresql,sqlite")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="also",
        default="",
        help="also; only (the intake, no drains); worker (the worker's loop, no drains); "
        "pull (the reconciliation pull, no drains); drain (the end to end pass alone, no "
        "baselines); pull-cpu (the pull alone, its rate and CPU a response, without cProfile)",
    )
    parser.add_argument("--port", type=int, default=0, help="the web server's (default: any free)")
    parser.add_argument("--record", action="store_true", help="write docs/benchmarks.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.count, args.profile, args.port)))
        return
    extra = ["--count", str(args.count), "--port", str(args.port)]
    extra += [f"--profile={args.profile}"] if args.profile else []
    results = per_database(__file__, args.databases.split(","), extra)
    for database, result in results.items():
        if "direct" not in result:
            continue
        drain, alone = result["drain"], result["direct"]
        line = (
            f"{result['count']:,} response.completed events waiting after a "
            f"{OUTAGE_MINUTES}-minute outage, {database}, {machine()}: end to end (worker "
            f"--concurrency 8; the first late delivery brings the pull forward) "
            f"{drain['rate']:,.0f} recorded/s ({drain['span']:.1f} s from the first recorded "
            f"to the last, {drain['by_pull']:,} by the pull and {drain['by_deliveries']:,} by "
            f"their deliveries; {drain['total']:.1f} s with the worker's start; load "
            f"{drain['load']} -> {drain['load_after']}), every delivery acknowledged after "
            f"{drain['acknowledged']:.0f} s; baseline, the CRM intake one delivery per request "
            f"(8 senders POSTing the first {alone['statuses'].get('200', 0):,} signed deliveries "
            f"straight to it, no worker): {alone['rate']:,.1f}/s (load {alone['load']}); the "
            f"backlog pulled alone in this process (pages of 500): "
            f"{result['pull']['rate']:,.0f}/s, {result['pull']['cpu_ms']:.2f} ms of this "
            f"process's CPU a response (load {result['pull']['load']})"
        )
        print(line)
        if args.record or recording():
            record(
                f"I7-intake-backlog-per-second-{database}",
                drain["rate"],
                "responses/s",
                baseline=alone["rate"],
                ratio=drain["rate"] / alone["rate"],
                target=f">= {TARGET:.0f} recorded per second from a backlog of 10,000",
                met=drain["rate"] >= TARGET and result["count"] >= 10_000,
                note=line,
            )


if __name__ == "__main__":
    main()
