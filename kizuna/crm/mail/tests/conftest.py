"""CRM mail fixtures: the personas in their organizations, records, and a real SMTP server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage as ParsedMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings
from django.test.signals import setting_changed

from kizuna.crm.mail import extensions, services, transport
from kizuna.crm.mail.models import SendBatch
from kizuna.crm.models import Contact, Lead, Organization
from kizuna.identity.models import User
from kizuna.testing.processes import free_port


@pytest.fixture(autouse=True)
def _fresh_email_backend() -> Iterator[None]:
    """transport keeps this thread's email backend open between messages: drop it
    whenever a test changes settings (override_settings), and after each test."""

    def reset(**kwargs: Any) -> None:
        transport.reset()

    setting_changed.connect(reset)
    try:
        yield
    finally:
        setting_changed.disconnect(reset)
        transport.reset()


@pytest.fixture(autouse=True)
def _extensions_restored() -> Iterator[None]:
    """Tests register and unregister their own "survey" button and namespace: give the
    app's own registrations (the Survey integration's) back after each test."""
    buttons, namespaces = dict(extensions._buttons), dict(extensions._namespaces)
    yield
    extensions._buttons.clear()
    extensions._buttons.update(buttons)
    extensions._namespaces.clear()
    extensions._namespaces.update(namespaces)


@pytest.fixture
def lead(organization) -> Lead:
    return Lead.objects.create(
        organization=organization,
        family_name="山田",
        given_name="太郎",
        company="山田商事",
        email="taro@example.jp",
    )


@pytest.fixture
def contact(organization) -> Contact:
    return Contact.objects.create(
        organization=organization,
        family_name="Hopper",
        given_name="Grace",
        company="Navy",
        email="grace@example.com",
    )


def queue_text_email(
    organization: Organization,
    sender: User,
    records: list[Lead],
    *,
    subject: str = "S",
    body_text: str = "T",
) -> SendBatch:
    """A plain-text email to leads, queued as the composer queues it."""
    return services.queue_emails(
        organization=organization,
        sender=sender,
        module="leads",
        records=records,
        subject=subject,
        body_html="",
        body_text=body_text,
    )


@dataclass
class Received:
    """One message as the SMTP server got it."""

    envelope_to: list[str]
    raw: bytes

    @property
    def message(self) -> ParsedMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, ParsedMessage)
        return parsed


@dataclass
class Inbox:
    """What aiosmtpd received; `refuse` makes it answer DATA with that reply instead."""

    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    # Recipients refused at RCPT (before DATA) with that reply.
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    # Seconds between taking the message and answering 250: a slow server.
    delay: float = 0.0
    # Called with the session at RCPT and after a message is taken (before the 250).
    on_rcpt: Callable[[Any], object] | None = None
    on_message: Callable[[Any], None] | None = None
    # Called with the address at RCPT, before it is answered.
    on_recipient: Callable[[str], None] | None = None

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        if self.on_rcpt is not None:
            self.on_rcpt(session)
        if self.on_recipient is not None:
            self.on_recipient(address)
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        for address in envelope.rcpt_tos:
            if address in self.refuse:
                return self.refuse[address]
        with self.lock:
            self.messages.append(Received(list(envelope.rcpt_tos), bytes(envelope.content)))
        if self.on_message is not None:
            self.on_message(session)
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[ParsedMessage]:
        with self.lock:
            return [r.message for r in self.messages if address in r.envelope_to]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def local_mailbox(tmp_path: Path) -> Iterator[Path]:
    """Django writes mail to the local mailbox, in a directory of its own (yielded)."""
    with override_settings(
        EMAIL_BACKEND="kizuna.identity.mailbox.MailboxBackend", KIZUNA_MAILBOX_DIR=tmp_path
    ):
        yield tmp_path


@pytest.fixture
def smtp(smtp_server) -> Iterator[Inbox]:
    """Django sends through SMTP to the aiosmtpd server on loopback."""
    inbox, port = smtp_server
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
    ):
        yield inbox
