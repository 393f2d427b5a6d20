"""An HTTP API on 127.0.0.1 that answers each request with whatever a test's function writes, byte by
byte if need be: for sources that misbehave in ways the sample API never does."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.local_server import LocalServer


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def cursor(self) -> str | None:
        return self.query.get("cursor", [None])[0]


Respond = Callable[["Answer", Request], None]


class Answer:
    """What a test's function uses to answer one request."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._handler = handler
        self.bytes_sent = 0

    def send(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        """A whole answer with its Content-Length."""
        self.head(status, {"Content-Length": str(len(body)), **(headers or {})})
        self.write(body)

    def head(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self._handler.send_header(name, value)
        self._handler.end_headers()

    def write(self, data: bytes) -> None:
        self._handler.wfile.write(data)
        self._handler.wfile.flush()
        self.bytes_sent += len(data)

    def drip(self, data: bytes, every_seconds: float) -> None:
        """Send `data` one byte at a time, raw (from the status line on, if nothing was sent yet)."""
        for byte in data:
            self._handler.wfile.write(bytes([byte]))
            self._handler.wfile.flush()
            self.bytes_sent += 1
            time.sleep(every_seconds)


class HostileApi(LocalServer):
    """Answers every GET with `respond(answer, request)`; `requests` records what arrived."""

    def __init__(self, respond: Respond, tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: (certificate, key) files to answer over HTTPS."""
        self.requests: list[Request] = []
        self.sent: list[int] = []  # bytes each answer got out before it ended or the client left
        requests, sent = self.requests, self.sent

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                request = Request(parts.path, parse_qs(parts.query), dict(self.headers.items()))
                requests.append(request)
                answer = Answer(self)
                try:
                    respond(answer, request)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                finally:
                    sent.append(answer.bytes_sent)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        super().__init__(server, "http" if tls is None else "https")
