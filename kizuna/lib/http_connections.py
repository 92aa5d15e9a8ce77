"""HTTP/1.1 connections to checked addresses: the wire and the kept-alive pools.

kizuna/lib/http.py decides what may be requested and at which address (the SSRF guard) and
builds the request; this module connects to that address only, sends the request in one
write and reads the answer, and keeps connections alive between requests. Its module
docstring says what the two promise together; docs/adr/0007 why the client is our own.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Kept-alive connections: pools of at most this many addresses (host name and address), each
# keeping at most MAX_IDLE_PER_ADDRESS idle connections, closed after KEEPALIVE_SECONDS idle.
# Shorter than the keep-alive of common servers (gunicorn: 2 s), so that we close first and a
# reused connection is seldom one the server is closing at that moment.
MAX_POOLS = 32
MAX_IDLE_PER_ADDRESS = 8
MAX_CONNECTIONS_PER_ADDRESS = 64
KEEPALIVE_SECONDS = 1.5


class OutboundError(Exception):
    """A request that did not get an HTTP answer; `code` says why."""

    code = "error"


class RequestTimedOut(OutboundError):
    code = "timeout"


class ConnectionFailed(OutboundError):
    code = "connection_failed"


class BodyTooLarge(OutboundError):
    """A request body over MAX_REQUEST_BYTES (not sent) or an answer over the stated limit."""

    code = "too_large"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    """One request as it goes out, and what its answer may be."""

    method: str
    message: bytes  # the request line, headers and body
    deadline: float
    timeout_seconds: float
    connect_timeout_seconds: float
    max_body_bytes: int
    truncate: bool

    def timed_out(self, phase: str) -> RequestTimedOut:
        return RequestTimedOut(f"No answer within {self.timeout_seconds:g} seconds ({phase}).")


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: dict[str, str]
    body: bytearray
    # Read to its end on a connection the server keeps open: the connection may serve again.
    reusable: bool


class Unreachable(Exception):
    """No connection to one address (refused, unreachable, no TLS handshake, or none within
    the connect time limit): the next checked address may answer."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _NoAnswer(Exception):
    """The connection was closed (or reset) before a single byte of an answer came."""


# --- connections --------------------------------------------------------------------------------

# A header name (RFC 9110 token), in a request or an answer.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
READ_BYTES = 65536
# The status line and headers of an answer, and a chunk-size line: beyond this, no answer.
MAX_HEAD_BYTES = 65536


class _BodyTimedOut(Exception):
    """The time limit passed while the body of an answer was arriving."""


