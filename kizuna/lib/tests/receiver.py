"""A real HTTP receiver on 127.0.0.1 for outbound-HTTP and webhook tests.

Each request takes the next scripted behaviour: an HTTP status to answer, or a
delay before answering (to make the client time out). Requests are recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Answer:
    status: int = 200
    delay_seconds: float = 0.0
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    script: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)
    requests: list[ReceivedRequest] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return self.origin + path

    def answer(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def _next(self) -> Answer:
        return self.script.pop(0) if self.script else self.default


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.requests.append(
                ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            answer = receiver._next()
            if answer.delay_seconds:
                time.sleep(answer.delay_seconds)
            try:
                self.send_response(answer.status)
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
