"""A real SMTP server on loopback for tests of "the email could not be sent".

The fixture `mail_server` yields (server, port); `smtp_settings(port)` points Django's SMTP
backend at a port. `server.refusing = True` makes it answer each message with 554; a port from
`free_port()` with no server behind it refuses the connection itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings

from kizuna.testing.processes import free_port

__all__ = ["MailServer", "free_port", "mail_server", "smtp_settings"]


class MailServer:
    """Takes every message (`received`), or refuses each one while `refusing`."""

    def __init__(self) -> None:
        self.refusing = False
        self.received: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusing:
            return "554 5.7.1 Message refused by policy"
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        return "250 Message accepted for delivery"


def smtp_settings(port: int) -> override_settings:
    return override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
        EMAIL_TIMEOUT=5,
    )


@pytest.fixture
def mail_server() -> Iterator[tuple[MailServer, int]]:
    server = MailServer()
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield server, port
    finally:
        controller.stop()
