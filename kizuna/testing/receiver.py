"""A real HTTP receiver on 127.0.0.1 for outbound-HTTP and webhook tests.

Each request takes the next scripted behaviour: an HTTP status to answer, or a
delay before answering (to make the client time out). Requests are recorded.
"""

from __future__ import annotations

import datetime
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


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
    method: str = "POST"
    # The client's end of the connection (address, port): one connection, one value.
    peer: tuple[str, int] = ("", 0)
    # When its body had arrived, before any scripted delay.
    received_at: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC)
    )


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    script: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)
    requests: list[ReceivedRequest] = field(default_factory=list)

    scheme: str = "http"
    # HTTP/1.1 with connections kept open between requests (else HTTP/1.0: one per request).
    keep_alive: bool = False

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return self.origin + path

    def answer(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def _next(self) -> Answer:
        return self.script.pop(0) if self.script else self.default


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        @property  # read for each request and answer
        def protocol_version(self) -> str:  # type: ignore[override]
            return "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.requests.append(
                ReceivedRequest(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    self.command,
                    (self.client_address[0], self.client_address[1]),
                )
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

        do_GET = do_POST
        do_DELETE = do_POST

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


def self_signed_certificate(host: str, directory: Path) -> tuple[Path, Path]:
    """A certificate for `host` (and its key) in `directory`, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def tls_receiver(host: str, directory: Path) -> Iterator[tuple[Receiver, Path]]:
    """A Receiver on 127.0.0.1 speaking HTTPS for `host`; yields it and its certificate."""
    cert_path, key_path = self_signed_certificate(host, directory)
    state = Receiver(host=host, scheme="https")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, cert_path
    finally:
        server.shutdown()
        server.server_close()
