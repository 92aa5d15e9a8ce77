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
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

import httpcore  # noqa: F401  # at start-up (about 90 ms of CPU), not in the first request
import httpx

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
        url = str(httpx.URL(url).copy_merge_params(dict(params)))
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
    default_port = DEFAULT_PORTS[target.scheme]
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != default_port:
        host_header = f"{host_header}:{target.port}"
    extensions: dict[str, Any] = {"sni_hostname": target.host} if target.scheme == "https" else {}
    timeout = httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds)
    started = time.monotonic()
    deadline = started + timeout_seconds
    unreachable: httpx.TransportError | None = None
    # A host with several checked addresses (IPv6 and IPv4) is tried address by
    # address until one accepts the connection.
    for address in target.addresses[:MAX_ADDRESSES_TRIED]:
        try:
            status_code, answer_headers, body = _send_once_more_if_stale(
                method,
                _url_at(url, address),
                target=target,
                address=address,
                content=content,
                headers={"User-Agent": USER_AGENT, **headers, "Host": host_header},
                extensions=extensions,
                timeout=timeout,
                verify=verify,
                deadline=deadline,
                max_body_bytes=max_body_bytes,
                truncate=truncate,
            )
            break
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            unreachable = error
        except httpx.TimeoutException as error:
            raise RequestTimedOut(
                f"No answer within {timeout_seconds:g} seconds ({type(error).__name__})."
            ) from error
        except (httpx.TransportError, httpx.InvalidURL) as error:
            raise ConnectionFailed(f"{type(error).__name__}: {error}") from error
    else:
        if isinstance(unreachable, httpx.ConnectTimeout):
            raise RequestTimedOut(
                f"No connection within {connect_timeout_seconds:g} seconds."
            ) from unreachable
        raise ConnectionFailed(f"{type(unreachable).__name__}: {unreachable}") from unreachable
    duration_ms = round((time.monotonic() - started) * 1000)
    return status_code, answer_headers, body, duration_ms


@functools.lru_cache(maxsize=256)
def _url_at(url: str, address: str) -> httpx.URL:
    """`url` with its host replaced by the checked `address` (URLs are immutable): parsing
    it again for every request was a twentieth of a webhook delivery's CPU."""
    return httpx.URL(url).copy_with(host=address)


@functools.cache
def _default_tls_context() -> ssl.SSLContext:
    """httpx's default context (certifi's CAs), built once per process: building it loads the
    CA bundle, about 40 % of the time of a webhook delivery to a receiver on loopback when
    each request built its own (bench/integration_intake.py --profile=worker). A context is
    safe to share between threads and requests."""
    return httpx.create_ssl_context()


@functools.cache
def _unverified_tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context(verify=False)


def _tls_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    if verify is True:
        return _default_tls_context()
    if verify is False:
        return _unverified_tls_context()
    return verify


@dataclass
class _Pool:
    transport: httpx.HTTPTransport
    # The context is kept with its pool: the key holds its id(), which stays its own while
    # the context lives.
    context: ssl.SSLContext
    in_use: int = 0
    last_used: float = 0.0


class _Pools:
    """Kept-alive connections by (scheme, host name, port, checked address, TLS context).

    A pool only ever connects to its address; which address a request may use was decided
    by the check of that request. Least recently used pools beyond MAX_POOLS, and pools idle
    for KEEPALIVE_SECONDS, are closed when nobody is using them (checked at each request, and
    by a thread that runs while pools are open).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: OrderedDict[tuple[Any, ...], _Pool] = OrderedDict()
        self._sweeper: threading.Thread | None = None

    @contextmanager
    def transport(
        self, target: _Target, address: str, verify: ssl.SSLContext | bool, *, fresh: bool = False
    ) -> Iterator[httpx.HTTPTransport]:
        """The pool of kept-alive connections to `address` for `target`; `fresh`: a transport
        of its own instead, whose one connection is new and closed at the end."""
        context = _tls_context(verify)
        if fresh:
            with self._new_transport(context) as transport:
                yield transport
            return
        key = (target.scheme, target.host, target.port, address, id(context))
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = _Pool(self._new_transport(context), context)
                self._pools[key] = pool
            self._pools.move_to_end(key)
            pool.in_use += 1
            closing = self._take_closable(time.monotonic())
            if self._sweeper is None:
                self._sweeper = threading.Thread(
                    target=self._sweep, name="kizuna-http-pools", daemon=True
                )
                self._sweeper.start()
        _close(closing)
        try:
            yield pool.transport
        finally:
            with self._lock:
                pool.in_use -= 1
                pool.last_used = time.monotonic()

    @staticmethod
    def _new_transport(context: ssl.SSLContext) -> httpx.HTTPTransport:
        return httpx.HTTPTransport(
            verify=context,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS_PER_ADDRESS,
                max_keepalive_connections=MAX_IDLE_PER_ADDRESS,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
        )

    def _take_closable(self, now: float, *, idle_seconds: float = KEEPALIVE_SECONDS) -> list[_Pool]:
        """Remove the pools to close (call with the lock held): unused ones idle for
        `idle_seconds`, and the least recently used unused ones beyond MAX_POOLS."""
        closing = []
        excess = len(self._pools) - MAX_POOLS
        for key, pool in list(self._pools.items()):  # least recently used first
            if pool.in_use:
                continue
            if excess > 0 or now - pool.last_used >= idle_seconds:
                closing.append(self._pools.pop(key))
                excess -= 1
        return closing

    def _sweep(self) -> None:
        """Close idle pools every KEEPALIVE_SECONDS; end once none is left (the next request
        starts another sweeper)."""
        while True:
            time.sleep(KEEPALIVE_SECONDS)
            with self._lock:
                closing = self._take_closable(time.monotonic())
                finished = not self._pools
                if finished:
                    self._sweeper = None
            _close(closing)
            if finished:
                return

    def close_idle(self) -> None:
        with self._lock:
            closing = self._take_closable(time.monotonic(), idle_seconds=0)
        _close(closing)

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's connections are the parent's (never closed here)."""
        self._lock = threading.Lock()
        self._pools = OrderedDict()
        self._sweeper = None


