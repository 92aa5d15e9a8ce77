"""Handing one message to the mail server in two steps, so the outbox can fence it.

SMTP has no two-phase commit: a server takes responsibility for a message when it
answers 250 to the final "." of DATA. `SmtpDelivery.begin()` sends the envelope and
the whole message but that final dot; the caller then checks its lease on the row (only
the worker holding it may send; renewed if it runs short), `finish()` sends the dot and reads
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

A worker's sending thread keeps several SMTP connections open (backends()) and sends a
batch of messages, one on each, step by step together (begin_together(), finish_together()):
every connection's MAIL FROM is written before the first reply is read, then RCPT TO, DATA
and the message, then, after one fence of the leases for the whole batch, the final dots.
So one thread keeps the server busy on all its connections, as one thread per connection
did, without a thread hand-off or a group commit for every message. Each message of a batch
keeps its own outcome: a refused recipient or a dropped connection fails that message only.

Connections are kept open between batches, and reopened after an error or a quiet minute.
"""

from __future__ import annotations

import contextlib
import functools
import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.utils import formatdate
from io import BytesIO
from typing import Any, NoReturn

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import EmailMessage, EmailMultiAlternatives, sanitize_address

IDLE_SECONDS = 60.0
_local = threading.local()


class PermanentSendError(Exception):
    """The server refused the message for good (5xx): retrying will not help."""


class TemporarySendError(Exception):
    """The message was not accepted this time (4xx, network): retry later."""


@dataclass
class _Kept:
    backend: BaseEmailBackend
    used_at: float


def backend() -> BaseEmailBackend:
    """This thread's email backend, kept open between messages."""
    return backends(1)[0]


def backends(count: int) -> list[BaseEmailBackend]:
    """`count` email backends of this thread (an SMTP connection each), kept open between
    messages; one unused for a minute is made anew (backend() is the first)."""
    kept: list[_Kept] = getattr(_local, "kept", None) or []
    now = time.monotonic()
    for number, item in enumerate(kept[:count]):
        if now - item.used_at > IDLE_SECONDS:
            if number == 0:
                _local.cache = None  # a quiet minute: look the senders up again
            _close(item.backend)
            item.backend = get_connection(fail_silently=False)
    while len(kept) < count:
        kept.append(_Kept(get_connection(fail_silently=False), now))
    _local.kept = kept
    for item in kept[:count]:
        item.used_at = now
    return [item.backend for item in kept[:count]]


def smtp_backends(count: int) -> list[SmtpBackend]:
    """backends(count), when Django's SMTP backend is the one configured."""
    found = backends(count)
    smtp = [backend for backend in found if isinstance(backend, SmtpBackend)]
    if len(smtp) != len(found):
        raise TypeError("the configured email backend is not Django's SMTP backend")
    return smtp


def connection_cache() -> dict[Any, Any]:
    """A dict that lives as long as this thread's backends: what the messages sent over its
    connections share (the sender's address of a batch), forgotten with them."""
    cache: dict[Any, Any] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    return cache


def reset() -> None:
    """Forget this thread's backends (settings changed, or a non-SMTP backend failed)."""
    kept: list[_Kept] = getattr(_local, "kept", None) or []
    _local.kept = []
    _local.cache = None
    for item in kept:
        _close(item.backend)


def _close(current: BaseEmailBackend) -> None:
    if isinstance(current, SmtpBackend):
        reset_backend(current)
    else:
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
        recipients = [recipient_address(address, encoding) for address in message.recipients()]
        data = plain_message_bytes(message, encoding)
        if data is None:
            data = message_bytes(message.message())
    except ValueError as error:  # BadHeaderError and UnicodeError are ValueErrors
        raise PermanentSendError(f"{type(error).__name__}: {error}") from error
    return sender, recipients, data


_sanitized_sender = functools.lru_cache(maxsize=64)(sanitize_address)

# Addresses that Django's sanitize_address() gives back as they are: a dot-atom address at an
# ASCII domain, alone or after a name of ASCII letters and digits in words of single spaces,
# too short to be folded (tests/test_envelope.py compares the two).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = rf"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@{_LABEL}(?:\.{_LABEL})+"
_PLAIN_RECIPIENT = re.compile(
    rf"{_PLAIN_ADDRESS}|[A-Za-z0-9]+(?: [A-Za-z0-9]+)* <{_PLAIN_ADDRESS}>"
)
_LONGEST_PLAIN_NAME = 60


