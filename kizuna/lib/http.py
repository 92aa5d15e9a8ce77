"""The one outbound HTTP client: explicit timeouts and a guard against private addresses.

URLs that users type (webhook endpoints) could point the server at itself or at
the private network (SSRF). Before connecting, the host is resolved, every
address is checked, and the connection goes to the checked address (the Host
header and TLS server name stay the URL's), so a DNS answer that changes between
check and connect (rebinding) cannot slip through. Origins in `allowed_origins`
(the co-deployed CRM, a test receiver) skip the address check. IPv6 addresses that
carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) are judged by that IPv4
address too, and a URL whose host is malformed is refused, never an exception.

Connections are kept alive and reused (the worker sends hundreds of webhooks a second to
one CRM): each pool holds connections to one checked address for one host name (its TLS
server name and certificate), so a request reuses only a connection to an address that was
just checked for it, and a name that now resolves elsewhere, or to a forbidden address, gets
no connection made for its old address. Pools are bounded (MAX_POOLS addresses, at most
MAX_IDLE_PER_ADDRESS idle connections each), shared by the threads of a process, and close
connections idle for KEEPALIVE_SECONDS. A kept-alive connection that the server closed as the
request went out (its own keep-alive ran out: it closes without an answer) is no answer from
the server: the request is sent once more, on a new connection, within the same time limit.

The HTTP/1.1 client underneath is our own, on sockets: httpx (with httpcore and h11) cost
0.60 ms of CPU a request where this costs about a quarter of that (docs/benchmarks.md, "a lean
HTTP client"), and the worker sends a webhook in about 2 ms. It sends one request line,
headers and body in one write, and reads answers framed by Content-Length, chunked transfer
encoding or the end of the connection; a connection is kept only when its answer was read to
its end and the server did not ask to close it. No Accept-Encoding is sent, and bodies are
not decoded; no proxy is used; redirects are answers like any other.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import re
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import certifi

__all__ = [
    "MAX_REQUEST_BYTES",
    "MAX_RESPONSE_BYTES",
    "BodyTooLarge",
    "ConnectionFailed",
    "OutboundError",
    "PostResult",
    "RequestTimedOut",
    "Result",
    "UnsafeURLError",
    "check_url",
    "close_idle_connections",
    "post",
    "request",
]

DEFAULT_PORTS = {"http": 80, "https": 443}
# Enough of a response body to show an administrator why a delivery failed.
MAX_BODY_BYTES = 4096
# request(): the largest JSON body sent (a batch of 1,000 invitations is about 400 KB) and
# the largest answer read (a page of 500 responses with long answers).
MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
USER_AGENT = "Kizuna"
MAX_ADDRESSES_TRIED = 3
# RFC 6052's well-known NAT64 prefix: a gateway translates 64:ff9b::a.b.c.d to a.b.c.d.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
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


class UnsafeURLError(OutboundError):
    """A URL that must not be requested.

    code: "invalid_url", "unsupported_scheme", "unresolvable" or "private_address".
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RequestTimedOut(OutboundError):
    code = "timeout"


class ConnectionFailed(OutboundError):
    code = "connection_failed"


class BodyTooLarge(OutboundError):
    """A request body over MAX_REQUEST_BYTES (not sent) or an answer over the stated limit."""

    code = "too_large"


@dataclass(frozen=True)
class PostResult:
    status_code: int
    duration_ms: int
    body: str


@dataclass(frozen=True)
class Result:
    """A complete HTTP answer of request(): any status, the whole body."""

    status_code: int
    headers: Mapping[str, str]  # names lower-cased
    content: bytes
    duration_ms: int

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return json.loads(self.content)


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _split(url: str) -> SplitResult | None:
    url = url.strip()
    # urlsplit drops tabs and newlines silently; what is stored must be what is requested.
    if any(character.isspace() or not character.isprintable() for character in url):
        return None
    try:
        return urlsplit(url)
    except ValueError:  # brackets Python refuses: http://[127.0.0.1]/, http://[::1/
        return None


@functools.lru_cache(maxsize=256)
def _origin_key(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a valid http(s) URL, else None; kept, as every request asks it
    for its URL and for each allowed origin."""
    parts = _split(url)
    if parts is None:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or not _is_valid_host(parts.hostname):
        return None
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, parts.hostname.lower(), port


def _is_valid_host(host: str) -> bool:
    """An IP address, or a host name of letters, digits and hyphens (IDN allowed)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.lower().removesuffix(".").split(".")
    return len(ascii_host) <= 253 and all(HOST_LABEL.fullmatch(label) for label in labels)


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    judged: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            judged = [ip.ipv4_mapped]
        elif ip in NAT64_PREFIX:
            judged = [ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)]
        else:
            # 6to4 and Teredo reach the IPv4 address inside: it must be public too.
            judged += [inner for inner in (ip.sixtofour, *(ip.teredo or ())) if inner]
    return all(one.is_global and not (one.is_multicast or one.is_reserved) for one in judged)


