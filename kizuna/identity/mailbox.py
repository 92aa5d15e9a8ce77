"""The local mailbox: outgoing mail written to the data dir instead of an SMTP server.

It is the default when no SMTP host is configured, so a demo can follow survey links
from the browser (/mailbox/) without any mail server. It is a development and demo
aid: with real users, configure SMTP.

Who reads what: a message is shown whole to its recipients (To, Cc) and to staff
(made with `kizuna createsuperuser`, so people who can read these files anyway);
its sender (X-Kizuna-Sent-By) reads a copy in which every link meant only for the
recipient is hidden. Such links carry a secret (set a password, accept an
invitation, answer a survey as that person, unsubscribe them): showing them to the
sender would let anyone who can make Kizuna mail an address act as its owner.

Every path that sends mail marks its messages with `mark()`: their kind (one of
MailKind) and the secrets in them. The backend writes the sender's copy with the
secrets hidden; a message without a kind gets no copy, so only its recipients read it.
"""

from __future__ import annotations

import copy
import html
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage as ParsedMessage
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

# Who asked Kizuna to send a message (an email address). The local mailbox shows a
# message to its recipients and a copy to its sender only: mail that a member of one
# organization sends to a lead must not be readable by members of another.
SENT_BY_HEADER = "X-Kizuna-Sent-By"
KIND_HEADER = "X-Kizuna-Mail-Kind"

# What a hidden link becomes in the sender's copy (the page shows it translated).
HIDDEN = "[kizuna: link shown only to the recipient]"


class MailKind(StrEnum):
    """Every kind of mail Kizuna sends. A new kind is reviewed against the mailbox rule
    (kizuna/e2e/test_mail_secrets.py lists them all) before it may be sent."""

    PASSWORD_RESET = "password-reset"  # noqa: S105 - a kind of mail, not a password
    CRM_INVITATION = "crm-invitation"
    SURVEY_MEMBER_INVITATION = "survey-member-invitation"
    CRM_MESSAGE = "crm-message"


_KINDS = frozenset(kind.value for kind in MailKind)

# The secrets of each message on its way to the backend (never a header: SMTP would send it).
_secrets: WeakKeyDictionary[EmailMessage, tuple[str, ...]] = WeakKeyDictionary()


def mark(
    email: EmailMessage,
    *,
    kind: MailKind,
    sent_by: Any = None,
    secrets: Iterable[str] = (),
) -> EmailMessage:
    """Mark `email` for the local mailbox: its kind, the user who sent it (if any), and
    the secrets (tokens, or whole links) that only its recipients may read."""
    email.extra_headers[KIND_HEADER] = kind.value
    if sent_by is not None:
        email.extra_headers[SENT_BY_HEADER] = sent_by.email
    _secrets[email] = tuple(secret for secret in secrets if secret)
    return email


def in_use() -> bool:
    """True when outgoing mail goes to the local mailbox instead of an SMTP server."""
    return settings.EMAIL_BACKEND.endswith("MailboxBackend")


# Links in a message: the sender's copy hides every one that holds a secret.
_LINK = re.compile(r"""(?:https?://|mailto:)[^\s"'<>]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]"
# A survey invitation (/s/i/<token>/) answers as its one recipient, whoever sent it.
_INVITATION_PATH = re.compile(r"/s/i/[^/\s]+")


def hide_secrets(text: str, secrets: Sequence[str]) -> str:
    """`text` with every link that holds one of `secrets` (or a survey invitation link)
    replaced by HIDDEN, and every other occurrence of a secret too."""

    def hide_link(match: re.Match[str]) -> str:
        link = match.group(0)
        kept = len(link.rstrip(_TRAILING))
        link, tail = link[:kept], link[kept:]
        plain = html.unescape(link)
        holds_secret = any(secret in plain for secret in secrets)
        return (HIDDEN if holds_secret or _INVITATION_PATH.search(plain) else link) + tail

    text = _LINK.sub(hide_link, text)
    for secret in secrets:
        text = text.replace(secret, HIDDEN).replace(html.escape(secret), HIDDEN)
    return text


def sender_copy(message: EmailMessage) -> EmailMessage:
    """The copy of `message` its sender may read: the same message, secrets hidden."""
    secrets = _secrets.get(message, ())
    hidden = copy.copy(message)
    hidden.subject = hide_secrets(str(message.subject), secrets)
    hidden.body = hide_secrets(str(message.body), secrets)
    hidden.extra_headers = {
        key: hide_secrets(str(value), secrets) for key, value in message.extra_headers.items()
    }
    if isinstance(message, EmailMultiAlternatives):
        assert isinstance(hidden, EmailMultiAlternatives)
        hidden.alternatives = []
        for content, mimetype in message.alternatives:
            hidden.attach_alternative(hide_secrets(str(content), secrets), mimetype)
    return hidden


class MailboxBackend(BaseEmailBackend):
    """Writes each message whole (for its recipients) and, when it is marked with a kind,
    the sender's copy without its secrets."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        directory = mailbox_dir()
        copies = directory / "copies"
        copies.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
            name = f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
            if message.extra_headers.get(KIND_HEADER) in _KINDS:
                _write(copies / name, sender_copy(message))
            # The whole message last: a listed message always has its copy already.
            _write(directory / name, message)
            sent += 1
        return sent


def _write(path: Path, message: EmailMessage) -> None:
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(message.message().as_bytes(linesep="\n"))
    partial.rename(path)  # atomic: readers never see half a message


def mailbox_dir() -> Path:
    return Path(settings.KIZUNA_MAILBOX_DIR)


def message_names(limit: int = 200) -> list[str]:
    """The newest messages first (whole messages; each may have a sender's copy)."""
    return [path.name for path in sorted(mailbox_dir().glob("*.eml"), reverse=True)[:limit]]


def read_message(name: str, *, sender_copy: bool = False) -> ParsedMessage | None:
    """A message whole, or its sender's copy; None when there is no such file."""
    if "/" in name or "\\" in name or not name.endswith(".eml") or name.startswith("."):
        return None
    path = mailbox_dir() / "copies" / name if sender_copy else mailbox_dir() / name
    if not path.is_file():
        return None
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, ParsedMessage)
    return parsed


def list_messages(limit: int = 200) -> list[dict[str, Any]]:
    """Summaries of the newest whole messages, whoever they are for (tests, operators)."""
    return [
        summarize(name, whole)
        for name in message_names(limit)
        if (whole := read_message(name)) is not None
    ]


def readable_message(user: Any, name: str) -> tuple[ParsedMessage, bool] | None:
    """The message `name` as `user` may read it, and whether that is the sender's copy;
    None when it is not theirs to read."""
    whole = read_message(name)
    if whole is None:
        return None
    email = user.email.lower()
    if user.is_staff or email in recipients(whole):
        return whole, False
    if email == sent_by(whole):
        copy = read_message(name, sender_copy=True)  # none for an unmarked message
        return (copy, True) if copy is not None else None
    return None


def readable_messages(user: Any, limit: int = 200) -> list[dict[str, Any]]:
    """Summaries of the newest messages `user` may read (the sender's copy when theirs)."""
    summaries = []
    for name in message_names(limit):
        readable = readable_message(user, name)
        if readable is not None:
            summaries.append(summarize(name, readable[0]))
    return summaries


def summarize(name: str, message: Message) -> dict[str, Any]:
    return {
        "name": name,
        "subject": str(message.get("Subject", "")),
        "to": str(message.get("To", "")),
        "from": str(message.get("From", "")),
        "date": sent_at(message),
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
