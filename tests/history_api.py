"""A small source API that honours `updated_since` over a fixed history, for watermark edge cases.

It serves the records whose `updated_at` is at or after `updated_since` (inclusive, as the contract says),
in the order given (the oldest change first), `limit` per page, with the next record's position as cursor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from etl.timestamps import parse_rfc3339
from tests.local_server import EMPTY_PAGE, ORDERS_PATH, LocalServer, send_json


class HistoryApi(LocalServer):
    def __init__(self, records: Sequence[str]) -> None:
        history = list(records)
        self.queries: list[dict[str, str]] = []
        queries = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != ORDERS_PATH:  # the other datasets: nothing to serve
                    send_json(self, EMPTY_PAGE)
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
                send_json(self, body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


def _changed(text: str) -> datetime:
    instant = parse_rfc3339(json.loads(text)["updated_at"])
    assert instant is not None
    return instant
