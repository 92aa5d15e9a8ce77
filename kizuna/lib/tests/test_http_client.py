"""What the HTTP/1.1 client under kizuna/lib/http.py must do on the wire (httpx did it before).

The server here is real: sockets on 127.0.0.1 that read each request whole and answer it with
the next scripted bytes, byte for byte, so that answers no well-behaved server library would
send (cut short, dripping, asking to close) can be sent.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kizuna.lib import http, http_connections
from kizuna.testing.receiver import self_signed_certificate

# What to do with one request on a connection: send bytes, or act on the socket.
Reply = bytes | Callable[[socket.socket], None]


@dataclass
class Request:
    connection: int
    head: bytes
    body: bytes


@dataclass
class RawServer:
    port: int = 0
    script: list[Reply] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    # Connection numbers whose client closed them (the server read the end of the stream).
    closed_by_client: list[int] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    tls: ssl.SSLContext | None = None
    server_names: list[str | None] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def serve(self, connection: socket.socket, number: int) -> None:
        with connection:
            reader = connection.makefile("rb")
            while True:
                try:
                    head = b""
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        head += line
                except OSError:
                    return
                if not head:
                    self.closed_by_client.append(number)
                    self.closed.set()
                    return
                length = 0
                for header in head.split(b"\r\n")[1:]:
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.requests.append(Request(number, head, reader.read(length)))
                reply = self.script.pop(0) if self.script else NO_CONTENT
                try:
                    if callable(reply):
                        reply(connection)
                    else:
                        connection.sendall(reply)
                except OSError:
                    return


NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def start(server: RawServer) -> Iterator[RawServer]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server.port = listener.getsockname()[1]

    def accept() -> None:
        number = 0
        while True:
            try:
                connection, _peer = listener.accept()
                if server.tls is not None:
                    connection = server.tls.wrap_socket(connection, server_side=True)
            except OSError:
                if listener.fileno() < 0:
                    return
                continue
            number += 1
            threading.Thread(target=server.serve, args=(connection, number), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    http.close_idle_connections()
    try:
        yield server
    finally:
        listener.close()
        http.close_idle_connections()


@pytest.fixture
def server() -> Iterator[RawServer]:
    yield from start(RawServer())


def post(server: RawServer, **options) -> http.PostResult:
    return http.post(
        server.origin + "/hook",
        content=b'{"a": 1}',
        headers=options.pop("headers", {}),
        allowed_origins=[server.origin],
        **options,
    )


def get(server: RawServer, **options) -> http.Result:
    return http.request("GET", server.origin + "/x", allowed_origins=[server.origin], **options)


def drip(*parts: bytes, pause: float) -> Callable[[socket.socket], None]:
    def send(connection: socket.socket) -> None:
        for part in parts:
            connection.sendall(part)
            time.sleep(pause)

    return send


def late(data: bytes, pause: float) -> Callable[[socket.socket], None]:
    def send(connection: socket.socket) -> None:
        time.sleep(pause)
        connection.sendall(data)

    return send


def then_hang(data: bytes) -> Callable[[socket.socket], None]:
    """Send `data`, then nothing more for 3 seconds (the connection stays open)."""

    def send(connection: socket.socket) -> None:
        connection.sendall(data)
        time.sleep(3)

    return send


def test_p2_a_chunked_answer_is_read_whole_and_its_connection_serves_again(server: RawServer):
    server.answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )

    first = get(server)
    second = post(server)

    assert (first.status_code, first.content) == (200, b"hello world")
    assert second.status_code == 204
    assert [request.connection for request in server.requests] == [1, 1]


def test_p2_a_chunked_answer_over_the_limit_is_refused(server: RawServer):
    server.answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"3\r\nabc\r\n" * 3)

    with pytest.raises(http.BodyTooLarge):
        get(server, max_response_bytes=8)


def test_p2_an_answer_asking_to_close_its_connection_is_not_sent_another_request(
    server: RawServer,
):
    # The server keeps the connection open after asking to close it: only the client's
    # reading of the header keeps it from sending the next request there.
    server.answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")

    first = post(server)
    second = post(server)

    assert (first.status_code, first.body, second.status_code) == (200, "ok", 204)
    assert [request.connection for request in server.requests] == [1, 2]


def test_p2_an_http_1_0_answer_without_keep_alive_is_not_sent_another_request(server: RawServer):
    server.answer(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")

    post(server)
    post(server)

    assert [request.connection for request in server.requests] == [1, 2]


@pytest.mark.parametrize("call", [post, get], ids=["post", "request"])
def test_p2_an_answer_cut_short_in_its_body_is_a_connection_failure(server: RawServer, call):
    def cut(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        connection.shutdown(socket.SHUT_WR)

    server.answer(cut)

    with pytest.raises(http.ConnectionFailed, match="before the end of its answer"):
        call(server)


@pytest.mark.parametrize("call", [post, get], ids=["post", "request"])
def test_p2_a_server_that_never_sends_its_headers_is_a_timeout(server: RawServer, call):
    server.answer(then_hang(b"HTTP/1.1 200 OK\r\nContent-Le"))

    with pytest.raises(http.RequestTimedOut, match=r"No answer within 0.3 seconds \(ReadTimeout\)"):
        call(server, timeout_seconds=0.3)


def test_p2_headers_dripping_past_the_time_limit_are_a_timeout(server: RawServer):
    # Each byte comes well within the time limit; the whole answer does not.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    server.answer(drip(*(head[n : n + 1] for n in range(len(head))), pause=0.05))

    with pytest.raises(http.RequestTimedOut):
        post(server, timeout_seconds=0.5)


def test_p2_post_cuts_a_body_still_dripping_at_the_time_limit(server: RawServer):
    server.answer(then_hang(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst part"))

    cut = post(server, timeout_seconds=0.5)
    after = post(server)

    assert (cut.status_code, cut.body) == (200, "first part")
    assert after.status_code == 204
    assert [request.connection for request in server.requests] == [1, 2]


def test_p2_request_refuses_a_body_still_dripping_at_the_time_limit(server: RawServer):
    server.answer(then_hang(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst part"))

    with pytest.raises(http.RequestTimedOut, match="did not arrive in full"):
        get(server, timeout_seconds=0.5)


def test_p2_an_answer_ending_with_its_connection_is_read_to_that_end(server: RawServer):
    def until_closed(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\n\r\nall of ")
        connection.sendall(b"it")
        connection.shutdown(socket.SHUT_WR)

    server.answer(until_closed)

    assert get(server).content == b"all of it"


def test_p2_interim_answers_are_skipped_and_repeated_headers_joined(server: RawServer):
    server.answer(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nX-Thing: a\r\nX-THING: b\r\nContent-Length: 4\r\n\r\ndone"
    )

    result = get(server)

    assert (result.status_code, result.content) == (201, b"done")
    assert result.headers["x-thing"] == "a, b"


def test_p2_a_header_value_with_a_line_break_is_never_sent(server: RawServer):
    with pytest.raises(ValueError):
        post(server, headers={"X-Note": "a\r\nX-Injected: 1"})

    assert server.requests == []


def test_p2_the_request_line_carries_the_path_and_query_percent_encoded_without_fragment(
    server: RawServer,
):
    http.request(
        "GET",
        server.origin + "/猫/a%20b?q=1&x=%E3%81%82#fragment",
        params={"q": "2", "since": "a b+c"},
        allowed_origins=[server.origin],
    )

    [request] = server.requests
    assert request.head.split(b"\r\n")[0] == (
        b"GET /%E7%8C%AB/a%20b?q=2&x=%E3%81%82&since=a+b%2Bc HTTP/1.1"
    )


def test_p2_at_most_the_bound_of_connections_to_one_address_at_once(server: RawServer, monkeypatch):
    monkeypatch.setattr(http_connections, "MAX_CONNECTIONS_PER_ADDRESS", 1)
    server.answer(late(NO_CONTENT, pause=1))
    slow = threading.Thread(target=post, args=(server,), kwargs={"timeout_seconds": 10})
    slow.start()
    while not server.requests:
        time.sleep(0.01)

    with pytest.raises(http.RequestTimedOut, match="PoolTimeout"):
        post(server, timeout_seconds=0.3)
    slow.join(timeout=10)

    assert [request.connection for request in server.requests] == [1]


def test_p2_connections_idle_for_the_keep_alive_time_are_closed_by_the_client(
    server: RawServer, monkeypatch
):
    monkeypatch.setattr(http_connections, "KEEPALIVE_SECONDS", 0.1)

    post(server)

    assert server.closed.wait(timeout=10)
    assert server.closed_by_client == [1]


def test_p2_a_forked_process_never_uses_the_connections_of_its_parent(server: RawServer):
    post(server)

    child = os.fork()
    if child == 0:  # pragma: no cover (the child process)
        status = 1
        try:
            status = 0 if post(server).status_code == 204 else 1
        finally:
            os._exit(status)
    _pid, status = os.waitpid(child, 0)
    post(server)

    assert os.waitstatus_to_exitcode(status) == 0
    assert [request.connection for request in server.requests] == [1, 2, 1]


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[RawServer, ssl.SSLContext]]:
    """A RawServer speaking TLS for `localhost`; yields it and a client context trusting it."""
    cert_path, key_path = self_signed_certificate("localhost", tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    state = RawServer(tls=context)

    def remember(_socket: ssl.SSLObject, name: str, _context: ssl.SSLContext) -> None:
        state.server_names.append(name)

    context.sni_callback = remember
    for running in start(state):
        yield running, ssl.create_default_context(cafile=str(cert_path))


def test_p2_tls_names_the_urls_host_to_the_server_and_keeps_the_connection(tls_server):
    server, trusted = tls_server
    origin = f"https://localhost:{server.port}"

    for _ in range(2):
        result = http.post(
            origin + "/hook", content=b"{}", headers={}, allowed_origins=[origin], verify=trusted
        )
        assert result.status_code == 204

    assert server.server_names == ["localhost"]
    assert [request.connection for request in server.requests] == [1, 1]
    assert f"Host: localhost:{server.port}".encode() in server.requests[0].head.split(b"\r\n")


def test_p2_tls_to_an_address_refuses_a_certificate_for_a_name(tls_server):
    server, trusted = tls_server
    origin = f"https://127.0.0.1:{server.port}"

    with pytest.raises(http.ConnectionFailed, match="SSLCertVerificationError"):
        http.post(origin + "/", content=b"{}", headers={}, allowed_origins=[origin], verify=trusted)

    assert server.requests == []
