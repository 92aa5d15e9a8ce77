"""Public survey submission throughput and latency, against a one-row-insert baseline.

For each database (SQLite in a fresh data dir, then a fresh PostgreSQL database
`bench_survey` when PostgreSQL is reachable) this:

1. migrates, creates a one-page survey of six questions (choice, multiple
   choice, rating, NPS, short text, matrix) and the baseline's table;
2. starts Kizuna under gunicorn gthread (2 processes x 8 threads, as
   `kizuna serve` runs it on this machine) and the baseline WSGI app
   (bench/baseline_insert_wsgi.py) with the same settings, both on loopback;
3. sends N form POSTs to /s/<public id>/ from a small thread pool (each thread
   first GETs the form for its CSRF cookie, like a browser) and N POSTs to the
   baseline, bounded by a request count and a time limit; only POSTs are timed;
4. checks that every submission was stored (302 and a Response row each) and
   prints a Markdown table; --write appends it to docs/benchmarks.md.

    .venv/bin/python bench/survey_submit.py [--requests 600] [--threads 8] [--write]

The submit rate limit is lifted for the run (KIZUNA_SURVEY_SUBMIT_RATE), and so is the
minimum time from opening the form to submitting it (KIZUNA_SURVEY_MIN_SECONDS=0): each
thread posts its one form again and again. bench/survey_crowd.py measures with them on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _harness import free_port, gunicorn, stop, wait_up

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "bench_survey"
TIME_LIMIT_SECONDS = 120.0


# --- in a child process with Django set up --------------------------------------------------


def setup_database() -> None:
    """Create the survey and the baseline table; print what the load needs as JSON."""
    import django

    django.setup()
    from django.db import connection

    from kizuna.identity.models import User
    from kizuna.survey.models import Question, Survey
    from kizuna.survey.services import create_account

    owner = User.objects.create_user("bench@example.com", "bench-password")
    account = create_account(name="Bench", owner=owner)
    survey = Survey.objects.create(portal=account.portals.get(), title="Bench survey")
    choices = [{"key": k, "label": k.upper()} for k in ("a", "b", "c", "d")]
    specs = [
        ("single_choice", {"choices": choices}),
        ("multiple_choice", {"choices": choices}),
        ("rating", {}),
        ("nps", {}),
        ("short_text", {}),
        (
            "matrix",
            {
                "rows": [{"key": "r1", "label": "R1"}, {"key": "r2", "label": "R2"}],
                "columns": [{"key": "c1", "label": "C1"}, {"key": "c2", "label": "C2"}],
            },
        ),
    ]
    questions = [
        Question.objects.create(
            survey=survey, kind=kind, text=kind, options=options, position=n, is_required=True
        )
        for n, (kind, options) in enumerate(specs)
    ]
    if connection.vendor == "postgresql":
        key, stamp = "id bigserial PRIMARY KEY", "timestamptz"
    else:
        key, stamp = "id integer PRIMARY KEY AUTOINCREMENT", "datetime"
    ddl = (
        f"CREATE TABLE bench_baseline_row ({key}, created_at {stamp} NOT NULL, body text NOT NULL)"
    )
    with connection.cursor() as cursor:
        cursor.execute(ddl)
    form = {
        f"q{questions[0].pk}": "b",
        f"q{questions[1].pk}": ["a", "c"],
        f"q{questions[2].pk}": "4",
        f"q{questions[3].pk}": "9",
        f"q{questions[4].pk}": "Quick and friendly service, thank you.",
        f"q{questions[5].pk}-r1": "c1",
        f"q{questions[5].pk}-r2": "c2",
        "page": "1",
        "action": "submit",
    }
    print(json.dumps({"public_id": survey.public_id, "form": form}))


def count_rows() -> None:
    import django

    django.setup()
    from django.db import connection

    from kizuna.survey.models import Answer, Response

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM bench_baseline_row")
        baseline = cursor.fetchone()[0]
    print(
        json.dumps(
            {
                "responses": Response.objects.count(),
                "answers": Answer.objects.count(),
                "baseline": baseline,
            }
        )
    )


# --- the load -----------------------------------------------------------------------------


class Load:
    """N POSTs from `threads` clients; latencies of the POSTs only."""

    def __init__(self, total: int, threads: int) -> None:
        self.total = total
        self.threads = threads
        self.lock = threading.Lock()
        self.sent = 0
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}

    def _take(self) -> bool:
        with self.lock:
            if self.sent >= self.total:
                return False
            self.sent += 1
            return True

    def run(self, send: object) -> float:
        self.sent = 0
        start = time.perf_counter()
        deadline = time.monotonic() + TIME_LIMIT_SECONDS
        workers = [
            threading.Thread(target=self._worker, args=(send, deadline))
            for _ in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.perf_counter() - start

    def _worker(self, send: object, deadline: float) -> None:
        with httpx.Client(timeout=30, follow_redirects=False) as client:
            prepared = send.prepare(client)  # type: ignore[attr-defined]
            while time.monotonic() < deadline and self._take():
                began = time.perf_counter()
                status = send.post(client, prepared)  # type: ignore[attr-defined]
                elapsed = time.perf_counter() - began
                with self.lock:
                    self.latencies.append(elapsed)
                    self.statuses[status] = self.statuses.get(status, 0) + 1


class SurveySubmit:
    def __init__(self, base: str, public_id: str, form: dict[str, object]) -> None:
        self.url = f"{base}/s/{public_id}/"
        self.form = form

    def prepare(self, client: httpx.Client) -> dict[str, object]:
        page = client.get(self.url)
        page.raise_for_status()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        started = re.search(r'name="started" value="([^"]+)"', page.text)
        assert token and started, "the form has no CSRF token"
        return {**self.form, "csrfmiddlewaretoken": token.group(1), "started": started.group(1)}

    def post(self, client: httpx.Client, data: dict[str, object]) -> int:
        return client.post(self.url, data=data).status_code


class BaselineInsert:
    def __init__(self, base: str) -> None:
        self.url = f"{base}/"

    def prepare(self, client: httpx.Client) -> dict[str, object]:
        return {"answer": "Quick and friendly service, thank you."}

    def post(self, client: httpx.Client, data: dict[str, object]) -> int:
        return client.post(self.url, data=data).status_code


def summarize(name: str, load: Load, seconds: float) -> tuple[str, float]:
    latencies = sorted(load.latencies)
    done = len(latencies)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(done - 1, int(done * 0.99))] * 1000
    rate = done / seconds
    statuses = ", ".join(f"{code}x{count}" for code, count in sorted(load.statuses.items()))
    return f"| {name} | {done} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {statuses} |", rate


def run_database(label: str, env: dict[str, str], args: argparse.Namespace) -> list[str]:
    here = [sys.executable, str(Path(__file__).resolve())]
    subprocess.run([str(BIN / "kizuna"), "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
    subprocess.run([str(BIN / "kizuna"), "createcachetable"], env=env, check=True, cwd=ROOT)
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
    rows = []
    try:
        wait_up(f"http://127.0.0.1:{kizuna_port}/s/{setup['public_id']}/")
        wait_up(f"http://127.0.0.1:{baseline_port}/")
        submit = SurveySubmit(f"http://127.0.0.1:{kizuna_port}", setup["public_id"], setup["form"])
        insert = BaselineInsert(f"http://127.0.0.1:{baseline_port}")
        for target in (insert, submit):  # warm up both: connections, imports, caches
            Load(total=args.threads * 5, threads=args.threads).run(target)
        results = {}
        for name, target in (
            ("baseline: one-row INSERT", insert),
            ("survey submit POST /s/<id>/", submit),
        ):
            load = Load(total=args.requests, threads=args.threads)
            seconds = load.run(target)
            row, rate = summarize(f"{label}: {name}", load, seconds)
            results[name] = (load, rate)
            rows.append(row)
            print(row, flush=True)
    finally:
        stop(kizuna)
        stop(baseline)
    counts = json.loads(
        subprocess.run(
            [*here, "--count"], env=env, check=True, cwd=ROOT, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    submit_load = results["survey submit POST /s/<id>/"][0]
    expected = args.threads * 5 + len(submit_load.latencies)
    stored_ok = submit_load.statuses == {302: len(submit_load.latencies)}
    verdict = "all stored" if stored_ok and counts["responses"] == expected else "MISMATCH"
    rows.append(
        f"| {label}: check | | | | | {counts['responses']} responses stored for {expected} "
        f"submissions ({verdict}), {counts['answers']} answers |"
    )
    ratio = results["baseline: one-row INSERT"][1] / max(
        results["survey submit POST /s/<id>/"][1], 1e-9
    )
    rows.append(f"| {label}: baseline / submit throughput | | {ratio:.1f}x | | | |")
    print(rows[-2], rows[-1], sep="\n", flush=True)
    return rows


def postgres_env(base_env: dict[str, str]) -> dict[str, str] | None:
    try:
        import psycopg
    except ImportError:
        return None
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE}")
            admin.execute(f"CREATE DATABASE {PG_DATABASE}")
    except psycopg.Error as error:
        print(f"PostgreSQL skipped: {error}", file=sys.stderr)
        return None
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_DATABASE}"
    return {**base_env, "DATABASE_URL": url}


def drop_postgres() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--write", action="store_true", help="append to docs/benchmarks.md")
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        setup_database()
        return
    if args.count:
        count_rows()
        return

    data = tempfile.mkdtemp(prefix="kizuna-bench-survey-")
    base_env = {
        **os.environ,
        "KIZUNA_DATA_DIR": data,
        "DJANGO_SETTINGS_MODULE": "kizuna.settings",
        "KIZUNA_SURVEY_SUBMIT_RATE": "100000000/600",
        "KIZUNA_SURVEY_MIN_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
    }
    base_env.pop("DATABASE_URL", None)
    header = [
        f"{os.cpu_count()} cores (shared), Python {sys.version.split()[0]}, "
        f"{args.requests} POSTs x {args.threads} client threads per target, gunicorn gthread "
        f"2 proc x 8 threads per server, loopback, {datetime.date.today().isoformat()}",
        "",
        "| target | POSTs | req/s | p50 ms | p99 ms | statuses |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    print("\n".join(header), flush=True)
    rows: list[str] = []
    try:
        rows += run_database("SQLite", base_env, args)
        pg_env = postgres_env(base_env)
        if pg_env is not None:
            try:
                rows += run_database("PostgreSQL", pg_env, args)
            finally:
                drop_postgres()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    if args.write:
        section = ROOT / "docs" / "benchmarks.md"
        existing = section.read_text() if section.exists() else "# Benchmarks\n"
        text = "\n".join(
            [
                "",
                "## Survey public submission",
                "",
                "`bench/survey_submit.py`: a six-question one-page survey submitted through",
                "`/s/<public id>/` (CSRF, validation, rate limit in the database cache, Response +",
                "Answers + outbox in one transaction, redirect), against a WSGI app that only",
                "inserts one row, with the same settings and server, in the same run.",
                "",
                *header,
                *rows,
                "",
            ]
        )
        section.write_text(existing.rstrip("\n") + "\n" + text)


if __name__ == "__main__":
    main()
