from __future__ import annotations

import socket
import ssl
import threading

import pytest

from kizuna.lib import http, http_connections
from kizuna.testing.receiver import Answer, Receiver, tls_receiver


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.8.9.10:8000/hook",
        "http://localhost:8000/hook",
        "http://10.0.0.5/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://224.0.0.1/hook",
        "http://2130706433/hook",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(url):
    with pytest.raises(http.UnsafeURLError) as refused:
        http.check_url(url)
    assert refused.value.code == "private_address"


def test_public_address_is_allowed():
    http.check_url("https://93.184.215.14/hook")


@pytest.mark.parametrize("url", ["ftp://93.184.215.14/x", "file:///etc/passwd", "gopher://a/"])
def test_other_schemes_are_refused(url):
    with pytest.raises(http.UnsafeURLError) as refused:
        http.check_url(url)
    assert refused.value.code == "unsupported_scheme"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "not a url",
        "http://",
        "https://:80/x",
        # Hosts Python's urlsplit raises ValueError for (once a 500 at the Survey API).
        "http://[127.0.0.1]/",
        "http://[::1/",
        "http://[not-an-address]/",
        "http://x:99999/",
        "http://x:port/",
        # Malformed host names.
        "http://exa mple.com/",
        "http://a..b/",
        "http://-a.example.com/",
        "http://host%2f/",
        "http://" + "a" * 64 + ".example.com/",
        # Characters urlsplit would drop silently, so what is stored is not what is requested.
        "http://ho\tst/",
        "http://example.com/\r\nX-Injected: 1",
        "http://exa\x00mple.com/",
    ],
)
def test_malformed_urls_are_refused(url):
    with pytest.raises(http.UnsafeURLError) as refused:
        http.check_url(url)
    assert refused.value.code == "invalid_url"


@pytest.mark.parametrize(
    ("url", "inside"),
    [
        ("http://[2002:7f00:1::]/", "6to4 of 127.0.0.1"),
        ("http://[2002:a9fe:a9fe::]/", "6to4 of 169.254.169.254 (cloud metadata)"),
        ("http://[2002:c0a8:101::1]/", "6to4 of 192.168.1.1"),
        ("http://[2002:a00:1::]/", "6to4 of 10.0.0.1"),
        ("http://[2002:6440:1::]/", "6to4 of 100.64.0.1 (shared address space)"),
        ("http://[64:ff9b::7f00:1]/", "NAT64 of 127.0.0.1"),
        ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 of 169.254.169.254"),
        ("http://[64:ff9b:1::a00:1]/", "local-use NAT64 of 10.0.0.1"),
        ("http://[::ffff:169.254.169.254]/", "IPv4-mapped 169.254.169.254"),
        ("http://[::ffff:a00:1]/", "IPv4-mapped 10.0.0.1, hexadecimal"),
        ("http://[::ffff:0:7f00:1]/", "IPv4-translated 127.0.0.1"),
        ("http://[::127.0.0.1]/", "IPv4-compatible 127.0.0.1"),
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "Teredo, client 127.0.0.1"),
        ("http://127.1/", "short form of 127.0.0.1"),
        ("http://0x7f.0.0.1/", "hexadecimal 127.0.0.1"),
        ("http://017700000001/", "octal 127.0.0.1"),
    ],
)
def test_ipv6_and_numeric_spellings_of_private_ipv4_addresses_are_refused(url, inside):
    with pytest.raises(http.UnsafeURLError) as refused:
        http.check_url(url)
    assert refused.value.code == "private_address", inside


@pytest.mark.parametrize(
    "url",
    ["https://[2002:5db8:d70e::1]/hook", "https://[64:ff9b::5db8:d70e]/hook"],
    ids=["6to4", "NAT64"],
)
def test_ipv6_carrying_a_public_ipv4_address_is_allowed(url):
    http.check_url(url)


def test_a_malformed_allowed_origin_allows_nothing_and_raises_nothing():
    with pytest.raises(http.UnsafeURLError) as refused:
        http.check_url("http://127.0.0.1:8000/hook", allowed_origins=["http://[127.0.0.1]:8000"])
    assert refused.value.code == "private_address"


def test_post_refuses_a_malformed_host_before_connecting():
    with pytest.raises(http.UnsafeURLError) as refused:
        http.post("http://[127.0.0.1]/hook", content=b"{}", headers={})
    assert refused.value.code == "invalid_url"


