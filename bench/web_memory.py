"""Issue 11, P5-web-rss-mb: the peak RSS of one web process under respondents' load.

For each database (SQLite in a fresh data dir, then a fresh PostgreSQL database when
reachable): a one-page survey of ten required questions (one of each kind a respondent
meets most), Kizuna under gunicorn gthread (2 processes x 8 threads, as `kizuna serve` runs
it; 1 process in a quick run), then R respondents, each a browser of its own (no cookies)
that GETs the form and POSTs a valid answer, 8 at a time: the load of P1
(bench/survey_submit.py). The figure is the highest peak resident set (VmHWM in /proc) of
the gunicorn workers at the end, read before they stop (`_harness.stop()`); every POST must
be answered 302.

    .venv/bin/python bench/web_memory.py [--respondents 1000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    ROOT,
    children,
    free_port,
    gunicorn,
    kizuna_env,
    load_average,
    machine,
    peak_rss_mb,
    postgres_database,
    quick,
    record,
    recording,
    stop,
    ten_question_survey,
    wait_up,
)

TARGET_MB = 150.0
# One TLS context for every respondent's client: each new one loaded the CA bundle, tens of
# ms of the benchmark's CPU a respondent, for plain-http requests (as bench/survey_crowd.py).
TLS = ssl.create_default_context()


def set_up() -> None:
    """In a child process with Django: the survey; prints its public id and a valid answer."""
    import django

    django.setup()
    survey, form = ten_question_survey()
    print(json.dumps({"public_id": survey.public_id, "form": form}))


def respond(url: str, form: dict[str, Any]) -> int:
    """One respondent: GET the form (CSRF cookie, signed start time), POST the answer."""
    with httpx.Client(timeout=60, verify=TLS) as client:
        page = client.get(url)
        page.raise_for_status()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        started = re.search(r'name="started" value="([^"]+)"', page.text)
        assert token and started, "the form has no CSRF token or start time"
        data = {**form, "csrfmiddlewaretoken": token.group(1), "started": started.group(1)}
        return client.post(url, data=data).status_code


def run(label: str, env: dict[str, str], respondents: int) -> dict[str, Any]:
    here = [sys.executable, str(Path(__file__).resolve())]
    # The database is a copy of the migrated template (kizuna_env).
    done = subprocess.run(
        [*here, "--set-up"], env=env, check=True, cwd=ROOT, capture_output=True, text=True
    )
    setup = json.loads(done.stdout.strip().splitlines()[-1])
    port = free_port()
    server = gunicorn("kizuna.wsgi:application", port, env)
    url = f"http://127.0.0.1:{port}/s/{setup['public_id']}/"
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    remaining = [respondents]
    try:
        wait_up(url, timeout=90)
        idle = max(peak_rss_mb(pid) for pid in children(server.pid))

        def work() -> None:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                status = respond(url, setup["form"])
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        during = load_average()
    finally:
        peak = stop(server)
    return {"label": label, "peak": peak, "idle": idle, "statuses": statuses, "load": during}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--respondents", type=int, default=40 if quick() else 1000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--record", action="store_true", help="record in docs/benchmarks.json")
    parser.add_argument("--set-up", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.set_up:
        set_up()
        return
    extra = {
        # Every respondent comes from 127.0.0.1 and answers at once.
        "KIZUNA_SURVEY_SUBMIT_RATE": "100000000/600",
        "KIZUNA_SURVEY_PAGE_RATE": "100000000/600",
        "KIZUNA_SURVEY_MIN_SECONDS": "0",
    }
    results = []
    for database in args.databases.split(","):
        data_dir = tempfile.mkdtemp(prefix="kizuna-bench-web-")
        if database == "postgresql":
            with postgres_database("bench_web_memory") as url:
                if url is None:
                    continue
                env = kizuna_env(data_dir, DATABASE_URL=url, **extra)
                results.append(run("PostgreSQL", env, args.respondents))
        else:
            results.append(run("SQLite", kizuna_env(data_dir, **extra), args.respondents))
        result = results[-1]
        print(
            f"{result['label']}: {args.respondents} respondents, peak RSS of one web process "
            f"{result['peak']:.0f} MB (after start {result['idle']:.0f} MB), statuses "
            f"{result['statuses']}, {result['load']}",
            flush=True,
        )
    if not results or not (args.record or recording()):
        return
    worst = max(results, key=lambda result: result["peak"])
    all_302 = all(set(result["statuses"]) == {302} for result in results)
    record(
        "P5-web-rss-mb",
        worst["peak"],
        "MB",
        target=f"<= {TARGET_MB:.0f} MB",
        met=worst["peak"] <= TARGET_MB and all_302,
        note="; ".join(
            f"{result['label']}: {result['peak']:.0f} MB after {args.respondents} respondents "
            f"(GET + POST of a ten-question survey, 8 at a time; {result['idle']:.0f} MB after "
            f"start), statuses {result['statuses']}, {result['load']}"
            for result in results
        )
        + f"; VmHWM of each gunicorn gthread worker ({1 if quick() else 2} x 8 threads); "
        f"{machine()}",
    )


if __name__ == "__main__":
    main()