def _resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeURLError("unresolvable", f"The host {host} cannot be resolved.") from error
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeURLError("unresolvable", f"The host {host} cannot be resolved.")
    return tuple(addresses)


def _target(url: str, allowed_origins: Iterable[str]) -> _Target:
    key = _origin_key(url)
    if key is None:
        parts = _split(url)
        if parts and parts.scheme and parts.scheme.lower() not in DEFAULT_PORTS:
            raise UnsafeURLError("unsupported_scheme", "Only http and https URLs are allowed.")
        raise UnsafeURLError("invalid_url", "This is not a valid http or https URL.")
    scheme, host, port = key
    addresses = _resolve(host, port)
    allowed = {_origin_key(origin) for origin in allowed_origins}
    if key not in allowed:
        private = [address for address in addresses if not _is_public(address)]
        if private:
            raise UnsafeURLError(
                "private_address",
                f"The host {host} resolves to a private or reserved address ({private[0]}).",
            )
    return _Target(scheme=scheme, host=host, port=port, addresses=addresses)


def check_url(url: str, *, allowed_origins: Iterable[str] = ()) -> None:
    """Raise UnsafeURLError unless `url` may be requested now."""
    _target(url, allowed_origins)


def post(
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    allowed_origins: Iterable[str] = (),
    timeout_seconds: float = 10.0,
    connect_timeout_seconds: float = 5.0,
    verify: ssl.SSLContext | bool = True,
) -> PostResult:
    """POST `content` to a user-supplied URL; any HTTP answer is a result, not an error.

    Raises UnsafeURLError (refused before connecting), RequestTimedOut (no
    complete answer within the time limits) or ConnectionFailed. Redirects are
    not followed: their target was never checked. TLS certificates are verified
    against the URL's host name (`verify`: the system's CAs, or a given context).
    Only the first MAX_BODY_BYTES of the answer are kept, and a body still
    dripping at the time limit is cut there.
    """
    status_code, _headers, body, duration_ms = _exchange(
        "POST",
        url,
        content=content,
        headers=headers,
        allowed_origins=allowed_origins,
        timeout_seconds=timeout_seconds,
        connect_timeout_seconds=connect_timeout_seconds,
        verify=verify,
        max_body_bytes=MAX_BODY_BYTES,
        truncate=True,
    )
    return PostResult(
        status_code=status_code,
        duration_ms=duration_ms,
        body=bytes(body[:MAX_BODY_BYTES]).decode("utf-8", errors="replace"),
    )


def request(
    method: Literal["GET", "POST", "DELETE"],
    url: str,
    *,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    allowed_origins: Iterable[str] = (),
    timeout_seconds: float = 10.0,
    connect_timeout_seconds: float = 5.0,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    verify: ssl.SSLContext | bool = True,
) -> Result:
    """One API call: `json_body` (if any) sent as JSON, the whole answer read.

    The same guard as post(): `url` must be public unless its origin is in
    `allowed_origins` (the co-deployed Survey service at SURVEY_URL, never a URL a
    user typed). Any HTTP status is a Result. Raises UnsafeURLError, RequestTimedOut
    (no connection within `connect_timeout_seconds`, or no complete answer within
    `timeout_seconds`), ConnectionFailed, or BodyTooLarge (a body over
    MAX_REQUEST_BYTES is never sent; an answer over `max_response_bytes` is dropped).
    """
    sent_headers = {"Accept": "application/json", **(headers or {})}
    content = b""
    if json_body is not None:
        content = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
        if len(content) > MAX_REQUEST_BYTES:
            raise BodyTooLarge(
                f"The request body has {len(content)} bytes; at most {MAX_REQUEST_BYTES} are sent."
            )
        sent_headers["Content-Type"] = "application/json"
    if params:
        url = _merge_params(url, params)
    status_code, answer_headers, body, duration_ms = _exchange(
        method,
        url,
        content=content if method != "GET" else None,
        headers=sent_headers,
        allowed_origins=allowed_origins,
        timeout_seconds=timeout_seconds,
        connect_timeout_seconds=connect_timeout_seconds,
        verify=verify,
        max_body_bytes=max_response_bytes,
        truncate=False,
    )
    return Result(
        status_code=status_code,
        headers=answer_headers,
        content=bytes(body),
        duration_ms=duration_ms,
    )