def recipient_address(address: str, encoding: str) -> str:
    """sanitize_address(address, encoding), without parsing a plain address: parsing each
    recipient with the email package cost 0.1 ms, about a fourteenth of a bulk message's CPU
    in the worker."""
    if (
        len(address) <= 254
        and _PLAIN_RECIPIENT.fullmatch(address)
        and address.find(" <") <= _LONGEST_PLAIN_NAME
    ):
        return address
    return sanitize_address(address, encoding)


def smtp_path(address: str) -> str:
    """smtplib.quoteaddr(address), the <path> of MAIL FROM and RCPT TO, without parsing a
    plain address (smtplib parses each address again: a twentieth of the worker's CPU)."""
    if len(address) <= 254 and _PLAIN_RECIPIENT.fullmatch(address):
        start = address.find("<")
        return f"<{address[start + 1 : -1]}>" if start >= 0 else f"<{address}>"
    return smtplib.quoteaddr(address)


_sender_path = functools.lru_cache(maxsize=64)(smtp_path)


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


# Django's threshold for encoding a text part quoted-printable (RFC 5322's line limit).
_LONGEST_LINE = 998
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the email generator's NLCRE
_HEADERS_DJANGO_SETS = frozenset({"from", "to", "cc", "reply-to"})


def plain_message_bytes(message: EmailMessage, encoding: str) -> bytes | None:
    """The bytes `message_bytes(message.message())` gives for a plain message, written
    directly; None for any other message (then the email package builds it).

    Plain: an EmailMessage or EmailMultiAlternatives in UTF-8 with a text body and at most
    one HTML alternative, no attachment and no Cc, every header value printable ASCII that
    fits its line or is one word (nothing to encode, nothing to fold but that word), no body
    line longer than 998 bytes (no quoted-printable). That is every message of a bulk send
    to recipients with Latin names and an ASCII subject; a Hypothesis test
    (tests/test_envelope.py) compares the bytes with Django's for every kind.
    Building the message with Django and the email package cost more of the worker's CPU
    than handing it to the server.
    """
    if (
        type(message) not in (EmailMessage, EmailMultiAlternatives)
        or encoding.lower() != "utf-8"
        or message.attachments
        or message.cc
        or message.content_subtype != "plain"
        or type(message.body) is not str
    ):
        return None
    alternatives = getattr(message, "alternatives", [])
    html = None
    if alternatives:
        if len(alternatives) > 1 or not message.body:
            return None
        content, mimetype = alternatives[0]
        if mimetype != "text/html" or type(content) is not str:
            return None
        if message.alternative_subtype != "alternative":  # type: ignore[attr-defined]
            return None
        html = content
    extra = message.extra_headers
    names = {name.lower() for name in extra}
    if "message-id" not in names:
        return None
    headers: list[tuple[str, Any]] = [
        ("Subject", message.subject),
        ("From", extra.get("From", message.from_email)),
    ]
    if message.to:
        headers.append(("To", extra.get("To", None) or ", ".join(str(v) for v in message.to)))
    if message.reply_to:
        headers.append(
            ("Reply-To", extra.get("Reply-To", None) or ", ".join(str(v) for v in message.reply_to))
        )
    if "date" not in names:
        headers.append(("Date", formatdate(localtime=settings.EMAIL_USE_LOCALTIME)))
    headers += [
        (name, value) for name, value in extra.items() if name.lower() not in _HEADERS_DJANGO_SETS
    ]
    lines = []
    for name, value in headers:
        if type(value) is not str or not _PLAIN_HEADER.fullmatch(value):
            return None
        if len(name) + 2 + len(value) <= 78:
            lines.append(f"{name}: {value}\r\n")
        elif " " not in value and ";" not in value and "," not in value and len(value) < 900:
            # One word too long for the line (a List-Unsubscribe link): the folding moves it
            # to a continuation line of its own.
            lines.append(f"{name}: \r\n {value}\r\n")
        else:
            return None
    text = _plain_part(message.body)
    if text is None:
        return None
    if html is None:
        return (_part_headers("plain", text) + "".join(lines) + "\r\n").encode() + text[0]
    html_part = _plain_part(html)
    if html_part is None:
        return None
    while True:
        boundary = BytesGenerator._make_boundary()  # type: ignore[attr-defined]
        if boundary not in message.body and boundary not in html:
            break
    head = (
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
        "MIME-Version: 1.0\r\n" + "".join(lines) + f"\r\n--{boundary}\r\n"
    )
    return b"".join(
        [
            head.encode(),
            _part_headers("plain", text).encode(),
            b"\r\n",
            text[0],
            f"\r\n--{boundary}\r\n".encode(),
            _part_headers("html", html_part).encode(),
            b"\r\n",
            html_part[0],
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )


def _plain_part(body: str) -> tuple[bytes, bool] | None:
    """A text part's bytes with CRLF line ends and whether they are ASCII; None if a line
    is longer than Django sends 8bit."""
    encoded = "\r\n".join(_LINE_BREAK.split(body)).encode("utf-8", errors="surrogateescape")
    if any(len(line) > _LONGEST_LINE for line in encoded.split(b"\r\n")):
        return None
    return encoded, encoded.isascii()


def _part_headers(subtype: str, part: tuple[bytes, bool]) -> str:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
        f"Content-Transfer-Encoding: {'7bit' if part[1] else '8bit'}\r\n"
    )


