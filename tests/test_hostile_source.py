"""The source client against APIs on 127.0.0.1 that misbehave: loops, slow and endless bodies, redirects
to other hosts, pages that break the contract, records that are not UTF-8 or nest too deep."""

from __future__ import annotations

import ipaddress
import json
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from etl.bronze.ingest import ingest
from etl.bronze.layout import BronzeLayout, raw_bytes_of, read_manifest, read_watermark
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.bronze.source import SourceClient, SourceError
from etl.storage import LocalStore
from tests.hostile_api import Answer, HostileApi, Request

SINCE = "1970-01-01T00:00:00Z"
ORDER = '{"order_id": %d, "updated_at": "2026-01-01T00:00:00Z"}'


def client(url: str, token: str | None = None, **settings: object) -> SourceClient:
    options: dict[str, object] = {"max_attempts": 3, "backoff_base_seconds": 0.0}
    options.update(settings)
    return SourceClient(SourceSettings(base_url=url, **options), token=token, sleep=lambda _: None)  # type: ignore[arg-type]


def page(records: list[str], next_cursor: str | None = None) -> bytes:
    return ('{"data": [' + ", ".join(records) + '], "next_cursor": ' + json.dumps(next_cursor) + "}").encode()


def cursor_chain(chain: dict[str | None, str | None]) -> HostileApi:
    """Page `cursor` answers with one record and chain[cursor] as the next cursor."""

    def respond(answer: Answer, request: Request) -> None:
        answer.send(page([ORDER % len(request.query)], chain[request.cursor()]))

    return HostileApi(respond)


# Case 3: cursor cycles and a bound on pages.


def test_a_cursor_cycle_a_b_a_fails_at_once_naming_the_cursor_and_the_pages() -> None:
    with cursor_chain({None: "A", "A": "B", "B": "A"}) as api, pytest.raises(SourceError) as error:
        list(client(api.url).pages(SINCE))
    message = str(error.value)
    assert "returned the cursor 'A' on page 3, as it did on page 1: its pagination loops" in message
    assert "SOURCE_MAX_ATTEMPTS" not in message
    assert [request.cursor() for request in api.requests] == [None, "A", "B"]


def test_a_cursor_repeated_at_once_is_a_cycle_too() -> None:
    with (
        cursor_chain({None: "A", "A": "A"}) as api,
        pytest.raises(SourceError, match="on page 2, as it did on page 1"),
    ):
        list(client(api.url).pages(SINCE))
    assert len(api.requests) == 2


def test_paging_stops_at_the_page_limit_whatever_the_cursors() -> None:
    def respond(answer: Answer, request: Request) -> None:
        answer.send(page([ORDER % 1], f"c{len(api.requests)}"))  # a fresh cursor forever

    with HostileApi(respond) as api, pytest.raises(SourceError) as error:
        list(client(api.url, max_pages=5).pages(SINCE))
    assert "more than 5 pages for this run" in str(error.value)
    assert "raise SOURCE_MAX_PAGES" in str(error.value)
    assert len(api.requests) == 5


# Case 4: one deadline per request, for connecting and the whole answer.


def test_a_body_sent_one_byte_every_two_seconds_is_cut_at_the_request_timeout() -> None:
    body = page([])

    def respond(answer: Answer, request: Request) -> None:
        answer.head(200, {"Content-Length": str(len(body))})
        answer.drip(body, every_seconds=2.0)

    with HostileApi(respond) as api, pytest.raises(SourceError) as error:
        started = time.monotonic()
        list(client(api.url, timeout_seconds=3, max_attempts=1).pages(SINCE))
    elapsed = time.monotonic() - started
    assert 3.0 <= elapsed < 4.5
    assert "no complete answer within 3 s" in str(error.value)
    assert "raise SOURCE_TIMEOUT_SECONDS" in str(error.value)


