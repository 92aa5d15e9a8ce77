"""A `kizuna worker` killed -9 in the middle of a bulk send: every message arrives, none is lost.

Two real worker processes send through a real SMTP server (aiosmtpd on loopback,
in this process). Once the victim worker has sent a few messages, the server
itself kills it with SIGKILL at a chosen point of an SMTP transaction on the
victim's connection:

- "before_data": while the server handles RCPT TO, before that message's data;
- "after_dot": after the server took the message and before it answers 250, so
  the victim never learns that it was taken and has not committed it as sent.

The victim's other sending threads are anywhere in their own transactions at that
moment. Every row the victim held (the one on the killing connection at least) is
taken over by the survivor once the victim's heartbeat is older than the lease.
Delivery is at least once (kizuna/crm/mail/transport.py): the SMTP server must end
with every recipient's message, counted by Message-ID; a second copy only of a
message the victim held when it died (the one killed after its dot always), never
a third, never one the victim did not hold.

Which rows the victim held is read from the rows themselves at the end (a row
claimed by the victim and then by the survivor has 2 attempts), not by looking at
the table at the moment of the kill: a look that races the survivor under load.

Under load (CI runs the whole suite on 2 cores, two test processes at once) every
wait is for a condition with a generous timeout, never a fixed sleep: the survivor
starts only once the victim has claimed its batch, however slowly the victim
started, and the lease is long enough (heartbeats every 2 s, dead after 10 s) that
a worker starved of CPU for a few seconds is not taken for dead while it sends.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from kizuna.crm.mail.models import OutgoingMessage
from kizuna.crm.mail.tests.conftest import queue_text_email
from kizuna.crm.models import Lead
from kizuna.testing.processes import database_url, kizuna_env, start_kizuna, stop, wait_for
from kizuna.testing.races import require_postgresql
from kizuna.work.leases import WorkStatus

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Heartbeats every LEASE_SECONDS / 5. With 2 s, a worker starved of CPU for 2 s on a
# loaded machine was declared dead while it ran, and lost its rows before the kill.
LEASE_SECONDS = 10
RECIPIENTS = 150
SENT_BEFORE_KILL = 10


@pytest.fixture(autouse=True)
def _postgresql_only():
    require_postgresql("two workers claiming with SKIP LOCKED need PostgreSQL")


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (to tell its SMTP connection apart)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def alive(process, log: Path) -> bool:
    """True while `process` runs; a worker that exited early (the database refused its
    connection on a crowded server, say) fails the test at once, with its log."""
    if process.poll() is not None:
        raise AssertionError(f"the worker exited early:\n{log.read_text(errors='replace')}")
    return True


@pytest.mark.usefixtures("ada_membership")
@pytest.mark.parametrize("moment", ["before_data", "after_dot"])
def test_a_worker_killed_mid_batch_loses_no_message_and_repeats_only_what_it_held(
    tmp_path, smtp_server, settings, moment, ada, organization
):
    inbox, port = smtp_server
    inbox.delay = 0.01
    settings.KIZUNA_WORKER_LEASE_SECONDS = LEASE_SECONDS
    leads = Lead.objects.bulk_create(
        Lead(organization=organization, family_name=f"F{i}", email=f"r{i}@example.com")
        for i in range(RECIPIENTS)
    )
    queue_text_email(
        organization,
        ada,
        leads,
        subject="Hello {{ lead.family_name }}",
        body_text="Hi {{ lead.family_name }}",
    )

    env = kizuna_env(
        tmp_path,
        DATABASE_URL=database_url(),
        KIZUNA_WORKER_LEASE_SECONDS=str(LEASE_SECONDS),
        KIZUNA_SMTP_HOST="127.0.0.1",
        KIZUNA_SMTP_PORT=str(port),
    )
    log = tmp_path / "workers.log"
    victim = start_kizuna(["worker", "--interval", "0.1", "--worker-id", "victim"], env, log)
    killed = threading.Event()
    from_victim: list[int] = []

    def count_victims_message(session) -> None:
        if not killed.is_set() and session.peer[1] in local_ports(victim.pid):
            from_victim.append(1)

    killed_message: list[str] = []

    def maybe_kill(session) -> bool:
        if killed.is_set() or session.peer[1] not in local_ports(victim.pid):
            return False
        if len(from_victim) >= SENT_BEFORE_KILL:
            os.kill(victim.pid, signal.SIGKILL)
            killed.set()
            return True
        return False

    if moment == "before_data":
        inbox.on_rcpt = maybe_kill
        inbox.on_message = count_victims_message
    else:

        def after_dot(session) -> None:
            if maybe_kill(session):
                # handle_DATA appended it just now, with no await in between.
                killed_message.append(inbox.messages[-1].message["Message-ID"])
            count_victims_message(session)

        inbox.on_message = after_dot

    survivor = None
    try:
        # The survivor starts once the victim holds a batch: a victim slow to start on a
        # loaded machine would otherwise find every message sent before it claims one.
        wait_for(
            lambda: (
                alive(victim, log) and OutgoingMessage.objects.filter(leased_by="victim").exists()
            ),
            timeout=180,
            message="the victim to claim a batch",
        )
        survivor = start_kizuna(
            ["worker", "--interval", "0.1", "--worker-id", "survivor"], env, log
        )
        wait_for(killed.is_set, timeout=180, message="the victim to be killed mid-batch")
        victim.wait(timeout=30)
        wait_for(
            lambda: (
                alive(survivor, log)
                and not OutgoingMessage.objects.exclude(status=WorkStatus.DONE).exists()
            ),
            timeout=300,
            message="the survivor to send everything",
        )
    finally:
        stop(victim, signal.SIGKILL)
        if survivor is not None:
            stop(survivor, timeout=30)

    rows = {row.message_id: row for row in OutgoingMessage.objects.all()}
    received = Counter(message.message["Message-ID"] for message in inbox.messages)
    assert len(rows) == RECIPIENTS
    assert set(received) == set(rows)  # nothing lost, nothing else
    for message in inbox.messages:
        row = rows[message.message["Message-ID"]]
        assert message.envelope_to == [row.to_address]
        assert message.message["Subject"] == f"Hello {row.recipient_name}"
    # Claimed by the victim, then (when it was dead) by the survivor, which sent it.
    taken_over = {mid for mid, row in rows.items() if row.attempts > 1}
    assert taken_over  # the victim died holding at least the message of the killing connection
    assert {(rows[mid].leased_by, rows[mid].attempts) for mid in taken_over} == {("survivor", 2)}
    twice = {mid for mid, count in received.items() if count == 2}
    assert {mid: count for mid, count in received.items() if count > 2} == {}
    assert twice <= taken_over
    if moment == "after_dot":
        assert killed_message[0] in twice
