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
not decoded; no proxy is used; redirects are answers like any other. The connections and
their pools are kizuna/lib/http_connections.py.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import certifi

from kizuna.lib.http_connections import (
    HEADER_NAME,
    BodyTooLarge,
    ConnectionFailed,
    OutboundError,
    Request,
    RequestTimedOut,
    Target,
    Unreachable,
    close_idle_connections,
    send_once_more_if_stale,
)

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


class UnsafeURLError(OutboundError):
    """A URL that must not be requested.

    code: "invalid_url", "unsupported_scheme", "unresolvable" or "private_address".
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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


def _target(url: str, allowed_origins: Iterable[str]) -> Target:
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
    return Target(scheme=scheme, host=host, port=port, addresses=addresses)


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
    request = Request(
        method=method,
        message=message + content if content else message,
        deadline=started + timeout_seconds,
        timeout_seconds=timeout_seconds,
        connect_timeout_seconds=connect_timeout_seconds,
        max_body_bytes=max_body_bytes,
        truncate=truncate,
    )
    context = _tls_context(verify) if target.scheme == "https" else None
    unreachable: Unreachable | None = None
    # A host with several checked addresses (IPv6 and IPv4) is tried address by
    # address until one accepts the connection.
    for address in target.addresses[:MAX_ADDRESSES_TRIED]:
        try:
            answer = send_once_more_if_stale(request, target, address, context)
            break
        except Unreachable as error:
            unreachable = error
    else:
        if unreachable is not None and unreachable.timed_out:
            raise RequestTimedOut(
                f"No connection within {connect_timeout_seconds:g} seconds."
            ) from unreachable
        raise ConnectionFailed(str(unreachable)) from unreachable
    duration_ms = round((time.monotonic() - started) * 1000)
    return answer.status_code, answer.headers, answer.body, duration_ms


# A header value never holds a line break or NUL (header injection).
FORBIDDEN_IN_HEADER_VALUE = re.compile(r"[\r\n\0]")
# Set by the client from the request itself, never taken from the caller's headers.
OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def _request_head(
    method: str, url: str, target: Target, headers: Mapping[str, str], content: bytes | None
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