class SmtpDelivery:
    """One message on an SMTP connection of its own: begin() up to the final dot, then
    finish(); begin_together() and finish_together() do the same for several at once."""

    def __init__(self, smtp_backend: SmtpBackend, message: EmailMessage) -> None:
        self.smtp_backend = smtp_backend
        self.message = message
        # What failed this message (begin_together, finish_together); None while it goes on.
        self.error: PermanentSendError | TemporarySendError | None = None
        self._envelope_of: tuple[str, list[str], bytes] | None = None
        self._opened_now = False

    def begin(self) -> None:
        """Everything but the final dot, for this message alone: the steps of
        begin_together() one after the other (begin_together() runs it on a new connection
        when a kept-open one turned out closed by the server)."""
        self._send_mail_from()
        self._read_mail_from()
        assert self._envelope_of is not None
        for number in range(len(self._envelope_of[1])):
            self._send_recipient(number)
            self._read_recipient()
        self._send_data()
        self._read_data()

    def _open(self) -> None:
        if self.smtp_backend.connection is None:
            self.smtp_backend.open()
            sock = getattr(self.smtp_backend.connection, "sock", None)
            if sock is not None:
                # The final dot goes out as a separate small write: without NODELAY,
                # Nagle holds it until the server's delayed ACK (~40 ms a message).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        """Send the final dot: from here on the server has the message."""
        self._send_dot()
        self._read_dot()

    def abandon(self) -> None:
        """Drop the connection mid-DATA: the server discards the unterminated message."""
        reset_backend(self.smtp_backend)

    # The steps of begin_together() and finish_together(): each writes one command, or
    # reads its reply, and raises PermanentSendError or TemporarySendError for this message.

    def _connection(self) -> smtplib.SMTP:
        connection = self.smtp_backend.connection
        assert connection is not None
        return connection

    def _command(self, name: str, argument: str = "") -> None:
        try:
            self._connection().putcmd(name, argument)
        except (smtplib.SMTPException, OSError) as error:
            self._lost(error)

    def _reply(self, expected: tuple[int, ...], *, first: bool = False) -> None:
        """Read the reply to this connection's last command; `first`: the first command of
        the message, where a kept-open connection may turn out closed by the server."""
        try:
            code, response = self._connection().getreply()
        except (smtplib.SMTPException, OSError) as error:
            if (
                first
                and not self._opened_now
                and isinstance(error, smtplib.SMTPServerDisconnected | ConnectionError)
            ):
                reset_backend(self.smtp_backend)
                raise _BeginAlone from error
            self._lost(error)
        if code not in expected:
            try:
                self._connection().rset()
            except (smtplib.SMTPException, OSError):
                reset_backend(self.smtp_backend)
            raise _classify(code, response)

    def _lost(self, error: Exception) -> NoReturn:
        reset_backend(self.smtp_backend)
        raise TemporarySendError(f"{type(error).__name__}: {error}") from error

    def _send_mail_from(self) -> None:
        """The message's bytes, its connection (opened if need be) and its MAIL FROM: built
        one message after the other, so the server works on the first while the next is
        built."""
        self._envelope_of = self._envelope_of or envelope(self.message)
        sender, _, data = self._envelope_of
        self._opened_now = self.smtp_backend.connection is None
        try:
            self._open()
            self._connection().ehlo_or_helo_if_needed()
        except (smtplib.SMTPException, OSError) as error:
            self._lost(error)
        connection = self._connection()
        options = ""
        if connection.does_esmtp and connection.has_extn("size"):
            options = f" size={len(data)}"
        try:
            connection.putcmd("mail", f"from:{_sender_path(sender)}{options}")
        except OSError as error:
            if self._opened_now:
                self._lost(error)
            reset_backend(self.smtp_backend)
            raise _BeginAlone from error

    def _read_mail_from(self) -> None:
        self._reply((250,), first=True)

    def _send_recipient(self, number: int) -> None:
        assert self._envelope_of is not None
        self._command("rcpt", f"TO:{smtp_path(self._envelope_of[1][number])}")

    def _read_recipient(self) -> None:
        self._reply((250, 251))

    def _send_data(self) -> None:
        self._command("data")

    def _read_data(self) -> None:
        assert self._envelope_of is not None
        self._reply((354,))
        self._send_raw(_dot_stuffed(self._envelope_of[2]))

    def _send_dot(self) -> None:
        self._send_raw(b".\r\n")

    def _send_raw(self, data: bytes) -> None:
        try:
            self._connection().send(data)
        except (smtplib.SMTPException, OSError) as error:
            self._lost(error)

    def _read_dot(self) -> None:
        try:
            code, response = self._connection().getreply()
        except (smtplib.SMTPException, OSError) as error:
            self._lost(error)
        if code != 250:
            raise _classify(code, response)


