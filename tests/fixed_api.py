"""A minimal HTTP API that serves fixed page bodies, for shapes the sample API never produces."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.local_server import EMPTY_PAGE, ORDERS_PATH, LocalServer, send_json


class FixedPagesApi(LocalServer):
    """Serves `records_per_page[n]` for cursor n (no cursor: page 0), with `next_cursor` n+1 or null, as the
    orders; `other_paths` the same way for another dataset's path (the others: nothing)."""

    def __init__(
        self,
        records_per_page: Sequence[Sequence[str]],
        indent: int | None = None,
        other_paths: Mapping[str, Sequence[Sequence[str]]] | None = None,
    ) -> None:
        served = {path: list(pages) for path, pages in (other_paths or {}).items()}
        served[ORDERS_PATH] = list(records_per_page)
        self.queries: list[dict[str, list[str]]] = []  # of the orders
        queries = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path not in served:  # the other datasets: nothing to serve
                    send_json(self, EMPTY_PAGE)
                    return
                pages = served[path]
                query = parse_qs(urlsplit(self.path).query)
                if path == ORDERS_PATH:
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
