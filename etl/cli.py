"""The `lakehouse` command: run the pipeline on this machine, query its tables, serve the sample API.

lakehouse run [--source-url URL] [--data-dir DIR]
lakehouse query "SQL" [--data-dir DIR] [--format table|json]
lakehouse sample-api [--port N] [--orders N] [--batches N]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from etl.extract.settings import SOURCE_ENV

DEFAULT_DATA_DIR = Path("data")

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logs(args.verbose)
    try:
        code: int = args.command(args)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.verbose:
            raise
        print(f"error: {_one_line(error)}", file=sys.stderr)
        print("(run with --verbose for the full trace)", file=sys.stderr)
        return 1


def run_command(args: argparse.Namespace) -> int:
    from etl.extract.settings import IngestionSettings
    from etl.report import run_summary
    from etl.run_lock import hold_data_dir
    from etl.runner import LocalLayout, LocalRunner
    from etl.sample_api.published import publish_next_batch
    from etl.sample_api.server import SampleApiServer
    from etl.spark import build_session

    layout = LocalLayout(args.data_dir.resolve())
    with contextlib.ExitStack() as stack:
        stack.enter_context(hold_data_dir(layout.data_dir))  # before the sample publishes its next batch
        source_url = args.source_url or os.environ.get(SOURCE_ENV["base_url"]) or None
        if source_url is not None and (args.sample_orders is not None or args.seed is not None):
            raise ValueError(
                "--sample-orders and --seed only apply to the bundled sample API, not to --source-url"
            )
        if source_url is None:
            sample = publish_next_batch(layout.data_dir, args.sample_orders, args.seed)
            api = stack.enter_context(SampleApiServer(sample))
            source_url = api.url
            print(f"Sample API on {api.url}: batch {sample.batches} of seed {sample.seed} published")
        ingestion = IngestionSettings.from_environment(
            bronze_root=str(layout.bronze),
            source={"base_url": source_url, "path": args.source_path, "page_size": args.page_size},
        )
        runner = LocalRunner(
            layout,
            ingestion,
            spark_factory=lambda: _quiet(build_session(str(layout.warehouse)), args.verbose),
            progress=lambda line: print(line, flush=True),
            function_budget_seconds=args.ingest_budget,
        )
        began = time.perf_counter()
        result = runner.run()
    print()
    print(run_summary(result))
    print(f"\nDone in {time.perf_counter() - began:.1f} s. Data in {layout.data_dir}")
    command = sys.argv[0] if Path(sys.argv[0]).name == "lakehouse" else "python -m etl"
    data_dir = "" if args.data_dir == DEFAULT_DATA_DIR else f" --data-dir {args.data_dir}"
    example = "SELECT * FROM gold.daily_sales ORDER BY order_date DESC LIMIT 10"
    print(f'Query it with: {command} query "{example}"{data_dir}')
    return 0


def query_command(args: argparse.Namespace) -> int:
    from etl.report import json_line, text_table
    from etl.runner import LocalLayout
    from etl.spark import build_session

    layout = LocalLayout(args.data_dir.resolve())
    if not layout.warehouse.is_dir():
        raise FileNotFoundError(f"no tables in {layout.data_dir} yet: run `lakehouse run` first")
    spark = _quiet(build_session(str(layout.warehouse), app_name="lakehouse-query"), args.verbose)
    frame = spark.sql(args.sql)
    headers = frame.columns
    rows = [tuple(row) for row in frame.collect()]
    if args.format == "json":
        for row in rows:
            print(json_line(headers, row))
    else:
        print(text_table(headers, rows))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0


def sample_api_command(args: argparse.Namespace) -> int:
    from etl.sample_api.generator import SampleSource
    from etl.sample_api.server import SampleApiServer

    source = SampleSource(
        seed=args.seed, initial_orders=args.orders, change_fraction=args.change_fraction, batches=args.batches
    )
    token = os.environ.get("SAMPLE_API_TOKEN") or None
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before the server's threads start, which inherit it
    with SampleApiServer(source, port=args.port, token=token) as api:
        print(f"Sample API on {api.url}/v1/orders ({args.batches} batches); Ctrl-C stops it", flush=True)
        signal.sigwait(stop)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakehouse", description="Run the medallion pipeline on this machine."
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="show logs and full error traces")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="ingest, merge into Silver, rebuild Gold")
    run.set_defaults(command=run_command)
    run.add_argument(
        "--source-url",
        help="base URL of your source API (default: SOURCE_BASE_URL, else start the bundled sample API)",
    )
    run.add_argument("--source-path", default=None, help="path of the orders endpoint (default /v1/orders)")
    run.add_argument("--page-size", type=int, default=None, help="records per page (default 1000)")
    run.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where the data lives (./data)")
    run.add_argument("--sample-orders", type=int, default=None, help="orders in a new sample (default 5000)")
    run.add_argument("--seed", type=int, default=None, help="seed of a new sample (default 7)")
    run.add_argument(
        "--ingest-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop each ingestion run after this long and run it again, as Lambda's timeout does in AWS",
    )

    query = commands.add_parser("query", help="run Spark SQL on the local tables")
    query.set_defaults(command=query_command)
    query.add_argument("sql", help='e.g. "SELECT * FROM gold.daily_sales LIMIT 5"')
    query.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    query.add_argument("--format", choices=("table", "json"), default="table", help="json: JSON Lines")

    sample = commands.add_parser("sample-api", help="serve the sample source API until stopped")
    sample.set_defaults(command=sample_api_command)
    sample.add_argument("--port", type=int, default=8000)
    sample.add_argument("--orders", type=int, default=5000, help="orders in the first batch")
    sample.add_argument("--batches", type=int, default=1, help="batches published")
    sample.add_argument("--seed", type=int, default=7)
    sample.add_argument(
        "--change-fraction", type=float, default=0.1, help="size of later batches, as a share of --orders"
    )
    return parser


def _configure_logs(verbose: bool) -> None:
    """Logs go to stderr (stdout is for results): structured and from INFO with --verbose, else only
    warnings as plain lines. Failures are reported once, by main, so their logged copies are dropped."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO" if verbose else "WARNING"
    from etl.extract.handler import logger

    structured = logging.getLogger(logger.name)
    for handler in structured.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
            if not verbose:
                handler.setLevel(logging.CRITICAL + 1)  # kept (Powertools needs it), but silent
    if not verbose:
        plain = logging.StreamHandler(sys.stderr)
        plain.setFormatter(logging.Formatter("      %(levelname)s: %(message)s"))
        plain.addFilter(lambda record: record.exc_info is None)
        structured.addHandler(plain)


def _quiet(spark: SparkSession, verbose: bool) -> SparkSession:
    """Without --verbose, Spark logs nothing: a failure is reported once, in one line, by main."""
    if not verbose:
        spark.sparkContext.setLogLevel("OFF")
    return spark


def _one_line(error: BaseException) -> str:
    java = getattr(error, "java_exception", None)  # Py4JJavaError: its own text only names the JVM call
    text = str(java.toString() if java is not None else error).strip() or type(error).__name__
    if "Traceback (most recent call last)" in text:  # an error in a Python worker: its last line says what
        text = [line for line in text.splitlines() if line.strip()][-1].strip()
    first = text.splitlines()[0]
    # Spark's analysis errors carry the plan after the first line; the first line says what is wrong.
    return first if len(first) <= 500 else first[:500] + "..."


if __name__ == "__main__":
    sys.exit(main())