class _Connection:
    """One HTTP/1.1 connection: a socket (TLS or not) and the bytes read but not yet used."""

    __slots__ = ("buffer", "idle_since", "socket")

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.buffer = bytearray()
        self.idle_since = 0.0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.close()

    def is_closed_by_server(self) -> bool:
        """Whether an idle connection has something to read: the server closed it (or sent
        what nobody asked for); either way it cannot carry a request."""
        if isinstance(self.socket, ssl.SSLSocket) and self.socket.pending():
            return True
        poller = select.poll()
        poller.register(self.socket, select.POLLIN)
        return bool(poller.poll(0))

    def receive(self, deadline: float) -> bool:
        """Read what has arrived into the buffer, waiting until `deadline` at most; False at
        the end of the stream. Raises TimeoutError, or OSError from the socket."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.socket.settimeout(left)
        data = self.socket.recv(READ_BYTES)
        if not data:
            return False
        self.buffer += data
        return True

    def exchange(self, request: Request) -> Answer:
        """Send `request` and read its answer. Raises _NoAnswer (closed before any byte of
        an answer), RequestTimedOut, ConnectionFailed or BodyTooLarge."""
        left = request.deadline - time.monotonic()
        if left <= 0:
            raise request.timed_out("WriteTimeout")
        try:
            self.socket.settimeout(left)
            self.socket.sendall(request.message)
        except TimeoutError as error:
            raise request.timed_out("WriteTimeout") from error
        except OSError as error:  # a broken pipe or a reset: the server closed it
            raise _NoAnswer(f"{type(error).__name__}: {error}") from error
        while True:
            status_code, version, headers = self._read_head(request)
            # 1xx are interim answers (100 Continue, 103 Early Hints): the answer follows.
            if not 100 <= status_code < 200:
                break
            if status_code == 101:
                raise ConnectionFailed("The server switched protocols (HTTP 101).")
        connection = headers.get("connection", "").lower()
        reusable = version == "HTTP/1.1" and "close" not in _tokens(connection)
        try:
            if request.method == "HEAD" or status_code in (204, 304):
                body, complete = bytearray(), True
            elif "transfer-encoding" in headers:
                if _tokens(headers["transfer-encoding"].lower())[-1:] == ["chunked"]:
                    body, complete = self._read_chunked(request)
                else:
                    body, complete = self._read_to_end(request)
                    reusable = False
            elif "content-length" in headers:
                body, complete = self._read_length(request, _content_length(headers))
            else:
                body, complete = self._read_to_end(request)
                reusable = False
        except _BodyTimedOut as error:
            if not request.truncate:
                raise RequestTimedOut(
                    "The answer did not arrive in full within the time limit."
                ) from error
            # A server dripping its body must not hold the worker past the limit: the answer
            # is its status and what came of the body.
            body, complete = error.args[0], False
        # Bytes beyond the answer are nothing we asked for: the connection is not used again.
        reusable = reusable and complete and not self.buffer
        return Answer(status_code, headers, body, reusable)

    def _read_head(self, request: Request) -> tuple[int, str, dict[str, str]]:
        buffer = self.buffer
        searched = 0
        while (end := buffer.find(b"\r\n\r\n", searched)) < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise ConnectionFailed(f"The answer's headers are over {MAX_HEAD_BYTES} bytes.")
            searched = max(0, len(buffer) - 3)
            try:
                more = self.receive(request.deadline)
            except TimeoutError as error:
                raise request.timed_out("ReadTimeout") from error
            except OSError as error:
                if not buffer:
                    raise _NoAnswer(f"{type(error).__name__}: {error}") from error
                raise ConnectionFailed(f"{type(error).__name__}: {error}") from error
            if not more:
                if not buffer:
                    raise _NoAnswer("The server closed the connection without an answer.")
                raise ConnectionFailed("The server closed the connection in its answer's headers.")
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        return _parse_head(head)

    def _fill(self, request: Request, size: int, body: bytearray) -> None:
        """Read until the buffer holds `size` bytes; _BodyTimedOut carries `body` so far."""
        while len(self.buffer) < size:
            if not self._receive_body(request, body):
                raise ConnectionFailed(
                    "The server closed the connection before the end of its answer."
                )

    def _receive_body(self, request: Request, body: bytearray) -> bool:
        """receive() while a body arrives: the time limit is _BodyTimedOut (with `body` so
        far), a socket error ConnectionFailed; False at the end of the stream."""
        try:
            return self.receive(request.deadline)
        except TimeoutError as error:
            raise _BodyTimedOut(body) from error
        except OSError as error:
            raise ConnectionFailed(f"{type(error).__name__}: {error}") from error

    def _take(self, request: Request, body: bytearray, size: int) -> None:
        """Move the next `size` bytes (read as they come) to `body`, cut at the body limit
        (post()) or refused beyond it (BodyTooLarge)."""
        room = request.max_body_bytes - len(body)
        if size > room:
            if not request.truncate:
                raise BodyTooLarge(f"The answer is larger than {request.max_body_bytes} bytes.")
            size = room
        try:
            self._fill(request, size, body)
        finally:  # at the time limit too: what came of the body is in the _BodyTimedOut
            taken = self.buffer[:size]
            body += taken
            del self.buffer[: len(taken)]

    def _read_length(self, request: Request, length: int) -> tuple[bytearray, bool]:
        body = bytearray()
        if length > request.max_body_bytes and not request.truncate:
            raise BodyTooLarge(f"The answer is larger than {request.max_body_bytes} bytes.")
        self._take(request, body, min(length, request.max_body_bytes))
        return body, len(body) == length

    def _read_chunked(self, request: Request) -> tuple[bytearray, bool]:
        body = bytearray()
        while True:
            line = self._line(request, body)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                size = -1
            if size < 0:
                raise ConnectionFailed("The answer's chunked body is malformed.")
            if size == 0:
                while self._line(request, body):  # trailers, up to the empty line
                    pass
                return body, True
            if len(body) + size > request.max_body_bytes and request.truncate:
                self._take(request, body, size)
                return body, False
            self._take(request, body, size)
            self._fill(request, 2, body)
            if self.buffer[:2] != b"\r\n":
                raise ConnectionFailed("The answer's chunked body is malformed.")
            del self.buffer[:2]

    def _line(self, request: Request, body: bytearray) -> bytes:
        searched = 0
        while (end := self.buffer.find(b"\r\n", searched)) < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise ConnectionFailed("The answer's chunked body is malformed.")
            searched = max(0, len(self.buffer) - 1)
            self._fill(request, len(self.buffer) + 1, body)
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def _read_to_end(self, request: Request) -> tuple[bytearray, bool]:
        """A body that ends where the connection does."""
        body = bytearray()
        while True:
            if len(self.buffer) > request.max_body_bytes - len(body):
                self._take(request, body, len(self.buffer))
                return body, False
            body += self.buffer
            self.buffer.clear()
            if not self._receive_body(request, body):
                return body, True


def _tokens(value: str) -> list[str]:
    return [token.strip() for token in value.split(",")]


def _content_length(headers: Mapping[str, str]) -> int:
    """The one length an answer states (repeated identical values allowed, RFC 9110 8.6)."""
    lengths = set(_tokens(headers["content-length"]))
    if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
        raise ConnectionFailed("The answer's Content-Length is not a length.")
    return int(length)


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """(status, HTTP version, headers with lower-cased names; repeated ones joined by ", ")."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    status_line, *lines = text.split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if (
        version not in ("HTTP/1.1", "HTTP/1.0")
        or not (code.isascii() and code.isdigit())
        or rest[3:4] not in ("", " ")
    ):
        raise ConnectionFailed(f"Not an HTTP/1.1 answer: {status_line[:80]!r}.")
    headers: dict[str, str] = {}
    name = ""
    for line in lines:
        if line[:1] in (" ", "\t") and name:  # a folded line continues the header before it
            headers[name] = f"{headers[name]} {line.strip()}"
            continue
        name, colon, value = line.partition(":")
        if not colon or not HEADER_NAME.fullmatch(name):
            raise ConnectionFailed(f"Not an HTTP header line: {line[:80]!r}.")
        name = name.lower()
        value = value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(code), version, headers


