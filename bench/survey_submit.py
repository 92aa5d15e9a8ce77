"""Issue 11, P1: a respondent's server CPU, and public submissions against a raw-insert baseline.

For each database (SQLite in a fresh data dir, then a fresh PostgreSQL database when
reachable) this:

1. migrates, creates a one-page survey of ten required questions, one of each kind a
   respondent meets most (single choice, multiple choice, rating, NPS, short text, long
   text, matrix, number, date, dropdown), and the baseline's table;
2. starts Kizuna under gunicorn gthread (2 processes x 8 threads, as `kizuna serve` runs it)
   and the baseline WSGI app (bench/baseline_insert_wsgi.py: one raw INSERT per POST) with
   the same settings and server, both on loopback, both kept up for the whole run;
3. **P1-cpu-ms**: R respondents, each a browser of its own (no cookies) that GETs the form
   and POSTs a valid answer to it, 4 at a time; the server processes' CPU seconds over that
   part divided by R;
4. **P1-<database>**: the maximum POST rate of each target, closed loop from 8 client
   threads, in alternating rounds (baseline, Kizuna, baseline, Kizuna, ...) so that a
   machine whose load drifts weighs on both alike; the ratio is Kizuna's requests/s over
   the baseline's; then Kizuna alone at half its maximum rate, paced (open loop, latency
   counted from each request's scheduled time), for the p99;
   every POST sends a form opened for it beforehand (untimed), since a form's signed start
   is good for one response;
5. checks that every submission was answered 302 and stored (one Response per 302, ten
   answers each) and records the figures in docs/benchmarks.json with the load average.

The per-address submission limit is lifted for the run (KIZUNA_SURVEY_SUBMIT_RATE) but its
bucket is still counted on every submission, and so is the minimum time from opening the
form to submitting it (KIZUNA_SURVEY_MIN_SECONDS=0). bench/survey_crowd.py measures with the
limits on.

    .venv/bin/python bench/survey_submit.py [--respondents 1000] [--requests 1000]
                                            [--databases sqlite,postgresql]

`make bench QUICK=1` runs it small (about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    ROOT,
    cpu_seconds,
    free_port,
    gunicorn,
    in_threads,
    kizuna_env,
    machine,
    postgres_database,
    quick,
    record,
    recording,
    stop,
    ten_question_survey,
    wait_up,
)

PG_DATABASE = "bench_survey"
ROUND_SECONDS_LIMIT = 120.0
CPU_TARGET_MS = 6.0
RATIO_TARGET = 0.5
P99_TARGET_MS = 100.0
LIMITS_LIFTED = {"KIZUNA_SURVEY_SUBMIT_RATE": "100000000/600", "KIZUNA_SURVEY_MIN_SECONDS": "0"}


# --- in a child process with Django set up --------------------------------------------------


def setup_database() -> None:
    """Create the survey and the baseline table; print what the load needs as JSON."""
    import django

    django.setup()
    from django.db import connection

    survey, form = ten_question_survey()
    if connection.vendor == "postgresql":
        key, stamp = "id bigserial PRIMARY KEY", "timestamptz"
    else:
        key, stamp = "id integer PRIMARY KEY AUTOINCREMENT", "datetime"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE bench_baseline_row ({key}, created_at {stamp} NOT NULL, "
            "body text NOT NULL)"
        )
    print(json.dumps({"public_id": survey.public_id, "form": form}))


def count_rows() -> None:
    import django

    django.setup()
    from kizuna.survey.models import Answer, Response

    print(json.dumps({"responses": Response.objects.count(), "answers": Answer.objects.count()}))


# --- the load -----------------------------------------------------------------------------


class SurveyForm:
    """The survey's form as a browser sees it: GET it (CSRF cookie, signed start), POST it."""

    def __init__(self, base: str, public_id: str, form: dict[str, Any]) -> None:
        self.url = f"{base}/s/{public_id}/"
        self.form = form

    def open(self, client: httpx.Client) -> dict[str, Any]:
        page = client.get(self.url)
        page.raise_for_status()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        started = re.search(r'name="started" value="([^"]+)"', page.text)
        assert token and started, "the form has no CSRF token or start time"
        return {**self.form, "csrfmiddlewaretoken": token.group(1), "started": started.group(1)}

    def post(self, client: httpx.Client, data: dict[str, Any]) -> int:
        return client.post(self.url, data=data).status_code


class BaselineInsert:
    def __init__(self, base: str) -> None:
        self.url = f"{base}/"

    def open(self, client: httpx.Client) -> dict[str, Any]:
        return {"answer": "Quick and friendly service, thank you."}

    def post(self, client: httpx.Client, data: dict[str, Any]) -> int:
        return client.post(self.url, data=data).status_code


Target = SurveyForm | BaselineInsert


