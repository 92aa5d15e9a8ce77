"""CRM bulk send: Kizuna's outbox + worker handler against raw smtplib, same SMTP server, same run.

An aiosmtpd server on loopback (a thread of this process) receives N messages
twice:

1. raw smtplib: one connection, N `sendmail()` calls of prebuilt messages (the
   floor: no database, no rendering);
2. Kizuna: `queue_emails()` renders and queues N outbox rows in one transaction,
   then `run_due_work()` (what `kizuna worker` runs) claims them under a lease and
   sends each with the fenced two-step handoff, marking it sent with its timeline
   entry.

The database is a fresh SQLite file in a temporary data dir unless DATABASE_URL
is set (then that database is used as it is: point it at a scratch database).
Results are printed and, with --record, appended to docs/benchmarks.md.

    .venv/bin/python bench/crm_mail_send.py [--count 1000] [--record]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import free_port, machine  # noqa: E402


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


def raw_smtplib(port: int, count: int) -> float:
    messages = []
    for i in range(count):
        message = EmailMessage()
        message["From"] = "Ada Lovelace <kizuna@localhost>"
        message["To"] = f"Given{i} Family{i} <lead{i}@example.com>"
        message["Subject"] = f"Hello Given{i}"
        message.set_content(f"Dear Given{i} Family{i} of Company {i}\n")
        message.add_alternative(f"<p>Dear Given{i} Family{i} of Company {i}</p>", subtype="html")
        messages.append(message)
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for message in messages:
            smtp.send_message(message)
    return time.perf_counter() - started


def kizuna_outbox(count: int) -> tuple[float, float]:
    from django.urls import reverse

    from kizuna.crm.mail import services, transport
    from kizuna.crm.mail.models import OutgoingMessage
    from kizuna.crm.models import Lead, Organization
    from kizuna.identity.models import User
    from kizuna.work import leases

    reverse("crm_mail:unsubscribe", args=["warm-up"])  # load the URLconf outside the timings
    organization = Organization.objects.create(name=f"Bench {time.time()}")
    sender = User.objects.create_user(f"bench-{time.time()}@example.com", "x", full_name="Ada")
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
    started = time.perf_counter()
    batch = services.queue_emails(
        organization=organization,
        sender=sender,
        module="leads",
        records=leads,
        subject="Hello {{ lead.given_name }}",
        body_html="<p>Dear {{ lead.full_name }} of {{ lead.company }}</p>",
        body_text="",
    )
    queued = time.perf_counter() - started
    started = time.perf_counter()
    while leases.run_due_work(worker_id="bench"):
        pass
    sent = time.perf_counter() - started
    transport.reset()
    done = OutgoingMessage.objects.filter(batch=batch, status="done").count()
    assert done == count, f"only {done} of {count} sent"
    return queued, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args()

    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="kizuna-bench-mail-"))
    os.environ.update(
        KIZUNA_DATA_DIR=str(data_dir),
        KIZUNA_SMTP_HOST="127.0.0.1",
        KIZUNA_SMTP_PORT=str(port),
        DJANGO_SETTINGS_MODULE="kizuna.settings",
    )
    import django
    from django.core.management import call_command

    django.setup()
    from django.db import connection

    call_command("migrate", verbosity=0)

    from aiosmtpd.controller import Controller

    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        raw = raw_smtplib(port, args.count)
        queued, sent = kizuna_outbox(args.count)
    finally:
        controller.stop()
    assert counter.count == 2 * args.count, counter.count

    database = connection.vendor
    lines = [
        f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, {database}, "
        f"{args.count} messages to aiosmtpd on loopback:",
        f"  - raw smtplib, one connection: {raw:.2f} s ({args.count / raw:,.0f} msg/s)",
        f"  - Kizuna queue_emails (render + queue): {queued:.2f} s "
        f"({args.count / queued:,.0f} msg/s)",
        f"  - Kizuna worker send (claim, SMTP, mark sent + timeline): {sent:.2f} s "
        f"({args.count / sent:,.0f} msg/s, {sent / raw:.1f}x raw smtplib)",
    ]
    print("\n".join(lines))
    if args.record:
        path = ROOT / "docs" / "benchmarks.md"
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        heading = "## CRM bulk send"
        if heading not in text:
            text = text.rstrip("\n") + (
                f"\n\n{heading}\n\n"
                "`bench/crm_mail_send.py`: N messages through the CRM outbox and the worker's\n"
                "handler versus raw smtplib on one connection, to the same aiosmtpd server in\n"
                "the same run.\n"
            )
        # Append under the section (it may not be the last one in the file).
        start = text.index(heading)
        following = text.find("\n## ", start + len(heading))
        insert_at = len(text) if following == -1 else following
        text = text[:insert_at].rstrip("\n") + "\n\n" + "\n".join(lines) + "\n" + text[insert_at:]
        path.write_text(text)


if __name__ == "__main__":
    main()