def test_headers_sent_one_byte_at_a_time_are_cut_at_the_request_timeout_and_retried() -> None:
    def respond(answer: Answer, request: Request) -> None:
        if len(api.requests) == 1:
            answer.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", every_seconds=0.5)
        else:
            answer.send(page([ORDER % 1]))

    with HostileApi(respond) as api:
        started = time.monotonic()
        pages = list(client(api.url, timeout_seconds=1).pages(SINCE))
    assert time.monotonic() - started < 2.0
    assert [(p.number, p.attempts) for p in pages] == [(1, 2)]


def test_the_deadline_cuts_a_slow_answer_over_tls_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = self_signed_certificate(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))  # requests prefers it to session.verify
    body = page([])

    def respond(answer: Answer, request: Request) -> None:
        answer.head(200, {"Content-Length": str(len(body))})
        answer.drip(body, every_seconds=1.0)

    with HostileApi(respond, tls=(certificate, tmp_path / "key.pem")) as api:
        started = time.monotonic()
        with pytest.raises(SourceError, match="no complete answer within 2 s"):
            list(client(api.url, timeout_seconds=2, max_attempts=1).pages(SINCE))
    assert api.url.startswith("https://")
    assert 2.0 <= time.monotonic() - started < 3.5


def self_signed_certificate(directory: Path) -> Path:
    """A certificate for 127.0.0.1 (its key in key.pem beside it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path = directory / "certificate.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


# Case 5: a bounded body.


def test_an_endless_body_is_counted_not_buffered_and_fails_the_run_at_once() -> None:
    limit = 2 * 1024 * 1024
    chunk = b'{"order_id": 1, "padding": "' + b"x" * 65_000 + b'"}, '

    def respond(answer: Answer, request: Request) -> None:
        answer.head(200, {"Connection": "close"})  # no length: the body ends when the server closes
        answer.write(b'{"data": [')
        for _ in range(16 * 1024):  # up to 1 GiB, unless the client stops reading
            answer.write(chunk)

    tracemalloc.start()
    try:
        with HostileApi(respond) as api, pytest.raises(SourceError) as error:
            list(client(api.url, max_body_bytes=limit).pages(SINCE))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "larger than SOURCE_MAX_BODY_BYTES (2,097,152 bytes): more than 2,097,152 bytes received" in str(
        error.value
    )
    assert len(api.requests) == 1  # not retried
    assert peak < 3 * limit


def test_a_body_announced_larger_than_the_limit_is_not_read() -> None:
    def respond(answer: Answer, request: Request) -> None:
        answer.head(200, {"Content-Length": str(2**30)})
        answer.write(b'{"data": [')

    with HostileApi(respond) as api, pytest.raises(SourceError, match="1,073,741,824 bytes announced"):
        list(client(api.url, max_body_bytes=1024 * 1024).pages(SINCE))
    assert len(api.requests) == 1


# Case 6: redirects.


def test_a_redirect_to_another_host_is_refused_and_no_credential_reaches_it() -> None:
    def other_host(answer: Answer, request: Request) -> None:
        answer.send(page([ORDER % 666]))

    with HostileApi(other_host) as elsewhere:
        target = f"http://localhost:{elsewhere.port}/v1/orders"

        def respond(answer: Answer, request: Request) -> None:
            answer.send(b"", 302, {"Location": target})

        with HostileApi(respond) as api, pytest.raises(SourceError) as error:
            list(client(api.url, token="s3cr3t", auth_header="X-Api-Key", auth_scheme="").pages(SINCE))
    message = str(error.value)
    assert (
        f"the source API at {api.url} redirected to another host, http://localhost:{elsewhere.port}"
        in message
    )
    assert "set SOURCE_BASE_URL to it" in message
    assert elsewhere.requests == []
    assert api.requests[0].headers["X-Api-Key"] == "s3cr3t"


def test_a_redirect_within_the_host_is_followed_with_the_credential() -> None:
    def respond(answer: Answer, request: Request) -> None:
        if request.path == "/v1/orders":
            answer.send(
                b"",
                301,
                {"Location": "/v2/orders?" + "&".join(f"{k}={v[0]}" for k, v in request.query.items())},
            )
        else:
            answer.send(page([ORDER % 1]))

    with HostileApi(respond) as api:
        pages = list(client(api.url, token="s3cr3t", auth_header="X-Api-Key", auth_scheme="").pages(SINCE))
    assert [line for p in pages for line, _ in p.records] == [ORDER % 1]
    assert [(r.path, r.headers.get("X-Api-Key")) for r in api.requests] == [
        ("/v1/orders", "s3cr3t"),
        ("/v2/orders", "s3cr3t"),
    ]
    assert api.requests[1].query["limit"] == ["1000"]


def test_endless_redirects_within_the_host_end() -> None:
    def respond(answer: Answer, request: Request) -> None:
        answer.send(b"", 307, {"Location": f"/v1/orders?hop={len(api.requests)}"})

    with HostileApi(respond) as api, pytest.raises(SourceError, match="redirected more than 5 times"):
        list(client(api.url).pages(SINCE))
    assert len(api.requests) == 6


# Case 2 and the minor ones: pages that break the contract fail at once.


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            b'{"data": ['
            + (ORDER % 1).encode()
            + b'], "next_cursor": null, "data": ['
            + (ORDER % 5).encode()
            + b"]}",
            "the page has the field 'data' more than once",
        ),
        (page([ORDER % 1], ""), "'next_cursor' is an empty string"),
    ],
)
def test_a_page_that_breaks_the_contract_fails_at_once(body: bytes, problem: str) -> None:
    with HostileApi(lambda answer, request: answer.send(body)) as api, pytest.raises(SourceError) as error:
        list(client(api.url).pages(SINCE))
    assert f"does not follow the page contract: {problem}" in str(error.value)
    assert len(api.requests) == 1


def test_a_page_that_breaks_the_contract_commits_nothing(tmp_path: Path) -> None:
    first = page([ORDER % 1])
    repeated = b'{"data": [' + (ORDER % 2).encode() + b'], "next_cursor": null, "data": []}'
    bodies = [first, repeated]
    with HostileApi(lambda answer, request: answer.send(bodies.pop(0))) as api:
        settings = IngestionSettings(
            source=SourceSettings(base_url=api.url), bronze_root=str(tmp_path), dataset="orders"
        )
        ingest(settings, "run-1")
        before = read_watermark(LocalStore(tmp_path), BronzeLayout("orders"))
        with pytest.raises(SourceError, match="more than once"):
            ingest(settings, "run-2")
    assert read_manifest(LocalStore(tmp_path), BronzeLayout("orders"), "run-2") is None
    assert read_watermark(LocalStore(tmp_path), BronzeLayout("orders")) == before


# Cases 7 and 8 at the source: one bad record never fails nor retries its page.


def test_a_record_that_is_not_utf8_or_nests_too_deep_is_kept_raw_without_a_retry() -> None:
    not_utf8 = b'{"order_id": 2, "customer_id": "\xff\xfe"}'
    deep = b'{"order_id": 3, "items": ' + b"[" * 1_000 + b"]" * 1_000 + b"}"
    body = b'{"data": [' + b", ".join([(ORDER % 1).encode(), not_utf8, deep, (ORDER % 4).encode()]) + b"]}"
    with HostileApi(lambda answer, request: answer.send(body)) as api:
        [only] = list(client(api.url).pages(SINCE))
    assert only.attempts == 1
    assert len(api.requests) == 1
    lines = [line for line, _ in only.records]
    assert [lines[0], lines[3]] == [ORDER % 1, ORDER % 4]
    assert [raw_bytes_of(lines[1]), raw_bytes_of(lines[2])] == [not_utf8, deep]