class _BeginAlone(Exception):
    """A kept-open connection was closed by the server: begin this message alone, anew."""


def _dot_stuffed(data: bytes) -> bytes:
    quoted = re.sub(rb"(?m)^\.", b"..", data)
    return quoted if quoted.endswith(b"\r\n") else quoted + b"\r\n"


def _step(
    deliveries: list[SmtpDelivery],
    write: Callable[[SmtpDelivery], None],
    read: Callable[[SmtpDelivery], None],
) -> list[SmtpDelivery]:
    """write() on every delivery's connection, then read() each reply: the deliveries that
    go on (a failed one keeps its error; one begun again alone has begun already)."""
    written = []
    for delivery in deliveries:
        if _attempt(delivery, write):
            written.append(delivery)
    return [delivery for delivery in written if _attempt(delivery, read)]


def _attempt(delivery: SmtpDelivery, step: Callable[[SmtpDelivery], None]) -> bool:
    try:
        step(delivery)
    except (PermanentSendError, TemporarySendError) as error:
        delivery.error = error
        return False
    except _BeginAlone:
        try:
            delivery.begin()
        except (PermanentSendError, TemporarySendError) as error:
            delivery.error = error
        return False
    return True


def begin_together(deliveries: Sequence[SmtpDelivery]) -> None:
    """begin() of each delivery, each on its own connection, step by step: every MAIL FROM
    is written before the first of their replies is read, then each RCPT TO, then DATA and
    the messages. A delivery that fails keeps its error (.error) and the others go on."""
    going = _step(list(deliveries), SmtpDelivery._send_mail_from, SmtpDelivery._read_mail_from)
    most = max((len(_recipients(delivery)) for delivery in going), default=0)
    for number in range(most):
        to_this = [delivery for delivery in going if number < len(_recipients(delivery))]
        others = [delivery for delivery in going if number >= len(_recipients(delivery))]
        going = others + _step(
            to_this,
            functools.partial(SmtpDelivery._send_recipient, number=number),
            SmtpDelivery._read_recipient,
        )
    _step(going, SmtpDelivery._send_data, SmtpDelivery._read_data)


def _recipients(delivery: SmtpDelivery) -> list[str]:
    assert delivery._envelope_of is not None
    return delivery._envelope_of[1]


def finish_together(deliveries: Sequence[SmtpDelivery]) -> None:
    """finish() of each begun delivery: every final dot is written before the first 250 is
    read. A delivery that fails keeps its error (.error)."""
    _step(
        [delivery for delivery in deliveries if delivery.error is None],
        SmtpDelivery._send_dot,
        SmtpDelivery._read_dot,
    )


def reset_backend(smtp_backend: SmtpBackend) -> None:
    """Drop the backend's connection without QUIT; the next message opens a new one."""
    if smtp_backend.connection is not None:
        with contextlib.suppress(OSError):
            smtp_backend.connection.close()
        smtp_backend.connection = None
