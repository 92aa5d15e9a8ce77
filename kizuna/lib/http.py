"""The one outbound HTTP client: explicit timeouts and a guard against private addresses.

URLs that users type (webhook endpoints) could point the server at itself or at
the private network (SSRF). Before connecting, the host is resolved, every
address is checked, and the connection goes to the checked address (the Host
header and TLS server name stay the URL's), so a DNS answer that changes between
check and connect (rebinding) cannot slip through. Origins in `allowed_origins`
(the co-deployed CRM, a test receiver) skip the address check. IPv6 addresses that
carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) are judged by that IPv4
address too, and a URL whose host is malformed is refused, never an exception.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

__all__ = [
    "ConnectionFailed",
    "OutboundError",
    "PostResult",
    "RequestTimedOut",
    "UnsafeURLError",
    "check_url",
    "post",
]

DEFAULT_PORTS = {"http": 80, "https": 443}
# Enough of a response body to show an administrator why a delivery failed.
MAX_BODY_BYTES = 4096
USER_AGENT = "Kizuna"
MAX_ADDRESSES_TRIED = 3
# RFC 6052's well-known NAT64 prefix: a gateway translates 64:ff9b::a.b.c.d to a.b.c.d.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


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


@dataclass(frozen=True)
class PostResult:
    status_code: int
    duration_ms: int
    body: str


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


def _origin_key(url: str) -> tuple[str, str, int] | None:
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
    """
    target = _target(url, allowed_origins)
    default_port = DEFAULT_PORTS[target.scheme]
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != default_port:
        host_header = f"{host_header}:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    timeout = httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds)
    started = time.monotonic()
    deadline = started + timeout_seconds
    unreachable: httpx.TransportError | None = None
    # A host with several checked addresses (IPv6 and IPv4) is tried address by
    # address until one accepts the connection.
    for address in target.addresses[:MAX_ADDRESSES_TRIED]:
        try:
            status_code, body = _send(
                httpx.URL(url).copy_with(host=address),
                content=content,
                headers={"User-Agent": USER_AGENT, **headers, "Host": host_header},
                extensions=extensions,
                timeout=timeout,
                verify=verify,
                deadline=deadline,
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
    return PostResult(
        status_code=status_code,
        duration_ms=duration_ms,
        body=bytes(body[:MAX_BODY_BYTES]).decode("utf-8", errors="replace"),
    )


def _send(
    request_url: httpx.URL,
    *,
    content: bytes,
    headers: dict[str, str],
    extensions: dict[str, str],
    timeout: httpx.Timeout,
    verify: ssl.SSLContext | bool,
    deadline: float,
) -> tuple[int, bytearray]:
    with (
        httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False, verify=verify
        ) as client,
        client.stream(
            "POST", request_url, content=content, headers=headers, extensions=extensions
        ) as response,
    ):
        body = bytearray()
        for chunk in response.iter_bytes():
            body.extend(chunk)
            # A server dripping its body must not hold the worker past the limit.
            if len(body) >= MAX_BODY_BYTES or time.monotonic() > deadline:
                break
        return response.status_code, body
