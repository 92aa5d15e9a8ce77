"""Handing one message to the mail server in two steps, so the outbox can fence it.

SMTP has no two-phase commit: a server takes responsibility for a message when it
answers 250 to the final "." of DATA. `SmtpDelivery.begin()` sends the envelope and
the whole message but that final dot; the caller then checks (and renews) its lease
on the row (only the worker holding it may send), `finish()` sends the dot and reads
the 250, and only then is the row committed as sent. So delivery is at least once,
never lost:

- a worker killed before the dot leaves the server with an unterminated DATA it
  discards when the connection drops; the row is sent again later, once;
- a worker that lost its lease (it was taken for dead and another worker took the
  row) drops the connection instead of sending the dot;
- a worker killed after the dot and before it committed "sent" (or a connection
  lost after the dot without a reply, RFC 1047) leaves the row leased to it: it is
  sent again: a second copy with the same Message-ID, so the recipient's mail
  program can tell it is the same message. Committing "sent" before the dot (as
  Kizuna once did) loses the message instead when the worker dies in that window,
  and with four sending threads per worker a kill lands there often.

The SMTP connection is kept open between messages of one process (a worker sends
batches), and reopened after an error or a quiet minute.
"""

from __future__ import annotations

import contextlib
import functools
import re
import smtplib
import socket
import threading
import time
from email.generator import BytesGenerator
from email.message import Message
from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import EmailMessage, sanitize_address

IDLE_SECONDS = 60.0
_local = threading.local()


class PermanentSendError(Exception):
    """The server refused the message for good (5xx): retrying will not help."""


class TemporarySendError(Exception):
    """The message was not accepted this time (4xx, network): retry later."""


def backend() -> BaseEmailBackend:
    """This thread's email backend, kept open between messages."""
    current: BaseEmailBackend | None = getattr(_local, "backend", None)
    now = time.monotonic()
    if current is not None and now - getattr(_local, "used_at", 0.0) > IDLE_SECONDS:
        reset()
        current = None
    if current is None:
        current = get_connection(fail_silently=False)
        _local.backend = current
    _local.used_at = now
    return current


def connection_cache() -> dict[Any, Any]:
    """A dict that lives as long as this thread's backend: what the messages sent over one
    connection share (the sender's address of a batch), forgotten with the backend."""
    cache: dict[Any, Any] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    return cache


def reset() -> None:
    """Forget this thread's backend (settings changed, or a non-SMTP backend failed)."""
    current: BaseEmailBackend | None = getattr(_local, "backend", None)
    _local.backend = None
    _local.cache = None
    if isinstance(current, SmtpBackend):
        reset_backend(current)
    elif current is not None:
        with contextlib.suppress(Exception):  # closing a broken connection
            current.close()


def _classify(code: int, response: Any) -> Exception:
    text = response.decode(errors="replace") if isinstance(response, bytes) else str(response)
    message = f"{code} {text}"
    if 500 <= code < 600:
        return PermanentSendError(message)
    return TemporarySendError(message)


def envelope(message: EmailMessage) -> tuple[str, list[str], bytes]:
    """The sender, the recipients and the bytes of `message`, as SMTP sends them.

    A message that cannot be built (a line break in a header value: BadHeaderError; an
    address that cannot be encoded) fails the same way every time: PermanentSendError.
    """
    encoding = message.encoding or settings.DEFAULT_CHARSET
    try:
        # The sender is the same for every message of a batch.
        sender = (
            _sanitized_sender(message.from_email, encoding)
            if isinstance(message.from_email, str)
            else sanitize_address(message.from_email, encoding)
        )
        recipients = [sanitize_address(address, encoding) for address in message.recipients()]
        data = message_bytes(message.message())
    except ValueError as error:  # BadHeaderError and UnicodeError are ValueErrors
        raise PermanentSendError(f"{type(error).__name__}: {error}") from error
    return sender, recipients, data


_sanitized_sender = functools.lru_cache(maxsize=64)(sanitize_address)

# A header value that the email package's folding (compat32) gives back as it is, when the
# line fits: printable ASCII words with single spaces (tests/test_envelope.py compares).
_PLAIN_HEADER = re.compile(r"[!-~]+(?: [!-~]+)*")


