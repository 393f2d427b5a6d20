"""A small source API that honours `updated_since` over a fixed history, for watermark edge cases.

It serves the records whose `updated_at` is at or after `updated_since` (inclusive, as the contract says),
in the order given (the oldest change first), `limit` per page, with the next record's position as cursor.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from etl.timestamps import parse_rfc3339

ORDERS_PATH = "/v1/orders"  # what datasets/orders.py declares; other paths get an empty page


class HistoryApi:
    def __init__(self, records: Sequence[str]) -> None:
        history = list(records)
        self.queries: list[dict[str, str]] = []
        queries = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != ORDERS_PATH:  # the other datasets: nothing to serve
                    self._answer(b'{"data": [], "next_cursor": null}')
                    return
                query = {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}
                queries.append(query)
                since = parse_rfc3339(query["updated_since"])
                assert since is not None
                start = int(query.get("cursor", "0"))
                if "cursor" not in query:
                    start = next(
                        (n for n, text in enumerate(history) if _changed(text) >= since), len(history)
                    )
                end = start + int(query["limit"])
                next_cursor = str(end) if end < len(history) else None
                body = json.dumps(
                    {"data": [json.loads(t) for t in history[start:end]], "next_cursor": next_cursor}
                )
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

    def __enter__(self) -> HistoryApi:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _changed(text: str) -> datetime:
    instant = parse_rfc3339(json.loads(text)["updated_at"])
    assert instant is not None
    return instant