@dataclass(frozen=True)
class _Request:
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
class _Answer:
    status_code: int
    headers: dict[str, str]
    body: bytearray
    # Read to its end on a connection the server keeps open: the connection may serve again.
    reusable: bool


class _Unreachable(Exception):
    """No connection to one address (refused, unreachable, no TLS handshake, or none within
    the connect time limit): the next checked address may answer."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _NoAnswer(Exception):
    """The connection was closed (or reset) before a single byte of an answer came."""


def _exchange(
    method: str,
    url: str,
    *,
    content: bytes | None,
    headers: Mapping[str, str],
    allowed_origins: Iterable[str],
    timeout_seconds: float,
    connect_timeout_seconds: float,
    verify: ssl.SSLContext | bool,
    max_body_bytes: int,
    truncate: bool,
) -> tuple[int, dict[str, str], bytearray, int]:
    """Send one request to the checked addresses of `url`; (status, headers, body, ms)."""
    target = _target(url, allowed_origins)
    started = time.monotonic()
    message = _request_head(method, url, target, headers, content)
    request = _Request(
        method=method,
        message=message + content if content else message,
        deadline=started + timeout_seconds,
        timeout_seconds=timeout_seconds,
        connect_timeout_seconds=connect_timeout_seconds,
        max_body_bytes=max_body_bytes,
        truncate=truncate,
    )
    context = _tls_context(verify) if target.scheme == "https" else None
    unreachable: _Unreachable | None = None
    # A host with several checked addresses (IPv6 and IPv4) is tried address by
    # address until one accepts the connection.
    for address in target.addresses[:MAX_ADDRESSES_TRIED]:
        try:
            answer = _send_once_more_if_stale(request, target, address, context)
            break
        except _Unreachable as error:
            unreachable = error
    else:
        if unreachable is not None and unreachable.timed_out:
            raise RequestTimedOut(
                f"No connection within {connect_timeout_seconds:g} seconds."
            ) from unreachable
        raise ConnectionFailed(str(unreachable)) from unreachable
    duration_ms = round((time.monotonic() - started) * 1000)
    return answer.status_code, answer.headers, answer.body, duration_ms


# A header name (RFC 9110 token); a value never holds a line break or NUL (header injection).
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FORBIDDEN_IN_HEADER_VALUE = re.compile(r"[\r\n\0]")
# Set by the client from the request itself, never taken from the caller's headers.
OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def _request_head(
    method: str, url: str, target: _Target, headers: Mapping[str, str], content: bytes | None
) -> bytes:
    """The request line and headers: the URL's Host, the caller's headers (a User-Agent
    unless given) and the body's Content-Length."""
    names = {name.lower() for name in headers}
    if names and ("" in names or not HEADER_NAME.fullmatch("".join(names))):
        raise ValueError(f"Not a valid HTTP header name among {sorted(headers)}.")
    if FORBIDDEN_IN_HEADER_VALUE.search("".join(headers.values())):
        raise ValueError("An HTTP header value holds a line break.")
    host = _host_header(target.scheme, target.host, target.port)
    lines = [f"{method} {_request_target(url)} HTTP/1.1", f"Host: {host}"]
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    if names.isdisjoint(OWN_HEADERS):
        lines += [f"{name}: {value}" for name, value in headers.items()]
    else:
        lines += [f"{n}: {v}" for n, v in headers.items() if n.lower() not in OWN_HEADERS]
    if content is not None:
        lines.append(f"Content-Length: {len(content)}")
    lines.append("\r\n")
    # A header value beyond ASCII raises UnicodeEncodeError (a ValueError), as under httpx.
    return "\r\n".join(lines).encode("ascii")


@functools.lru_cache(maxsize=256)
def _request_target(url: str) -> str:
    """The path and query of `url` as the request line carries them: no fragment, and
    characters beyond ASCII percent-encoded as UTF-8."""
    parts = urlsplit(url.strip())
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return path if path.isascii() else quote(path, safe="!#$%&'()*+,/:;=?@[]~")