def test_unresolvable_host_is_refused():
    with pytest.raises(http.UnsafeURLError) as refused:
        http.check_url("https://no-such-host.invalid/hook")
    assert refused.value.code == "unresolvable"


def test_allowed_origin_may_be_private_but_only_that_origin():
    http.check_url("http://127.0.0.1:8000/crm/hook", allowed_origins=["http://127.0.0.1:8000/"])
    with pytest.raises(http.UnsafeURLError):
        http.check_url("http://127.0.0.1:8001/crm/hook", allowed_origins=["http://127.0.0.1:8000"])
    with pytest.raises(http.UnsafeURLError):
        http.check_url("https://127.0.0.1:8000/", allowed_origins=["http://127.0.0.1:8000"])


def test_post_to_a_private_address_never_connects(receiver: Receiver):
    with pytest.raises(http.UnsafeURLError):
        http.post(receiver.url(), content=b"{}", headers={})
    assert receiver.requests == []


def test_post_reaches_an_allowed_origin_with_the_urls_host_header(receiver: Receiver):
    receiver.answer(Answer(status=202, body=b"accepted"))
    url = f"http://localhost:{receiver.port}/hook?x=1"

    result = http.post(
        url,
        content=b'{"a": 1}',
        headers={"content-type": "application/json"},
        allowed_origins=[f"http://localhost:{receiver.port}"],
    )

    assert (result.status_code, result.body) == (202, "accepted")
    assert result.duration_ms >= 0
    [request] = receiver.requests
    assert request.path == "/hook?x=1"
    assert request.headers["host"] == f"localhost:{receiver.port}"
    assert request.body == b'{"a": 1}'


def test_post_answers_errors_as_results_and_follows_no_redirect(receiver: Receiver):
    receiver.answer(
        Answer(status=302, headers=(("Location", "http://169.254.169.254/"),)), Answer(status=503)
    )
    first = http.post(receiver.url(), content=b"", headers={}, allowed_origins=[receiver.origin])
    second = http.post(receiver.url(), content=b"", headers={}, allowed_origins=[receiver.origin])

    assert (first.status_code, second.status_code) == (302, 503)
    assert len(receiver.requests) == 2


def test_post_times_out(receiver: Receiver):
    receiver.answer(Answer(delay_seconds=1.5))
    with pytest.raises(http.RequestTimedOut):
        http.post(
            receiver.url(),
            content=b"",
            headers={},
            allowed_origins=[receiver.origin],
            timeout_seconds=0.3,
        )


def test_post_to_a_closed_port_is_a_connection_failure():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    with pytest.raises(http.ConnectionFailed):
        http.post(origin + "/hook", content=b"", headers={}, allowed_origins=[origin])


def test_https_connects_to_the_checked_address_but_verifies_the_urls_host_name(tmp_path):
    with tls_receiver("localhost", tmp_path) as (receiver, cert_path):
        trusted = ssl.create_default_context(cafile=str(cert_path))
        result = http.post(
            receiver.url(),
            content=b"{}",
            headers={},
            allowed_origins=[receiver.origin],
            verify=trusted,
        )

    assert result.status_code == 200
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"


def test_https_certificate_of_another_host_is_refused(tmp_path):
    with tls_receiver("crm.example.com", tmp_path) as (receiver, cert_path):
        trusted = ssl.create_default_context(cafile=str(cert_path))
        url = f"https://localhost:{receiver.port}/hook"
        with pytest.raises(http.ConnectionFailed):
            http.post(
                url,
                content=b"{}",
                headers={},
                allowed_origins=[f"https://localhost:{receiver.port}"],
                verify=trusted,
            )
    assert receiver.requests == []


def test_https_with_an_untrusted_certificate_is_refused_by_default(tmp_path):
    with (
        tls_receiver("localhost", tmp_path) as (receiver, _),
        pytest.raises(http.ConnectionFailed),
    ):
        http.post(receiver.url(), content=b"{}", headers={}, allowed_origins=[receiver.origin])
    assert receiver.requests == []