def _connect(
    request: Request, target: Target, address: str, context: ssl.SSLContext | None
) -> _Connection:
    """A new connection to the checked `address`; TLS verifies the URL's host name (and
    names it to the server, SNI). Raises Unreachable."""
    timeout = min(request.connect_timeout_seconds, request.deadline - time.monotonic())
    if timeout <= 0:
        raise Unreachable("No time left to connect.", timed_out=True)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((address, target.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=target.host)
    except TimeoutError as error:
        sock.close()
        raise Unreachable(f"{type(error).__name__}: {error}", timed_out=True) from error
    except OSError as error:  # refused, unreachable, a certificate not for this host
        sock.close()
        raise Unreachable(f"{type(error).__name__}: {error}") from error
    return _Connection(sock)


def send_once_more_if_stale(
    request: Request, target: Target, address: str, context: ssl.SSLContext | None
) -> Answer:
    """The answer on a kept-alive connection to `address` if one is idle, else on a new one
    that is kept. If the kept-alive connection was closed by the server without an answer,
    the same request once more, on a new connection of its own (closed after), in the time
    left."""
    key = (target.scheme, target.host, target.port, address, id(context) if context else None)
    pool, connection = _pools.take(key, context, request)
    reused = connection is not None
    answer: Answer | None = None
    try:
        if connection is None:
            connection = _connect(request, target, address, context)
        answer = connection.exchange(request)
    except _NoAnswer as error:
        # A new connection closed without an answer, or no time left: the server's doing.
        if not reused or request.deadline <= time.monotonic():
            raise ConnectionFailed(
                f"The server closed the connection without an answer ({error})."
            ) from error
    finally:
        kept = connection if answer is not None and answer.reusable else None
        if connection is not None and kept is None:
            connection.close()
        _pools.give_back(key, pool, kept)
    if answer is not None:
        return answer
    fresh = _connect(request, target, address, context)
    try:
        return fresh.exchange(request)
    except _NoAnswer as error:
        raise ConnectionFailed(
            f"The server closed the connection without an answer ({error})."
        ) from error
    finally:
        fresh.close()


@dataclass(eq=False)
class _Pool:
    """The kept-alive connections to one checked address for one host name and TLS context."""

    # The context is kept with its pool: the key holds its id(), which stays its own while
    # the context lives.
    context: ssl.SSLContext | None
    idle: deque[_Connection] = field(default_factory=deque)  # the most recently used last
    in_use: int = 0
    last_used: float = 0.0


class _Pools:
    """Kept-alive connections by (scheme, host name, port, checked address, TLS context).

    A pool only ever connects to its address; which address a request may use was decided
    by the check of that request. Connections idle for KEEPALIVE_SECONDS, the least recently
    used pools beyond MAX_POOLS, and pools nobody uses that hold no connection are closed
    (checked at each request, and by a thread that runs while pools are open).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._pools: OrderedDict[tuple[Any, ...], _Pool] = OrderedDict()
        self._sweeper: threading.Thread | None = None

    def take(
        self, key: tuple[Any, ...], context: ssl.SSLContext | None, request: Request
    ) -> tuple[_Pool, _Connection | None]:
        """The pool of `key`, counted as used (give it back), and an idle connection of it
        (None: connect a new one). Waits while MAX_CONNECTIONS_PER_ADDRESS are in use."""
        with self._lock:
            while True:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = _Pool(context)
                if pool.in_use < MAX_CONNECTIONS_PER_ADDRESS:
                    break
                left = request.deadline - time.monotonic()
                if left <= 0:
                    raise request.timed_out("PoolTimeout")
                self._freed.wait(left)
            self._pools.move_to_end(key)
            pool.in_use += 1
            now = time.monotonic()
            closing = self._take_closable(now)
            connection = pool.idle.pop() if pool.idle else None
            if self._sweeper is None:
                self._sweeper = threading.Thread(
                    target=self._sweep, name="kizuna-http-pools", daemon=True
                )
                self._sweeper.start()
        for closed in closing:
            closed.close()
        if connection is not None and connection.is_closed_by_server():
            connection.close()
            connection = None
        return pool, connection

    def give_back(self, key: tuple[Any, ...], pool: _Pool, connection: _Connection | None) -> None:
        """Done with `pool`; `connection` (if any) is idle, kept while there is room."""
        with self._lock:
            pool.in_use -= 1
            pool.last_used = now = time.monotonic()
            kept = self._pools.get(key) is pool and len(pool.idle) < MAX_IDLE_PER_ADDRESS
            if connection is not None and kept:
                connection.idle_since = now
                pool.idle.append(connection)
                connection = None
            self._freed.notify()
        if connection is not None:
            connection.close()

    def _take_closable(self, now: float, *, idle_seconds: float | None = None) -> list[_Connection]:
        """Remove the connections to close (call with the lock held): those idle for
        `idle_seconds`, and those of the least recently used unused pools beyond MAX_POOLS;
        unused pools left without a connection go too."""
        if idle_seconds is None:
            idle_seconds = KEEPALIVE_SECONDS
        closing: list[_Connection] = []
        excess = len(self._pools) - MAX_POOLS
        for key, pool in list(self._pools.items()):  # least recently used first
            while pool.idle and now - pool.idle[0].idle_since >= idle_seconds:
                closing.append(pool.idle.popleft())
            if pool.in_use:
                continue
            if excess > 0 or not pool.idle:
                del self._pools[key]
                closing.extend(pool.idle)
                excess -= 1
        return closing

    def _sweep(self) -> None:
        """Close idle connections every KEEPALIVE_SECONDS; end once no pool is left (the next
        request starts another sweeper)."""
        while True:
            time.sleep(KEEPALIVE_SECONDS)
            with self._lock:
                closing = self._take_closable(time.monotonic())
                finished = not self._pools
                if finished:
                    self._sweeper = None
            for connection in closing:
                connection.close()
            if finished:
                return

    def close_idle(self) -> None:
        with self._lock:
            closing = self._take_closable(time.monotonic(), idle_seconds=0)
        for connection in closing:
            connection.close()

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's connections are the parent's (never closed here)."""
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._pools = OrderedDict()
        self._sweeper = None


_pools = _Pools()
os.register_at_fork(after_in_child=_pools.forget_after_fork)


def close_idle_connections() -> None:
    """Close every kept-alive connection not in use now."""
    _pools.close_idle()
