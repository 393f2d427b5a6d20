"""An HTTP server on 127.0.0.1 in a background thread, for the test source APIs, used in a `with` block."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

ORDERS_PATH = "/v1/orders"  # what datasets/orders.py declares
EMPTY_PAGE = '{"data": [], "next_cursor": null}'  # what the test APIs serve the other datasets


class LocalServer:
    def __init__(self, server: ThreadingHTTPServer, scheme: str = "http") -> None:
        self._server = server
        self._scheme = scheme
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def send_json(handler: BaseHTTPRequestHandler, body: str) -> None:
    """Answer 200 with `body` as the JSON page."""
    encoded = body.encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(encoded)))
    handler.end_headers()
    handler.wfile.write(encoded)
