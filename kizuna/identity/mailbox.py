"""The local mailbox: outgoing mail written to the data dir instead of an SMTP server.

It is the default when no SMTP host is configured, so a demo can follow survey links
from the browser (/mailbox/) without any mail server.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage as ParsedMessage
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

# Who asked Kizuna to send a message (an email address). The local mailbox shows a
# message to its recipients and to its sender only: mail that a member of one
# organization sends to a lead must not be readable by members of another.
SENT_BY_HEADER = "X-Kizuna-Sent-By"


def sent_by_headers(user: Any) -> dict[str, str]:
    """Headers to pass to EmailMessage(headers=...) for mail sent on behalf of `user`."""
    return {SENT_BY_HEADER: user.email}


def in_use() -> bool:
    """True when outgoing mail goes to the local mailbox instead of an SMTP server."""
    return settings.EMAIL_BACKEND.endswith("MailboxBackend")


class MailboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        directory = mailbox_dir()
        directory.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
            name = f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
            partial = directory / f".{name}.part"
            partial.write_bytes(message.message().as_bytes(linesep="\n"))
            partial.rename(directory / name)  # atomic: readers never see half a message
            sent += 1
        return sent


def mailbox_dir() -> Path:
    return Path(settings.KIZUNA_MAILBOX_DIR)


def list_messages(limit: int = 200) -> list[dict[str, Any]]:
    paths = sorted(mailbox_dir().glob("*.eml"), reverse=True)[:limit]
    return [summarize(path) for path in paths]


def read_message(name: str) -> ParsedMessage | None:
    path = mailbox_dir() / name
    if "/" in name or not name.endswith(".eml") or not path.is_file():
        return None
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, ParsedMessage)
    return parsed


def summarize(path: Path) -> dict[str, Any]:
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    return {
        "name": path.name,
        "subject": str(parsed.get("Subject", "")),
        "to": str(parsed.get("To", "")),
        "from": str(parsed.get("From", "")),
        "date": sent_at(parsed),
        "recipients": recipients(parsed),
        "sent_by": sent_by(parsed),
    }


def sent_at(message: Message) -> datetime | None:
    """The Date header as an aware datetime, for the page to show in the user's time zone."""
    try:
        sent = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError):
        return None
    # "-0000" (what Django writes) means UTC of an unknown place: naive here.
    return sent if sent.tzinfo else sent.replace(tzinfo=UTC)


def sent_by(message: Message) -> str:
    return str(message.get(SENT_BY_HEADER, "")).strip().lower()


def recipients(message: Message) -> frozenset[str]:
    """The lowercased addresses in To and Cc."""
    headers = [str(value) for key in ("To", "Cc") for value in message.get_all(key) or []]
    return frozenset(address.lower() for _name, address in getaddresses(headers) if address)