def test_post_tries_the_next_checked_address_when_one_refuses(receiver: Receiver, monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host != "crm.internal":
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(http.socket, "getaddrinfo", resolve)
    origin = f"http://crm.internal:{receiver.port}"

    result = http.post(origin + "/hook", content=b"{}", headers={}, allowed_origins=[origin])

    assert result.status_code == 200
    assert receiver.requests[0].headers["host"] == f"crm.internal:{receiver.port}"


def test_a_host_with_one_private_address_among_public_ones_is_refused(monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(http.socket, "getaddrinfo", resolve)
    with pytest.raises(http.UnsafeURLError) as refused:
        http.check_url("https://rebinding.example/hook")
    assert refused.value.code == "private_address"


# --- request(): API calls with JSON bodies ------------------------------------------------------


def test_request_sends_json_and_query_and_reads_the_whole_answer(receiver: Receiver):
    answer = b'{"items": [' + b",".join(b'{"n": %d}' % n for n in range(2000)) + b"]}"
    receiver.answer(Answer(status=200, body=answer, headers=(("X-Thing", "yes"),)))

    result = http.request(
        "POST",
        receiver.url("/api/things"),
        json_body={"name": "猫", "n": 1},
        params={"since": "2026-12-01T00:00:00+00:00"},
        headers={"X-Key": "k"},
        allowed_origins=[receiver.origin],
    )

    [sent] = receiver.requests
    assert sent.method == "POST"
    assert sent.path == "/api/things?since=2026-12-01T00%3A00%3A00%2B00%3A00"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-key"] == "k"
    assert sent.body.decode() == '{"name":"猫","n":1}'
    assert result.status_code == 200
    assert result.headers["x-thing"] == "yes"
    assert len(result.json()["items"]) == 2000  # far beyond post()'s 4 KB


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_request_sends_other_methods_without_a_body(receiver: Receiver, method):
    receiver.answer(Answer(status=204, body=b""))

    result = http.request(method, receiver.url("/x"), allowed_origins=[receiver.origin])

    assert [(r.method, r.body) for r in receiver.requests] == [(method, b"")]
    assert result.status_code == 204


def test_request_answers_errors_as_results(receiver: Receiver):
    receiver.answer(Answer(status=500, body=b"boom"))

    result = http.request("GET", receiver.url(), allowed_origins=[receiver.origin])

    assert (result.status_code, result.content) == (500, b"boom")
    with pytest.raises(ValueError):
        result.json()


def test_request_refuses_a_private_address_not_allowed(receiver: Receiver):
    with pytest.raises(http.UnsafeURLError) as refused:
        http.request("GET", receiver.url())

    assert refused.value.code == "private_address"
    assert receiver.requests == []


def test_request_refuses_a_body_over_the_limit_before_sending(receiver: Receiver):
    too_much = "x" * (http.MAX_REQUEST_BYTES + 1)

    with pytest.raises(http.BodyTooLarge):
        http.request(
            "POST", receiver.url(), json_body={"x": too_much}, allowed_origins=[receiver.origin]
        )

    assert receiver.requests == []


def test_request_drops_an_answer_over_the_stated_limit(receiver: Receiver):
    receiver.answer(Answer(status=200, body=b"x" * 5000))

    with pytest.raises(http.BodyTooLarge) as too_large:
        http.request(
            "GET", receiver.url(), allowed_origins=[receiver.origin], max_response_bytes=4096
        )

    assert too_large.value.code == "too_large"


def test_request_times_out(receiver: Receiver):
    receiver.answer(Answer(delay_seconds=1.5))

    with pytest.raises(http.RequestTimedOut):
        http.request("GET", receiver.url(), allowed_origins=[receiver.origin], timeout_seconds=0.3)


def test_request_to_a_closed_port_fails_to_connect():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    with pytest.raises(http.ConnectionFailed):
        http.request(
            "GET", f"http://127.0.0.1:{port}/", allowed_origins=[f"http://127.0.0.1:{port}"]
        )


# --- kept-alive connections -----------------------------------------------------------------


def post_to(receiver: Receiver, url: str | None = None, **options) -> http.PostResult:
    return http.post(
        url or receiver.url(),
        content=b"{}",
        headers={},
        allowed_origins=options.pop("allowed_origins", [receiver.origin]),
        **options,
    )


def peers(receiver: Receiver) -> list[tuple[str, int]]:
    return [request.peer for request in receiver.requests]


def test_requests_to_one_address_reuse_a_kept_alive_connection(receiver: Receiver):
    receiver.keep_alive = True

    post_to(receiver)
    post_to(receiver)
    http.request("GET", receiver.url(), allowed_origins=[receiver.origin])

    assert len(receiver.requests) == 3
    assert len(set(peers(receiver))) == 1


def test_a_kept_alive_connection_is_not_used_once_its_url_is_refused(receiver: Receiver):
    receiver.keep_alive = True
    post_to(receiver)

    with pytest.raises(http.UnsafeURLError):
        post_to(receiver, allowed_origins=[])

    assert len(receiver.requests) == 1


@pytest.fixture
def loopback_is_public(monkeypatch):
    """127.0.0.1 and 127.0.0.2 count as public addresses (the receiver stands for a server on
    the internet); every other address is judged as usual."""
    real = http._is_public
    monkeypatch.setattr(
        http, "_is_public", lambda address: address in {"127.0.0.1", "127.0.0.2"} or real(address)
    )


def resolving(monkeypatch, answers: dict[str, list[str]]) -> None:
    """Each name of `answers` resolves to the next address of its list at each lookup."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        address = answers[host].pop(0)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(http.socket, "getaddrinfo", resolve)


def test_a_name_now_resolving_to_a_forbidden_address_is_refused_despite_a_kept_connection(
    receiver: Receiver, monkeypatch, loopback_is_public
):
    receiver.keep_alive = True
    resolving(monkeypatch, {"hooks.example": ["127.0.0.1", "10.0.0.7", "127.0.0.1"]})
    url = f"http://hooks.example:{receiver.port}/hook"

    assert post_to(receiver, url, allowed_origins=[]).status_code == 200
    with pytest.raises(http.UnsafeURLError) as refused:
        post_to(receiver, url, allowed_origins=[])
    assert refused.value.code == "private_address"
    assert len(receiver.requests) == 1
    # Back on the checked address: its kept connection serves it again.
    assert post_to(receiver, url, allowed_origins=[]).status_code == 200
    assert len(set(peers(receiver))) == 1


def test_a_name_now_resolving_to_another_address_never_uses_the_connection_to_the_old_one(
    receiver: Receiver, monkeypatch, loopback_is_public
):
    receiver.keep_alive = True
    # The receiver listens on 127.0.0.1 only: nothing answers at 127.0.0.2.
    resolving(monkeypatch, {"hooks.example": ["127.0.0.1", "127.0.0.2"]})
    url = f"http://hooks.example:{receiver.port}/hook"

    assert post_to(receiver, url, allowed_origins=[]).status_code == 200
    with pytest.raises(http.ConnectionFailed):
        post_to(receiver, url, allowed_origins=[])
    assert len(receiver.requests) == 1


def test_a_connection_whose_answer_did_not_come_is_not_reused(receiver: Receiver):
    receiver.keep_alive = True
    receiver.answer(Answer(delay_seconds=1.5, body=b"late"), Answer(status=201, body=b"second"))
    with pytest.raises(http.RequestTimedOut):
        post_to(receiver, timeout_seconds=0.3)

    result = post_to(receiver)

    assert (result.status_code, result.body) == (201, "second")
    first, second = peers(receiver)
    assert first != second


def test_idle_kept_alive_connections_are_closed(receiver: Receiver):
    receiver.keep_alive = True
    post_to(receiver)

    http.close_idle_connections()
    post_to(receiver)

    first, second = peers(receiver)
    assert first != second


def test_the_least_recently_used_connections_beyond_the_bound_are_closed(
    receiver: Receiver, monkeypatch
):
    receiver.keep_alive = True
    monkeypatch.setattr(http_connections, "MAX_POOLS", 1)
    by_name = f"http://localhost:{receiver.port}/hook"
    origins = [receiver.origin, f"http://localhost:{receiver.port}"]

    post_to(receiver, allowed_origins=origins)
    post_to(receiver, by_name, allowed_origins=origins)  # another pool: the first one closes
    post_to(receiver, allowed_origins=origins)

    first, _by_name, third = peers(receiver)
    assert first != third


def test_threads_sending_at_once_share_the_kept_alive_connections(receiver: Receiver):
    receiver.keep_alive = True
    results: list[int] = []

    def send() -> None:
        for _ in range(5):
            results.append(post_to(receiver).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert results == [200] * 40
    assert len(receiver.requests) == 40
    # At most one connection per thread sending at the same time.
    assert len(set(peers(receiver))) <= 8
