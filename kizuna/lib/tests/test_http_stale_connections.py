"""A kept-alive connection the server closed as the request went out is not a failed request.

The server here is real: sockets on 127.0.0.1 speaking HTTP/1.1 with kept-alive connections.
Each connection answers its first `answers_per_connection` requests; the next request on it
finds the server closing it (as a server whose keep-alive ran out at that moment does): it
is read and the connection closed without an answer, or reset.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from kizuna.lib import http


@dataclass
class ClosingServer:
    answers_per_connection: int = 1
    reset: bool = False
    port: int = 0
    # Per request, in order: (connection number, answered).
    requests: list[tuple[int, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, connection: socket.socket, number: int) -> None:
        with connection:
            reader = connection.makefile("rb")
            answered = 0
            while True:
                line = reader.readline()
                if not line:
                    return
                length = 0
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                reader.read(length)
                answers = answered < self.answers_per_connection
                with self.lock:
                    self.requests.append((number, answers))
                if not answers:
                    if self.reset:  # an RST instead of a FIN
                        connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    return
                answered += 1
                connection.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def closing_server() -> Iterator[ClosingServer]:
    server = ClosingServer()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server.port = listener.getsockname()[1]

    def accept() -> None:
        number = 0
        while True:
            try:
                connection, _peer = listener.accept()
            except OSError:
                return
            number += 1
            threading.Thread(target=server.serve, args=(connection, number), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    http.close_idle_connections()
    try:
        yield server
    finally:
        listener.close()
        http.close_idle_connections()


def post(server: ClosingServer) -> http.PostResult:
    return http.post(
        server.origin + "/hook",
        content=b"{}",
        headers={},
        allowed_origins=[server.origin],
        timeout_seconds=5,
    )


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_p2_a_kept_alive_connection_closed_by_the_server_is_retried_once_on_a_new_one(
    closing_server: ClosingServer, reset: bool
):
    closing_server.reset = reset

    first = post(closing_server)
    second = post(closing_server)  # takes the kept-alive connection the server now closes

    assert (first.status_code, second.status_code) == (204, 204)
    assert closing_server.requests == [(1, True), (1, False), (2, True)]


def test_p2_a_new_connection_closed_without_an_answer_is_a_failure_not_retried(
    closing_server: ClosingServer,
):
    closing_server.answers_per_connection = 0

    with pytest.raises(http.ConnectionFailed, match="closed the connection without an answer"):
        post(closing_server)

    assert closing_server.requests == [(1, False)]


def test_p2_the_request_sent_again_is_not_sent_a_third_time(closing_server: ClosingServer):
    # The kept-alive connection is closed, and so is the new one: that is the server's
    # answer, a failure, after one more try.
    post(closing_server)
    closing_server.answers_per_connection = 0

    with pytest.raises(http.ConnectionFailed):
        post(closing_server)

    assert closing_server.requests == [(1, True), (1, False), (2, False)]


def test_p2_the_connection_of_the_request_sent_again_is_closed_after_it(
    closing_server: ClosingServer,
):
    post(closing_server)
    post(closing_server)  # sent again on connection 2, which is then closed
    third = post(closing_server)  # a new kept-alive connection, not connection 2

    assert third.status_code == 204
    assert closing_server.requests == [(1, True), (1, False), (2, True), (3, True)]