@functools.lru_cache(maxsize=256)
def _host_header(scheme: str, host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    elif not host.isascii():
        host = host.encode("idna").decode("ascii")
    return host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"


def _merge_params(url: str, params: Mapping[str, str]) -> str:
    """`url` with `params` in its query: a name already there takes the new value."""
    parts = urlsplit(url)
    merged: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        merged.setdefault(name, []).append(value)
    merged.update((name, [value]) for name, value in params.items())
    query = urlencode([(name, value) for name, values in merged.items() for value in values])
    return urlunsplit(parts._replace(query=query))


@functools.cache
def _default_tls_context() -> ssl.SSLContext:
    """certifi's CAs (or SSL_CERT_FILE / SSL_CERT_DIR when set), as httpx did; built once per
    process: loading the CA bundle for each request was about 40 % of the time of a webhook
    delivery to a receiver on loopback (bench/integration_intake.py --profile=worker). A
    context is safe to share between threads and requests."""
    if os.environ.get("SSL_CERT_FILE"):
        context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    elif os.environ.get("SSL_CERT_DIR"):
        context = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    else:
        context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


@functools.cache
def _unverified_tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _tls_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    if verify is True:
        return _default_tls_context()
    if verify is False:
        return _unverified_tls_context()
    return verify


# --- connections --------------------------------------------------------------------------------

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

    def exchange(self, request: _Request) -> _Answer:
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
        return _Answer(status_code, headers, body, reusable)

    def _read_head(self, request: _Request) -> tuple[int, str, dict[str, str]]:
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

    def _fill(self, request: _Request, size: int, body: bytearray) -> None:
        """Read until the buffer holds `size` bytes; _BodyTimedOut carries `body` so far."""
        while len(self.buffer) < size:
            try:
                more = self.receive(request.deadline)
            except TimeoutError as error:
                raise _BodyTimedOut(body) from error
            except OSError as error:
                raise ConnectionFailed(f"{type(error).__name__}: {error}") from error
            if not more:
                raise ConnectionFailed(
                    "The server closed the connection before the end of its answer."
                )

    def _take(self, request: _Request, body: bytearray, size: int) -> None:
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

    def _read_length(self, request: _Request, length: int) -> tuple[bytearray, bool]:
        body = bytearray()
        if length > request.max_body_bytes and not request.truncate:
            raise BodyTooLarge(f"The answer is larger than {request.max_body_bytes} bytes.")
        self._take(request, body, min(length, request.max_body_bytes))
        return body, len(body) == length

    def _read_chunked(self, request: _Request) -> tuple[bytearray, bool]:
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

    def _line(self, request: _Request, body: bytearray) -> bytes:
        searched = 0
        while (end := self.buffer.find(b"\r\n", searched)) < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise ConnectionFailed("The answer's chunked body is malformed.")
            searched = max(0, len(self.buffer) - 1)
            self._fill(request, len(self.buffer) + 1, body)
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def _read_to_end(self, request: _Request) -> tuple[bytearray, bool]:
        """A body that ends where the connection does."""
        body = bytearray()
        while True:
            if len(self.buffer) > request.max_body_bytes - len(body):
                self._take(request, body, len(self.buffer))
                return body, False
            body += self.buffer
            self.buffer.clear()
            try:
                more = self.receive(request.deadline)
            except TimeoutError as error:
                raise _BodyTimedOut(body) from error
            except OSError as error:
                raise ConnectionFailed(f"{type(error).__name__}: {error}") from error
            if not more:
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
    request: _Request, target: _Target, address: str, context: ssl.SSLContext | None
) -> _Connection:
    """A new connection to the checked `address`; TLS verifies the URL's host name (and
    names it to the server, SNI). Raises _Unreachable."""
    timeout = min(request.connect_timeout_seconds, request.deadline - time.monotonic())
    if timeout <= 0:
        raise _Unreachable("No time left to connect.", timed_out=True)
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
        raise _Unreachable(f"{type(error).__name__}: {error}", timed_out=True) from error
    except OSError as error:  # refused, unreachable, a certificate not for this host
        sock.close()
        raise _Unreachable(f"{type(error).__name__}: {error}") from error
    return _Connection(sock)


def _send_once_more_if_stale(
    request: _Request, target: _Target, address: str, context: ssl.SSLContext | None
) -> _Answer:
    """The answer on a kept-alive connection to `address` if one is idle, else on a new one
    that is kept. If the kept-alive connection was closed by the server without an answer,
    the same request once more, on a new connection of its own (closed after), in the time
    left."""
    key = (target.scheme, target.host, target.port, address, id(context) if context else None)
    pool, connection = _pools.take(key, context, request)
    reused = connection is not None
    answer: _Answer | None = None
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
        self, key: tuple[Any, ...], context: ssl.SSLContext | None, request: _Request
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