def _close(pools: list[_Pool]) -> None:
    for pool in pools:
        pool.transport.close()


_pools = _Pools()
os.register_at_fork(after_in_child=_pools.forget_after_fork)


def close_idle_connections() -> None:
    """Close every kept-alive connection not in use now."""
    _pools.close_idle()


# What a server that closed a kept-alive connection as the request went out leaves the
# client with: no answer (RemoteProtocolError "Server disconnected without sending a
# response"), or a reset connection (ReadError, WriteError).
_STALE_CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class _Connecting:
    """httpcore's trace hook for one request: whether it opened a connection of its own, and
    whether an answer began (its status line and headers arrived)."""

    __slots__ = ("answered", "opened")

    def __init__(self) -> None:
        self.opened = self.answered = False

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.started":
            self.opened = True
        elif event == "http11.receive_response_headers.complete":
            self.answered = True


def _send_once_more_if_stale(
    method: str,
    request_url: httpx.URL,
    *,
    target: _Target,
    address: str,
    timeout: httpx.Timeout,
    deadline: float,
    **options: Any,
) -> tuple[int, dict[str, str], bytearray]:
    """_send(); if the kept-alive connection it took was closed by the server without an
    answer, the same request once more on a new connection, in the time left."""
    connecting = _Connecting()
    try:
        return _send(
            method,
            request_url,
            target=target,
            address=address,
            timeout=timeout,
            deadline=deadline,
            trace=connecting,
            **options,
        )
    except _STALE_CONNECTION_ERRORS:
        left = deadline - time.monotonic()
        # A new connection that failed, or an answer cut short: the server's doing.
        if connecting.opened or connecting.answered or left <= 0:
            raise
    timeout = httpx.Timeout(left, connect=min(left, timeout.connect or left))
    return _send(
        method,
        request_url,
        target=target,
        address=address,
        timeout=timeout,
        deadline=deadline,
        fresh=True,
        **options,
    )


def _send(
    method: str,
    request_url: httpx.URL,
    *,
    target: _Target,
    address: str,
    content: bytes | None,
    headers: dict[str, str],
    extensions: dict[str, Any],
    timeout: httpx.Timeout,
    verify: ssl.SSLContext | bool,
    deadline: float,
    max_body_bytes: int,
    truncate: bool,
    trace: _Connecting | None = None,
    fresh: bool = False,
) -> tuple[int, dict[str, str], bytearray]:
    """One request and its answer, on a kept-alive connection to `address` if one is idle,
    else on a new one that is kept (`fresh`: a new connection of its own, closed after)."""
    request = httpx.Request(
        method,
        request_url,
        content=content,
        headers=headers,
        extensions={
            **extensions,
            "timeout": timeout.as_dict(),
            **({"trace": trace} if trace is not None else {}),
        },
    )
    with _pools.transport(target, address, verify, fresh=fresh) as transport:
        response = transport.handle_request(request)
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > max_body_bytes and not truncate:
                    raise BodyTooLarge(f"The answer is larger than {max_body_bytes} bytes.")
                # A server dripping its body must not hold the worker past the limit.
                if time.monotonic() > deadline:
                    if truncate:
                        break
                    raise RequestTimedOut(
                        "The answer did not arrive in full within the time limit."
                    )
                if truncate and len(body) >= max_body_bytes:
                    break
            answer_headers = {name.lower(): value for name, value in response.headers.items()}
            return response.status_code, answer_headers, body
        finally:
            # An answer not read to its end closes its connection; a whole one frees it.
            response.close()
