"""A crowd behind one address answering a survey's shared link, with the limits on and off.

Issue 12: 500 respondents from one address (a venue's Wi-Fi, an office NAT) answer through
/s/<public id>/ at concurrency 16. Every submission must be stored and none refused with the
default limits (the per-address token bucket KIZUNA_SURVEY_SUBMIT_RATE, the minimum time
KIZUNA_SURVEY_MIN_SECONDS, the honeypot), and the respondents/s must stay within 10% of the
same run with those limits switched off.

For each database (SQLite in a fresh data dir, then PostgreSQL when reachable) this:

1. starts from a copy of the migrated template database and creates two six-question
   surveys per round;
2. runs a warm-up round (not counted), then the rounds: in each, two gunicorn gthread servers
   (2 processes x 8 threads each, as `kizuna serve` runs it; 1 process in a quick run) on
   the same database, one with the limits on (the defaults) and one off
   (`KIZUNA_SURVEY_SUBMIT_RATE=off`: no per-address bucket, nothing counted;
   `KIZUNA_SURVEY_MIN_SECONDS=0`: no minimum time), each with a survey and a crowd of its
   own, every request from 127.0.0.1;
3. in a round, each crowd runs in a client process of its own (two crowds in one interpreter
   shared its one lock and were timed by its scheduling as much as by the servers); each of
   its N respondents first opens the form with a client of its own (CSRF cookie, signed start
   time: untimed), everybody waits the minimum time as people take it to answer, then both
   crowds send their N submissions at the same time, 16 at a time each: each crowd's time to
   the last answer is timed. The two modes share whatever load the machine has at that
   moment (earlier runs, one mode after the other, varied twice as much from round to round
   as between the modes), and which crowd's process starts first alternates by round;
4. empties the rate limits between rounds (each round is a crowd of its own), counts the
   responses stored for each survey, and records the median respondents/s of each mode and
   the median of the rounds' on/off ratios (docs/benchmarks.json, id
   survey-crowd-<database>) with the load average.

    .venv/bin/python bench/survey_crowd.py [--respondents 500] [--concurrency 16] [--rounds 3]
                                           [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    ROOT,
    free_port,
    gunicorn,
    kizuna_env,
    load_average,
    machine,
    postgres_database,
    quick,
    record,
    stop,
    wait_up,
)

# What a person takes at least (the default of KIZUNA_SURVEY_MIN_SECONDS), and a margin.
PERSON_SECONDS = 3.5
# The switches of the limits: no per-address bucket at all (nothing counted), no minimum time.
LIMITS_OFF = {"KIZUNA_SURVEY_SUBMIT_RATE": "off", "KIZUNA_SURVEY_MIN_SECONDS": "0"}


# --- in a child process with Django set up --------------------------------------------------


def setup_surveys(count: int) -> None:
    """Create `count` surveys; print the public id and the answers of each as JSON."""
    import django

    django.setup()
    from kizuna.identity.models import User
    from kizuna.survey.models import Question, Survey
    from kizuna.survey.services import create_account

    owner = User.objects.create_user("crowd@example.com", "bench-password")
    portal = create_account(name="Crowd", owner=owner).portals.get()
    choices = [{"key": k, "label": k.upper()} for k in ("a", "b", "c", "d")]
    specs = [
        ("single_choice", {"choices": choices}),
        ("multiple_choice", {"choices": choices}),
        ("rating", {}),
        ("nps", {}),
        ("short_text", {}),
        ("long_text", {}),
    ]
    surveys = []
    for number in range(count):
        survey = Survey.objects.create(portal=portal, title=f"Crowd {number}", language="en")
        questions = [
            Question.objects.create(
                survey=survey, kind=kind, text=kind, options=options, position=n
            )
            for n, (kind, options) in enumerate(specs)
        ]
        answers = {
            f"q{questions[0].pk}": "b",
            f"q{questions[1].pk}": ["a", "c"],
            f"q{questions[2].pk}": "4",
            f"q{questions[3].pk}": "9",
            f"q{questions[4].pk}": "Quick and friendly.",
            f"q{questions[5].pk}": "The talk was clear; more time for questions next time.",
        }
        surveys.append({"pk": survey.pk, "public_id": survey.public_id, "answers": answers})
    print(json.dumps(surveys))


def clear_rate_limits() -> None:
    """Empty the shared cache (the rate limits): each round is a crowd of its own, at another
    hour, not the same address an instant after the previous crowd."""
    import django

    django.setup()
    from django.core.cache import cache

    cache.clear()
    print("{}")


def count_responses(survey_pks: list[int]) -> None:
    """Print the responses stored for each survey, by its id, as JSON."""
    import django

    django.setup()
    from kizuna.survey.models import Response

    print(json.dumps({pk: Response.objects.filter(survey_id=pk).count() for pk in survey_pks}))


# --- the crowd ----------------------------------------------------------------------------


class Respondent:
    """One person with a browser of their own: opens the form, later sends it."""

    def __init__(self, url: str, answers: dict[str, object], tls: ssl.SSLContext) -> None:
        self.url = url
        self.answers = answers
        # One TLS context for every client of a crowd: each new one loaded the CA bundle, tens
        # of ms of the client's CPU a person, for plain-http requests.
        self.client = httpx.Client(timeout=60, follow_redirects=False, verify=tls)
        self.form: dict[str, object] = {}

    def open(self) -> None:
        page = self.client.get(self.url)
        page.raise_for_status()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        started = re.search(r'name="started" value="([^"]+)"', page.text)
        assert token and started, "the form has no CSRF token or start time"
        self.form = {
            **self.answers,
            "csrfmiddlewaretoken": token.group(1),
            "started": started.group(1),
            "website": "",  # the honeypot, left empty as people leave it
            "page": "1",
            "action": "submit",
        }

    def send(self) -> int:
        try:
            return self.client.post(self.url, data=self.form).status_code
        finally:
            self.client.close()


def send_crowd(
    url: str,
    answers: dict[str, object],
    respondents: int,
    concurrency: int,
    ready: Any,
    outcome: Any,
) -> None:
    """In a process of its own: open the forms of `respondents` people (untimed), wait for the
    other crowd (`ready`, a barrier) and the time a person takes, send the submissions
    `concurrency` at a time; put the seconds to the last answer and the statuses into
    `outcome` (a queue)."""
    tls = ssl.create_default_context()
    people = [Respondent(url, answers, tls) for _ in range(respondents)]
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda person: person.open(), people))
    ready.wait()
    time.sleep(PERSON_SECONDS)
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def send(person: Respondent) -> None:
        status = person.send()
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, people))
    outcome.put({"seconds": time.perf_counter() - began, "statuses": statuses})


def run_round(
    crowds: dict[str, tuple[str, dict[str, object]]], respondents: int, concurrency: int
) -> dict[str, dict]:
    """One crowd per mode, each on its own server and survey and from a client process of its
    own (the two crowds' clients do not share one interpreter), sent at the same moment: both
    modes share whatever load the machine has then."""
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(len(crowds))
    queues = {mode: context.Queue() for mode in crowds}
    processes = [
        context.Process(
            target=send_crowd,
            args=(
                f"{base}/s/{survey['public_id']}/",
                survey["answers"],
                respondents,
                concurrency,
                ready,
                queues[mode],
            ),
        )
        for mode, (base, survey) in crowds.items()
    ]
    for process in processes:
        process.start()
    outcomes = {mode: queue.get(timeout=600) for mode, queue in queues.items()}
    for process in processes:
        process.join()
    for outcome in outcomes.values():
        outcome["rate"] = respondents / outcome["seconds"]
    return outcomes


def child(env: dict[str, str], *args: str) -> str:
    here = [sys.executable, str(Path(__file__).resolve())]
    done = subprocess.run(
        [*here, *args], env=env, check=True, cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


def run_database(label: str, env: dict[str, str], args: argparse.Namespace) -> list[str]:
    # The database is a copy of the migrated template (kizuna_env), its cache table empty.
    surveys = json.loads(child(env, "--setup", str((args.rounds + 1) * 2)))
    results: dict[str, list[dict]] = {"on": [], "off": []}
    load = [load_average()]
    # The first round warms up, not counted; a quick run (a check that the script works)
    # goes without: a round is about two minutes of process starts on a loaded machine.
    first = 1 if quick() else 0
    for number in range(first, args.rounds + 1):
        if number > first:
            child(env, "--clear")
        servers = {}
        try:
            crowds = {}
            for index, mode in enumerate(("on", "off")):
                port = free_port()
                server_env = {**env, **(LIMITS_OFF if mode == "off" else {})}
                servers[mode] = gunicorn("kizuna.wsgi:application", port, server_env)
                base = f"http://127.0.0.1:{port}"
                wait_up(f"{base}/accounts/sign-in/")
                crowds[mode] = (base, surveys[number * 2 + index])
            if number % 2:
                crowds = dict(reversed(crowds.items()))
            outcomes = run_round(crowds, args.respondents, args.concurrency)
        finally:
            for server in servers.values():
                stop(server)
        pks = [str(surveys[number * 2 + index]["pk"]) for index in range(2)]
        stored = json.loads(child(env, "--count", ",".join(pks)))
        for index, mode in enumerate(("on", "off")):
            outcome = outcomes[mode]
            outcome["stored"] = stored[pks[index]]
            if number:
                results[mode].append(outcome)
            print(
                f"{label} {'round ' + str(number) if number else 'warm-up'} limits {mode}: "
                f"{outcome['rate']:.0f} respondents/s, statuses {outcome['statuses']}, "
                f"{outcome['stored']} stored",
                flush=True,
            )
    load.append(load_average())
    rate_on = statistics.median(r["rate"] for r in results["on"])
    rate_off = statistics.median(r["rate"] for r in results["off"])
    all_stored = all(
        r["stored"] == args.respondents and r["statuses"] == {302: args.respondents}
        for r in results["on"] + results["off"]
    )
    ratio = statistics.median(
        on["rate"] / off["rate"] for on, off in zip(results["on"], results["off"], strict=True)
    )
    met = all_stored and ratio >= 0.9
    note = (
        f"{args.respondents} respondents from 127.0.0.1 at concurrency {args.concurrency} per "
        f"mode, the two modes' crowds sent at the same time to two servers on one database, "
        f"median of {args.rounds} rounds' on/off ratios; limits off: {rate_off:.0f}/s; every "
        f"submission stored, none refused: {all_stored}; {load[0]} before, {load[1]} after"
    )
    record(
        f"survey-crowd-{label.lower()}",
        rate_on,
        "respondents/s",
        target="all stored, none refused, >= 90% of the rate with limits off",
        met=met,
        baseline=rate_off,
        ratio=ratio,
        note=note,
    )

    round_ratios = ", ".join(
        f"{on['rate'] / off['rate']:.2f}"
        for on, off in zip(results["on"], results["off"], strict=True)
    )

    def rounds(mode: str) -> str:
        return ", ".join(f"{r['rate']:.0f}" for r in results[mode])

    return [
        f"| {label} | limits on (defaults) | {rate_on:,.0f} | {rounds('on')} | "
        f"{sum(r['stored'] for r in results['on'])} of {args.respondents * args.rounds} |",
        f"| {label} | limits off | {rate_off:,.0f} | {rounds('off')} | "
        f"{sum(r['stored'] for r in results['off'])} of {args.respondents * args.rounds} |",
        f"| {label} | on / off (median of the rounds) | {ratio:.2f} | {round_ratios} | "
        f"{'met' if met else 'NOT met'} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--respondents", type=int, default=40 if quick() else 500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1 if quick() else 3)
    parser.add_argument("--setup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", help=argparse.SUPPRESS)
    parser.add_argument("--clear", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="which of sqlite,postgresql to run"
    )
    args = parser.parse_args()
    if args.clear:
        clear_rate_limits()
        return
    if args.setup is not None:
        setup_surveys(args.setup)
        return
    if args.count is not None:
        count_responses([int(pk) for pk in args.count.split(",")])
        return

    print(f"{machine()}; {args.respondents} respondents x {args.rounds} rounds per mode")
    rows = ["| database | mode | respondents/s (median) | rounds | stored |"]
    rows.append("| --- | --- | ---: | --- | --- |")
    data = tempfile.mkdtemp(prefix="kizuna-bench-crowd-")
    try:
        if "sqlite" in args.databases:
            rows += run_database("SQLite", kizuna_env(data), args)
        with postgres_database("bench_crowd") as url:
            if url is not None and "postgresql" in args.databases:
                rows += run_database("PostgreSQL", kizuna_env(data, DATABASE_URL=url), args)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
