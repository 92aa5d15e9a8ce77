"""Bulk survey send against plain CRM mail of the same size, in the same run (issue #7).

A Survey service runs in gunicorn on loopback (same database); an aiosmtpd server (a thread
of this process) receives the mail. N leads get:

1. plain CRM mail: `queue_emails()` renders and queues N messages, `run_due_work()` (what
   `kizuna worker` runs) sends them;
2. a survey email with `{{ survey.<id> }}`: the same, plus the mail prepare step asking the
   Survey API for N personal invitation links, 1,000 per call (the first part while the
   sender waits, the others in the worker), each recipient mailed their own link.

Figure: the survey send's rate as a share of plain mail's (target >= 70 %), and how many
invitation API calls it made (target <= 10 for 10,000 recipients).

    .venv/bin/python bench/crm_survey_send.py [--count 10000] [--record]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import (  # noqa: E402
    free_port,
    gunicorn,
    kizuna_env,
    machine,
    quick,
    record,
    recording,
    stop,
    wait_up,
)


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


def send(count: int, *, body_text: str, label: str) -> tuple[float, float]:
    """Queue and send `count` emails to new leads; (seconds to queue, seconds to send)."""
    from kizuna.crm.mail import services, transport
    from kizuna.crm.mail.models import OutgoingMessage
    from kizuna.crm.models import Lead, Organization
    from kizuna.identity.models import User
    from kizuna.work import leases

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
    started = time.perf_counter()
    while leases.run_due_work(worker_id="bench"):
        pass
    sent = time.perf_counter() - started
    transport.reset()
    done = OutgoingMessage.objects.filter(batch=batch, status="done").count()
    assert done == count, f"{label}: only {done} of {count} sent"
    return queued, sent


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
        portal=account.portals.first(), title="Bench survey", created_by=ada
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200 if quick() else 10_000)
    parser.add_argument("--record", action="store_true", help="write docs/benchmarks.json")
    args = parser.parse_args()

    smtp_port, web_port = free_port(), free_port()
    survey_url = f"http://127.0.0.1:{web_port}"
    data_dir = tempfile.mkdtemp(prefix="kizuna-bench-survey-send-")
    env = kizuna_env(
        data_dir,
        SURVEY_URL=survey_url,
        KIZUNA_BASE_URL=survey_url,
        KIZUNA_SMTP_HOST="127.0.0.1",
        KIZUNA_SMTP_PORT=str(smtp_port),
    )
    os.environ.clear()
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.db import connection

    call_command("migrate", verbosity=0)
    survey_id = set_up()

    from aiosmtpd.controller import Controller

    from kizuna.crm.integration import client

    calls: list[int] = []
    create_invitations = client.create_invitations

    def counting(credentials, *, survey_id, invitations):  # type: ignore[no-untyped-def]
        calls.append(len(invitations))
        return create_invitations(credentials, survey_id=survey_id, invitations=invitations)

    client.create_invitations = counting  # type: ignore[assignment]

    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    server = gunicorn("kizuna.wsgi:application", web_port, env)
    try:
        wait_up(survey_url + "/survey/api/v1/openapi.json", timeout=60)
        # Warm-up (imports, URLconf, first connections) outside the timings, of both kinds.
        send(20, body_text="Warm-up", label="w")
        link = f"{{{{ survey.{survey_id} }}}}"
        send(20, body_text=f"Warm-up {link}", label="v")
        calls.clear()
        plain_queue, plain_send = send(args.count, body_text="Dear {{ lead.full_name }}", label="p")
        survey_queue, survey_send = send(
            args.count,
            body_text="Dear {{ lead.full_name }}, please answer: " + link,
            label="s",
        )
    finally:
        stop(server)
        controller.stop()
    assert counter.count == 2 * args.count + 40, counter.count

    plain_rate = args.count / (plain_queue + plain_send)
    survey_rate = args.count / (survey_queue + survey_send)
    ratio = survey_rate / plain_rate
    line = (
        f"{args.count} recipients, {connection.vendor}, {machine()}: plain CRM mail "
        f"{plain_rate:,.0f} msg/s (queue {plain_queue:.1f} s + send {plain_send:.1f} s); "
        f"survey send {survey_rate:,.0f} msg/s (queue with first part {survey_queue:.1f} s + "
        f"worker {survey_send:.1f} s) = {ratio:.0%} of plain; {len(calls)} invitation API "
        f"calls ({', '.join(str(size) for size in calls)})"
    )
    print(line)
    if args.record or recording():
        record(
            "crm.survey_send.rate_vs_plain_mail",
            ratio,
            "ratio",
            baseline=plain_rate,
            ratio=ratio,
            target=">= 0.70 of plain CRM mail, <= 10 invitation API calls for 10,000",
            met=ratio >= 0.70 and len(calls) <= max(1, -(-args.count // 1000)),
            note=line,
        )


if __name__ == "__main__":
    main()