class Tally:
    """Statuses and latencies of the requests of one part of the run."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.seconds = 0.0

    def add(self, status: int, latency: float) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


def respondents(survey: SurveyForm, total: int, tally: Tally, threads: int = 4) -> None:
    """`total` respondents, each a new browser: GET the form, POST the answers."""
    left = iter(range(total))
    lock = threading.Lock()

    def work() -> None:
        with httpx.Client(timeout=30) as client:
            while True:
                with lock:
                    if next(left, None) is None:
                        return
                client.cookies.clear()
                data = survey.open(client)
                began = time.perf_counter()
                tally.add(survey.post(client, data), time.perf_counter() - began)

    tally.seconds = in_threads([work] * threads)


def opened_forms(target: Target, client: httpx.Client, count: int) -> list[dict[str, Any]]:
    """`count` forms opened ahead (untimed): a signed start is good for one response, so each
    POST sends a form of its own, as each person does."""
    return [target.open(client) for _ in range(count)]


def closed_loop(target: Target, total: int, threads: int) -> Tally:
    """`total` POSTs as fast as `threads` clients can send them."""
    tally = Tally()
    ready = threading.Barrier(threads + 1)
    deadline = [float("inf")]  # set once every form is opened

    def work() -> None:
        with httpx.Client(timeout=30) as client:
            forms = opened_forms(target, client, total // threads)
            ready.wait()
            for data in forms:
                if time.monotonic() > deadline[0]:
                    return
                began = time.perf_counter()
                tally.add(target.post(client, data), time.perf_counter() - began)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()  # every form opened: the timed part starts
    deadline[0] = time.monotonic() + ROUND_SECONDS_LIMIT
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    tally.seconds = time.perf_counter() - start
    return tally


def paced(target: Target, rate: float, seconds: float, threads: int = 16) -> Tally:
    """POSTs at `rate` per second for `seconds`; latency from each one's scheduled time, so a
    server that falls behind shows it (no coordinated omission)."""
    tally = Tally()
    total = max(int(rate * seconds), threads)
    slots = iter(range(total))
    lock = threading.Lock()
    clients: list[tuple[httpx.Client, list[dict[str, Any]]]] = []
    for _ in range(threads):
        client = httpx.Client(timeout=30)
        # Each thread may take more than its share of the slots when others lag.
        clients.append((client, opened_forms(target, client, total // threads * 2 + 2)))
    start = time.perf_counter() + 0.2
    pool = iter(clients)

    def work() -> None:
        with lock:
            client, forms = next(pool)
        for data in forms:
            with lock:
                slot = next(slots, None)
            if slot is None:
                return
            due = start + slot / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            status = target.post(client, data)
            tally.add(status, time.perf_counter() - due)

    tally.seconds = in_threads([work] * threads)
    for client, _forms in clients:
        client.close()
    return tally


# --- one database -------------------------------------------------------------------------


def run_database(label: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    here = [sys.executable, str(Path(__file__).resolve())]
    # The database is a copy of the migrated template (kizuna_env).
    setup = json.loads(
        subprocess.run(
            [*here, "--setup"], env=env, check=True, cwd=ROOT, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    kizuna_port, baseline_port = free_port(), free_port()
    kizuna = gunicorn("kizuna.wsgi:application", kizuna_port, env)
    baseline = gunicorn("bench.baseline_insert_wsgi:application", baseline_port, env)
    survey = SurveyForm(f"http://127.0.0.1:{kizuna_port}", setup["public_id"], setup["form"])
    insert = BaselineInsert(f"http://127.0.0.1:{baseline_port}")
    load_before = os.getloadavg()[0]
    submitted = 0
    try:
        wait_up(survey.url)
        wait_up(insert.url)
        # Warm up both: connections, imports, per-process caches of every worker.
        closed_loop(insert, args.threads * 10, args.threads)
        submitted += len(closed_loop(survey, args.threads * 10, args.threads).latencies)
        warm = Tally()
        respondents(survey, 20, warm)
        submitted += len(warm.latencies)

        cpu = Tally()
        cpu_start = cpu_seconds(kizuna.pid)
        respondents(survey, args.respondents, cpu)
        cpu_ms = (cpu_seconds(kizuna.pid) - cpu_start) / args.respondents * 1000
        submitted += len(cpu.latencies)
        print(f"{label}: {cpu_ms:.2f} ms of server CPU per respondent", flush=True)
        if args.cpu_only:
            return {"label": label, "cpu_ms": cpu_ms}

        rounds: dict[str, list[Tally]] = {"baseline": [], "submit": []}
        for _ in range(args.rounds):
            for name, target in (("baseline", insert), ("submit", survey)):
                tally = closed_loop(target, args.requests // args.rounds, args.threads)
                rounds[name].append(tally)
                print(
                    f"{label}: {name} {tally.rate:,.0f} req/s, p99 {tally.percentile(0.99):.0f} "
                    f"ms, {tally.statuses}",
                    flush=True,
                )
        submitted += sum(len(t.latencies) for t in rounds["submit"])
        rate = {
            name: sum(len(t.latencies) for t in tallies) / sum(t.seconds for t in tallies)
            for name, tallies in rounds.items()
        }
        half = paced(survey, rate["submit"] / 2, args.paced_seconds)
        submitted += len(half.latencies)
        print(
            f"{label}: at {rate['submit'] / 2:,.0f} req/s p50 {half.percentile(0.5):.1f} ms, "
            f"p99 {half.percentile(0.99):.1f} ms, {half.statuses}",
            flush=True,
        )
    finally:
        stop(kizuna)
        stop(baseline)
    load_after = os.getloadavg()[0]
    counts = json.loads(
        subprocess.run(
            [*here, "--count"], env=env, check=True, cwd=ROOT, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    tallies = [cpu, half, *rounds["submit"]]
    every_302 = all(set(t.statuses) == {302} for t in tallies)
    stored = every_302 and counts["responses"] == submitted and counts["answers"] == 10 * submitted
    return {
        "label": label,
        "cpu_ms": cpu_ms,
        "rate": rate,
        "ratio": rate["submit"] / rate["baseline"],
        "p99_max": statistics.median(t.percentile(0.99) for t in rounds["submit"]),
        "p99_half": half.percentile(0.99),
        "p50_half": half.percentile(0.5),
        "stored": stored,
        "check": f"{counts['responses']} responses and {counts['answers']} answers stored for "
        f"{submitted} submissions",
        "load": f"load average {load_before:.1f} before, {load_after:.1f} after",
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    setting = (
        f"{args.respondents} respondents (GET + POST, 4 at a time), {args.requests} POSTs per "
        f"target in {args.rounds} alternating rounds from {args.threads} client threads, "
        f"{args.paced_seconds:.0f} s paced at half the maximum; gunicorn gthread 2 x 8"
    )
    for result in results:
        print(
            f"| {result['label']} | {result['cpu_ms']:.2f} | {result['rate']['baseline']:,.0f} | "
            f"{result['rate']['submit']:,.0f} | {result['ratio']:.2f} | {result['p99_max']:.0f} | "
            f"{result['p50_half']:.1f} | {result['p99_half']:.1f} | {result['check']} | "
            f"{result['load']} |"
        )
    if not (args.record or recording()):
        return
    by_label = {result["label"]: result for result in results}
    worst_cpu = max(results, key=lambda result: result["cpu_ms"])
    cpu_notes = ", ".join(f"{r['label']} {r['cpu_ms']:.2f} ms ({r['load']})" for r in results)
    record(
        "P1-cpu-ms",
        worst_cpu["cpu_ms"],
        "ms",
        target=f"<= {CPU_TARGET_MS:g} ms of server CPU per respondent",
        met=worst_cpu["cpu_ms"] <= CPU_TARGET_MS,
        note=f"the higher of the databases: {cpu_notes}; {setting}",
    )
    for label, id in (("SQLite", "P1-sqlite"), ("PostgreSQL", "P1-postgresql")):
        if label not in by_label:
            continue
        result = by_label[label]
        met = (
            result["ratio"] >= RATIO_TARGET
            and result["p99_half"] <= P99_TARGET_MS
            and result["stored"]
        )
        record(
            id,
            result["rate"]["submit"],
            "req/s",
            baseline=result["rate"]["baseline"],
            ratio=result["ratio"],
            target=f"ratio >= {RATIO_TARGET} of the one-row-insert baseline, p99 <= "
            f"{P99_TARGET_MS:g} ms at half the maximum rate, every submission stored",
            met=met,
            note=f"p99 {result['p99_half']:.1f} ms at half the maximum (p50 "
            f"{result['p50_half']:.1f}), {result['p99_max']:.0f} ms at the maximum; "
            f"{result['check']}; {result['load']}; {setting}",
        )


def main() -> None:
    small = quick()
    parser = argparse.ArgumentParser()
    parser.add_argument("--respondents", type=int, default=60 if small else 1000)
    parser.add_argument("--requests", type=int, default=120 if small else 3000)
    parser.add_argument("--rounds", type=int, default=1 if small else 3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--paced-seconds", type=float, default=3.0 if small else 20.0)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--record", action="store_true", help="record the figures (make bench always does)"
    )
    parser.add_argument("--cpu-only", action="store_true", help="only P1-cpu-ms, not recorded")
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        setup_database()
        return
    if args.count:
        count_rows()
        return

    print(machine(), flush=True)
    databases = args.databases.split(",")
    results = []
    if "sqlite" in databases:
        with tempfile.TemporaryDirectory(prefix="kizuna-bench-submit-") as data:
            results.append(run_database("SQLite", kizuna_env(data, **LIMITS_LIFTED), args))
    if "postgresql" in databases:
        with (
            tempfile.TemporaryDirectory(prefix="kizuna-bench-submit-") as data,
            postgres_database(PG_DATABASE) as url,
        ):
            if url is not None:
                env = kizuna_env(data, DATABASE_URL=url, **LIMITS_LIFTED)
                results.append(run_database("PostgreSQL", env, args))
    if args.cpu_only:
        return
    print(
        "| database | CPU ms / respondent | baseline req/s | submit req/s | ratio | p99 ms at max "
        "| p50 ms at half | p99 ms at half | check | load |"
    )
    report(results, args)


if __name__ == "__main__":
    main()
