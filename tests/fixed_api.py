"""A minimal HTTP API that serves fixed page bodies, for shapes the sample API never produces."""

from __future__ import annotations

import json
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.local_server import EMPTY_PAGE, ORDERS_PATH, LocalServer, send_json


class FixedPagesApi(LocalServer):
    """Serves `records_per_page[n]` for cursor n (no cursor: page 0), with `next_cursor` n+1 or null."""

    def __init__(self, records_per_page: Sequence[Sequence[str]], indent: int | None = None) -> None:
        pages = list(records_per_page)
        self.queries: list[dict[str, list[str]]] = []
        queries = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != ORDERS_PATH:  # the other datasets: nothing to serve
                    send_json(self, EMPTY_PAGE)
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
                send_json(self, body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
