"""A minimal HTTP API that serves fixed page bodies, for shapes the sample API never produces."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

ORDERS_PATH = "/v1/orders"  # what datasets/orders.py declares; other paths get an empty page


class FixedPagesApi:
    """Serves `records_per_page[n]` for cursor n (no cursor: page 0), with `next_cursor` n+1 or null."""

    def __init__(self, records_per_page: Sequence[Sequence[str]], indent: int | None = None) -> None:
        pages = list(records_per_page)
        self.queries: list[dict[str, list[str]]] = []
        queries = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != ORDERS_PATH:  # the other datasets: nothing to serve
                    self._answer(b'{"data": [], "next_cursor": null}')
                    return
                query = parse_qs(urlsplit(self.path).query)
                queries.append(query)
                number = int(query.get("cursor", ["0"])[0])
                next_cursor = str(number + 1) if number + 1 < len(pages) else None
                body = (
                    '{"data": [' + ", ".join(pages[number]) + '], "next_cursor": ' + json.dumps(next_cursor)
                )
                if indent:
                    body = json.dumps(json.loads(body + "}"), indent=indent)
                else:
                    body += "}"
                self._answer(body.encode())

            def _answer(self, encoded: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FixedPagesApi:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
