"""Bulk survey send against plain CRM mail of the same size, through a real worker (issue #7).

The Survey service runs in gunicorn on loopback (same database), an aiosmtpd server (a
process of its own, `_harness.SmtpSink`) receives the mail, and one `kizuna worker`
process, started and idle beforehand (its heartbeat row written), sends both sides as a
deployment does: each kind of work in a lane of its own (kizuna/work/lanes.py), so the
worker prepares the next part of a send (BatchPreparation) beside the sending of the
messages already queued (OutgoingMessage). N leads get, one side after the other:

1. plain CRM mail: `queue_emails()` renders and queues the first 1,000 messages in this
   process (what the compose page runs); the worker queues the others, part after part,
   and sends them all;
2. a survey email with `{{ survey.<id> }}`: the same, plus the mail prepare step asking the
   Survey API for each part's personal invitation links, 1,000 per call (the first part
   while the sender waits, the others in the worker), each recipient mailed their own link.

Each side's clock runs from the call of queue_emails() until the server holds its N
messages and every row of its send is marked sent. Checked: every Message-ID of the outbox
arrived exactly once, and each survey email's row carries the link of the Survey
invitation made for its lead, no two alike. Warm-up sends of both kinds (imports, first
connections) run before the clocks.

Also printed: how long the mail lane had nothing left of a send to send while the worker
prepared its next part (from the rows' queued and sent times); 0 means the sending never
waited for the preparation.

Figure: the survey send's rate as a share of plain mail's (target >= 70 %), and how many
invitation API calls it made (target <= 10 for 10,000), counted in the Survey service's
access log with the time the service took for each. CPU a message (from /proc) of each
side's worker, Survey service, SMTP server and this process (queue_emails and polling).
Each database runs in a child process of its own (Django is set up once per process);
the SQLite figure is recorded as crm.survey_send.rate_vs_plain_mail, PostgreSQL's as
crm.survey_send.rate_vs_plain_mail.postgresql.

    .venv/bin/python bench/crm_survey_send.py [--count 10000] [--databases sqlite,postgresql]
        [--record]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import (  # noqa: E402
    SmtpSink,
    analyze,
    child_in_database,
    cpu_seconds,
    free_port,
    gunicorn,
    kizuna,
    kizuna_env,
    load_average,
    machine,
    quick,
    record,
    recording,
    stop,
    wait_for,
    wait_up,
)

PG_DATABASE = "bench_crm_survey_send"
TARGET_RATIO = 0.70
FIGURE = "crm.survey_send.rate_vs_plain_mail"
# The Survey service's access log: the request line, the status and the microseconds taken.
ACCESS_LOG_FORMAT = '"%(r)s" %(s)s %(D)s'
INVITATIONS_CALL = re.compile(r'"POST /survey/api/v1/surveys/\d+/invitations[ ?][^"]*" \d+ (\d+)$')


def set_up() -> int:
    """The Survey account with one open survey, and the CRM organization connected to it."""
    from kizuna.crm.integration.models import Connection, ConnectionMethod
    from kizuna.crm.models import Membership, Organization, Role
    from kizuna.identity.models import User
    from kizuna.lib import crypto
    from kizuna.survey.keys.services import get_or_create_key
    from kizuna.survey.models import AccountMember, Survey
    from kizuna.survey.services import create_account

    ada = User.objects.create_user("bench@example.com", "x", full_name="Ada Bench")
    organization = Organization.objects.create(name="Bench")
    Membership.objects.create(organization=organization, user=ada, role=Role.ADMINISTRATOR)
    account = create_account(name="Bench surveys", owner=ada)
    survey = Survey.objects.create(
        portal=account.portals.get(), title="Bench survey", created_by=ada
    )
    member = AccountMember.objects.get(account=account, user=ada)
    key = get_or_create_key(member=member, by=ada).reveal()
    Connection.objects.create(
        organization=organization,
        method=ConnectionMethod.OTHER_ACCOUNT,
        survey_account_id=account.pk,
        survey_account_name=account.name,
        sc_email=ada.email,
        sc_key_encrypted=crypto.encrypt_secret(key),
        uses_all_portals=True,
    )
    return survey.pk


def send(
    count: int, *, body_text: str, label: str, sink: SmtpSink, expected: int
) -> tuple[Any, float, float]:
    """Queue `count` emails to new leads and wait until the worker has sent them: the
    batch, the seconds of queue_emails() and the seconds from its call until the server
    holds `expected` messages in all and every row of the batch is marked sent."""
    from kizuna.crm.mail import services
    from kizuna.crm.mail.models import BatchPreparation, OutgoingMessage
    from kizuna.crm.models import Lead, Organization
    from kizuna.identity.models import User
    from kizuna.work.leases import WorkStatus

    organization = Organization.objects.get(name="Bench")
    sender = User.objects.get(email="bench@example.com")
    leads = Lead.objects.bulk_create(
        Lead(
            organization=organization,
            family_name=f"Family{i}",
            given_name=f"Given{i}",
            email=f"{label}{i}@example.com",
        )
        for i in range(count)
    )
    analyze()
    started = time.perf_counter()
    batch = services.queue_emails(
        organization=organization,
        sender=sender,
        module="leads",
        records=leads,
        subject="Hello {{ lead.given_name }}",
        body_html="",
        body_text=body_text,
    )
    queued = time.perf_counter() - started
    # Polled a few times a second: reading the server's file often took CPU from the worker.
    wait_for(
        lambda: sink.count() >= expected,
        timeout=3600,
        what=f"{label}: {count} messages",
        interval=0.2,
    )
    wait_for(
        lambda: (
            OutgoingMessage.objects.filter(batch=batch, status=WorkStatus.DONE).count() == count
        ),
        timeout=600,
        what=f"{label}: every message marked sent",
    )
    seconds = time.perf_counter() - started
    preparation = BatchPreparation.objects.filter(batch=batch).first()
    assert preparation is None or preparation.status == WorkStatus.DONE, preparation
    return batch, queued, seconds


def waiting_for_parts(batch: Any) -> tuple[float, int]:
    """Seconds the mail lane had nothing of this send left to send while the worker was
    preparing its next part (from the rows' times: a part's rows are queued at one time,
    and each is marked sent when it is), and how many parts there were."""
    from kizuna.crm.mail.models import OutgoingMessage

    rows = list(
        OutgoingMessage.objects.filter(batch=batch).values_list("next_attempt_at", "sent_at")
    )
    for _, sent in rows:
        assert sent is not None, "a message not marked sent"
    return idle_between([(queued.timestamp(), sent.timestamp()) for queued, sent in rows])


def idle_between(rows: list[tuple[float, float]]) -> tuple[float, int]:
    """Of (queued at, sent at) pairs, in seconds: the seconds between the moment every row
    queued so far was sent and the queueing of the next part, summed; and the number of parts.

    >>> idle_between([(0, 1), (0, 2), (5, 6), (3, 4)])
    (2.0, 3)
    """
    last_sent: dict[float, float] = {}
    for queued, sent in rows:
        last_sent[queued] = max(sent, last_sent.get(queued, sent))
    waited = 0.0
    done: float | None = None
    for queued in sorted(last_sent):
        if done is not None and queued > done:
            waited += queued - done
        done = last_sent[queued] if done is None else max(done, last_sent[queued])
    return waited, len(last_sent)


def check_links(batch: Any, survey_id: int) -> None:
    """Each survey email's row carries the link of the Survey invitation made for its
    lead (recipient reference, address), and no two rows the same link."""
    from kizuna.crm.integration.models import SurveyInvitation
    from kizuna.crm.mail.models import OutgoingMessage
    from kizuna.survey.models import Invitation

    kept = {
        lead_id: (token, link)
        for lead_id, token, link in SurveyInvitation.objects.filter(
            survey_id=survey_id, lead__isnull=False
        ).values_list("lead_id", "survey_token", "link")
    }
    made = dict(Invitation.objects.filter(survey_id=survey_id).values_list("token", "email"))
    links = set()
    rows = list(
        OutgoingMessage.objects.filter(batch=batch).values_list(
            "lead_id", "to_address", "body_text"
        )
    )
    for lead_id, address, body in rows:
        token, link = kept[lead_id]
        assert link in body, f"the email to {address} lacks its link {link}"
        assert link.rstrip("/").endswith(token), link
        assert made.get(token) == address, f"{link}: the Survey invited {made.get(token)}"
        links.add(link)
    assert len(links) == len(rows), "two survey emails carry the same link"


def child(count: int, directory: Path) -> dict[str, Any]:
    """One database: both sides through one `kizuna worker`."""
    web_port = free_port()
    survey_url = f"http://127.0.0.1:{web_port}"
    os.environ.update(SURVEY_URL=survey_url, KIZUNA_BASE_URL=survey_url)
    import django

    django.setup()
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    from django.core.management import call_command
    from django.db import connection

    from kizuna.crm.mail.models import OutgoingMessage
    from kizuna.work.models import WorkerProcess

    call_command("migrate", verbosity=0)
    survey_id = set_up()
    link = f"{{{{ survey.{survey_id} }}}}"

    sink = SmtpSink(directory)
    database = {"DATABASE_URL": os.environ["DATABASE_URL"]} if "DATABASE_URL" in os.environ else {}
    env = kizuna_env(
        os.environ["KIZUNA_DATA_DIR"],
        SURVEY_URL=survey_url,
        KIZUNA_BASE_URL=survey_url,
        KIZUNA_SMTP_HOST="127.0.0.1",
        KIZUNA_SMTP_PORT=str(sink.port),
        **database,
    )
    access_log = directory / "access.log"
    web = gunicorn(
        "kizuna.wsgi:application",
        web_port,
        {
            **env,
            "GUNICORN_CMD_ARGS": f"--access-logfile {access_log} "
            f"--access-logformat '{ACCESS_LOG_FORMAT}'",
        },
    )
    worker = kizuna(["worker", "--worker-id", "bench-survey"], env, log=directory / "worker.log")

    def invitation_calls() -> list[float]:
        """The seconds the Survey service took for each invitations call so far."""
        lines = access_log.read_text().splitlines() if access_log.exists() else []
        found = (INVITATIONS_CALL.search(line) for line in lines)
        return [int(match.group(1)) / 1e6 for match in found if match]

    def cpu() -> tuple[float, float, float, float]:
        return (
            cpu_seconds(worker.pid),
            cpu_seconds(web.pid),
            time.process_time(),
            cpu_seconds(sink.process.pid),
        )

    try:
        wait_up(survey_url + "/survey/api/v1/openapi.json", timeout=120)
        wait_for(
            lambda: WorkerProcess.objects.filter(worker_id="bench-survey").exists(),
            timeout=120,
            what="the worker to start",
        )
        # Warm-up of both kinds (imports, URLconf, first connections) outside the clocks.
        send(20, body_text="Warm-up", label="w", sink=sink, expected=20)
        send(20, body_text=f"Warm-up {link}", label="v", sink=sink, expected=40)
        load_before = load_average()

        calls_before = len(invitation_calls())
        before = cpu()
        plain, plain_queue, plain_seconds = send(
            count,
            body_text="Dear {{ lead.full_name }}",
            label="p",
            sink=sink,
            expected=40 + count,
        )
        middle = cpu()
        survey, survey_queue, survey_seconds = send(
            count,
            body_text="Dear {{ lead.full_name }}, please answer: " + link,
            label="s",
            sink=sink,
            expected=40 + 2 * count,
        )
        after = cpu()
        calls = invitation_calls()[calls_before:]
        load_during = load_average()
    finally:
        stop(worker, timeout=60)
        stop(web)
        sink.stop()

    rows = dict(OutgoingMessage.objects.values_list("message_id", "pk"))
    assert len(rows) == 40 + 2 * count, f"{len(rows)} rows for {40 + 2 * count} leads"
    sink.check_each_arrived_once(rows)
    check_links(survey, survey_id)
    plain_waited, plain_parts = waiting_for_parts(plain)
    survey_waited, survey_parts = waiting_for_parts(survey)

    plain_rate = count / plain_seconds
    survey_rate = count / survey_seconds
    return {
        "database": connection.vendor,
        "count": count,
        "plain_rate": plain_rate,
        "plain_seconds": plain_seconds,
        "plain_queue_seconds": plain_queue,
        "survey_rate": survey_rate,
        "survey_seconds": survey_seconds,
        "survey_queue_seconds": survey_queue,
        "ratio": survey_rate / plain_rate,
        "invitation_calls": len(calls),
        "invitation_call_seconds": calls,
        "plain_worker_cpu_ms": 1000 * (middle[0] - before[0]) / count,
        "survey_worker_cpu_ms": 1000 * (after[0] - middle[0]) / count,
        "plain_web_cpu_ms": 1000 * (middle[1] - before[1]) / count,
        "survey_web_cpu_ms": 1000 * (after[1] - middle[1]) / count,
        "plain_bench_cpu_ms": 1000 * (middle[2] - before[2]) / count,
        "survey_bench_cpu_ms": 1000 * (after[2] - middle[2]) / count,
        "plain_waited_seconds": plain_waited,
        "plain_parts": plain_parts,
        "survey_waited_seconds": survey_waited,
        "survey_parts": survey_parts,
        "plain_sink_cpu_ms": 1000 * (middle[3] - before[3]) / count,
        "survey_sink_cpu_ms": 1000 * (after[3] - middle[3]) / count,
        "load_before": load_before,
        "load_during": load_during,
    }


def describe(result: dict[str, Any]) -> str:
    return (
        f"{result['count']:,} recipients, {result['database']}, one `kizuna worker` for both "
        f"sides: plain CRM mail {result['plain_rate']:,.0f} msg/s ({result['plain_seconds']:.1f}"
        f" s, of which queue_emails {result['plain_queue_seconds']:.1f} s; worker CPU "
        f"{result['plain_worker_cpu_ms']:.2f} ms a message); survey send "
        f"{result['survey_rate']:,.0f} msg/s ({result['survey_seconds']:.1f} s, of which "
        f"queue_emails with the first part {result['survey_queue_seconds']:.1f} s; worker CPU "
        f"{result['survey_worker_cpu_ms']:.2f} ms a message, Survey service "
        f"{result['survey_web_cpu_ms']:.2f} ms, the sender's process (queue_emails, polling) "
        f"{result['survey_bench_cpu_ms']:.2f} ms against plain's "
        f"{result['plain_bench_cpu_ms']:.2f} ms, SMTP server {result['survey_sink_cpu_ms']:.2f} "
        f"ms against {result['plain_sink_cpu_ms']:.2f} ms) = {result['ratio']:.0%} of plain; "
        f"{result['invitation_calls']} invitation API calls (at the Survey service "
        f"{', '.join(f'{seconds:.2f}' for seconds in result['invitation_call_seconds'])} s); "
        "the mail lane waited for the "
        f"next part {result['plain_waited_seconds']:.1f} s (plain, {result['plain_parts']} "
        f"parts) and {result['survey_waited_seconds']:.1f} s (survey, "
        f"{result['survey_parts']} parts); {result['load_during']}"
    )


def run_child(database: str, count: int) -> dict[str, Any] | None:
    return child_in_database(
        [sys.executable, __file__, "--child", "--count", str(count)],
        database,
        prefix="kizuna-bench-survey-send-",
        postgres_name=PG_DATABASE,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200 if quick() else 10_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--record", action="store_true", help="write docs/benchmarks.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.count, Path(os.environ["KIZUNA_DATA_DIR"]))))
        return

    for database in args.databases.split(","):
        result = run_child(database.strip(), args.count)
        if result is None:
            continue
        line = f"{describe(result)}; {machine()}"
        print(line, flush=True)
        if args.record or recording():
            suffix = "" if result["database"] == "sqlite" else f".{result['database']}"
            record(
                FIGURE + suffix,
                result["ratio"],
                "ratio",
                baseline=result["plain_rate"],
                ratio=result["ratio"],
                target=f">= {TARGET_RATIO:.2f} of plain CRM mail, <= 10 invitation API calls "
                "for 10,000",
                met=result["ratio"] >= TARGET_RATIO
                and result["invitation_calls"] <= max(1, -(-args.count // 1000)),
                note=line,
            )


if __name__ == "__main__":
    main()