class _Generator(BytesGenerator):
    """BytesGenerator writing the plain short header lines of a message directly: folding
    each through email.header was a fifth of a bulk message's CPU in the worker."""

    def _write_headers(self, msg: Message) -> None:
        policy = self.policy
        assert policy is not None  # flatten() set it
        output = self._fp  # type: ignore[attr-defined]
        limit = policy.max_line_length
        for name, value in msg.raw_items():
            if (
                type(value) is str
                and limit
                and len(name) + 2 + len(value) <= limit
                and _PLAIN_HEADER.fullmatch(value)
            ):
                output.write(f"{name}: {value}{policy.linesep}".encode("ascii"))
            else:
                output.write(policy.fold_binary(name, value))
        self.write(self._NL)  # type: ignore[attr-defined]


def message_bytes(mime: Message) -> bytes:
    """The bytes of a MIME message as Django's `as_bytes()` writes them, with CRLF line ends.

    The boundary of a multipart message of text parts is chosen here, checked against the
    parts' text with a plain substring test, instead of by the generator with a regular
    expression compiled for each message.
    """
    parts = mime.get_payload() if mime.is_multipart() else None
    if isinstance(parts, list) and mime.get_boundary() is None:
        payloads = [part.get_payload() if isinstance(part, Message) else None for part in parts]
        texts = [payload for payload in payloads if isinstance(payload, str)]
        if len(texts) == len(parts):
            while True:
                boundary = BytesGenerator._make_boundary()  # type: ignore[attr-defined]
                if not any(boundary in text for text in texts):
                    break
            mime.set_boundary(boundary)
    output = BytesIO()
    _Generator(output, mangle_from_=False).flatten(mime, linesep="\r\n")
    return output.getvalue()


class SmtpDelivery:
    """One message on the shared SMTP connection: begin() up to the final dot, then finish()."""

    def __init__(self, smtp_backend: SmtpBackend, message: EmailMessage) -> None:
        self.smtp_backend = smtp_backend
        self.message = message

    def begin(self) -> None:
        sender, recipients, data = envelope(self.message)
        for attempt in (1, 2):
            try:
                self._open()
                self._envelope(sender, recipients, len(data))
                break
            except smtplib.SMTPServerDisconnected as error:
                # A kept-open connection the server closed meanwhile: reconnect once.
                reset_backend(self.smtp_backend)
                if attempt == 2:
                    raise TemporarySendError(str(error) or "server disconnected") from error
            except OSError as error:
                reset_backend(self.smtp_backend)
                raise TemporarySendError(f"{type(error).__name__}: {error}") from error
        connection = self.smtp_backend.connection
        assert connection is not None
        try:
            connection.putcmd("data")
            code, response = connection.getreply()
            if code != 354:
                connection.rset()
                raise _classify(code, response)
            quoted = re.sub(rb"(?m)^\.", b"..", data)
            if not quoted.endswith(b"\r\n"):
                quoted += b"\r\n"
            connection.send(quoted)
        except (smtplib.SMTPException, OSError) as error:
            reset_backend(self.smtp_backend)
            raise TemporarySendError(f"{type(error).__name__}: {error}") from error

    def _open(self) -> None:
        if self.smtp_backend.connection is None:
            self.smtp_backend.open()
            sock = getattr(self.smtp_backend.connection, "sock", None)
            if sock is not None:
                # The final dot goes out as a separate small write: without NODELAY,
                # Nagle holds it until the server's delayed ACK (~40 ms a message).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _envelope(self, sender: str, recipients: list[str], size: int) -> None:
        connection = self.smtp_backend.connection
        assert connection is not None
        connection.ehlo_or_helo_if_needed()
        options = []
        if connection.does_esmtp and connection.has_extn("size"):
            options.append(f"size={size}")
        code, response = connection.mail(sender, options)
        if code != 250:
            connection.rset()
            raise _classify(code, response)
        for recipient in recipients:
            code, response = connection.rcpt(recipient)
            if code not in (250, 251):
                connection.rset()
                raise _classify(code, response)

    def finish(self) -> None:
        """Send the final dot: from here on the server has the message."""
        connection = self.smtp_backend.connection
        assert connection is not None
        try:
            connection.send(b".\r\n")
            code, response = connection.getreply()
        except (smtplib.SMTPException, OSError) as error:
            reset_backend(self.smtp_backend)
            raise TemporarySendError(f"{type(error).__name__}: {error}") from error
        if code != 250:
            raise _classify(code, response)

    def abandon(self) -> None:
        """Drop the connection mid-DATA: the server discards the unterminated message."""
        reset_backend(self.smtp_backend)


def reset_backend(smtp_backend: SmtpBackend) -> None:
    """Drop the backend's connection without QUIT; the next message opens a new one."""
    if smtp_backend.connection is not None:
        with contextlib.suppress(OSError):
            smtp_backend.connection.close()
        smtp_backend.connection = None
