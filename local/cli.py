"""The `lakehouse` command: run the pipeline on this machine, query its tables, serve the sample API.

lakehouse run [--source-url URL] [--data-dir DIR] [--publish-anyway] [--gold-refresh full|incremental]
lakehouse audits [--branch RUN | --drop-branch RUN [--even-if-waiting]] [--data-dir DIR]
lakehouse query "SQL" [--data-dir DIR] [--format table|json] [--allow-writes]
lakehouse rebuild [--data-dir DIR]
lakehouse bronze repair RUN --dataset NAME [--data-dir DIR | --bronze-root ROOT]
lakehouse bronze rewind --to TIMESTAMP --dataset NAME [--data-dir DIR | --bronze-root ROOT]
lakehouse sample-api [--port N] [--orders N] [--batches N]
lakehouse diagram
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from etl.audit.checks import AuditThresholds
from etl.bronze.settings import SOURCE_ENV
from etl.pipeline import GOLD_REFRESH_MODES

DEFAULT_DATA_DIR = Path("data")
DATA_DIR_HELP = "the data directory `lakehouse run` fills (default ./data)"

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from etl.bronze.layout import BronzeLayout
    from etl.storage import ObjectStore
    from local.runner import LocalLayout, LocalRunner


class NoData(FileNotFoundError):
    """The data directory holds nothing the command can work on yet."""


class CommandRefused(ValueError):
    """The command cannot do what was asked as given; the message says what to do instead."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logs(args.verbose)
    try:
        code: int = args.command(args)
        sys.stdout.flush()  # here, where a reader gone away is caught, rather than at exit
        return code
    except BrokenPipeError:  # the reader went away (`| head`): it had what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.verbose:
            raise
        print(f"error: {as_invoked(_one_line(error))}", file=sys.stderr)
        if not isinstance(error, _user_situations()):
            print("(run with --verbose for the full trace)", file=sys.stderr)
        return 1


def invoked_as() -> str:
    """How this command was started, for the commands it suggests: `lakehouse` when that is the one on
    PATH, else the path it was started by (`.venv/bin/lakehouse` after `make run`), or `python -m local`."""
    started = Path(sys.argv[0])
    if started.name != "lakehouse":
        return "python -m local"
    on_path = shutil.which("lakehouse")
    return "lakehouse" if on_path and Path(on_path).resolve() == started.resolve() else sys.argv[0]


def as_invoked(text: str) -> str:
    """`text` with the commands it suggests (`lakehouse ...`) written as the user can run them: as this
    command was started when that was a `lakehouse` not on PATH (`.venv/bin/lakehouse`)."""
    command = invoked_as()
    if command in ("lakehouse", "python -m local"):
        return text
    return text.replace("`lakehouse ", f"`{command} ")


def _user_situations() -> tuple[type[Exception], ...]:
    """The errors that are the user's situation, not a fault of the program: their one line says what to
    do, and a trace would add nothing. Imported here, once an error happened: most pull in Spark."""
    from etl.audit.job import AuditFailed
    from etl.audit.kept_branches import BranchWaiting, NoSuchBranch
    from etl.bronze.settings import SettingsError
    from etl.bronze.source import SourceError
    from etl.registry import UnknownDataset
    from etl.silver.job import BronzeGap, DamagedBronzeObject, SilverTableMissing
    from etl.spark.branches import BadBranchName
    from etl.spark.schema_evolution import SchemaChangeRefused
    from local.query import NotOneStatement, QueryFailed, WriteRefused
    from local.rebuild import RebuildRefused
    from local.repair import RepairRefused
    from local.run_lock import RunInProgress
    from local.sample_api.published import SampleStateError
    from local.session import SparkSetupError

    return (
        NoData,
        CommandRefused,
        AuditFailed,
        SettingsError,
        SourceError,
        UnknownDataset,
        BronzeGap,
        DamagedBronzeObject,
        SilverTableMissing,
        BadBranchName,
        SchemaChangeRefused,
        BranchWaiting,
        NoSuchBranch,
        NotOneStatement,
        QueryFailed,
        WriteRefused,
        RebuildRefused,
        RepairRefused,
        RunInProgress,
        SampleStateError,
        SparkSetupError,
    )


def run_command(args: argparse.Namespace) -> int:
    from etl import pipeline, registry
    from etl.audit.job import AuditFailed
    from etl.bronze.settings import IngestionSettings
    from local import class_archive
    from local.report import run_summary
    from local.run_lock import hold_data_dir
    from local.runner import LocalLayout, LocalRunner
    from local.sample_api.published import publish_next_batch
    from local.sample_api.server import SampleApiServer
    from local.session import build_session

    layout = LocalLayout(args.data_dir.resolve())
    with contextlib.ExitStack() as stack:
        stack.enter_context(hold_data_dir(layout.data_dir))  # before the sample publishes its next batch
        source_url = args.source_url or os.environ.get(SOURCE_ENV["base_url"]) or None
        if source_url is not None and (args.sample_orders is not None or args.seed is not None):
            raise CommandRefused(
                "--sample-orders and --seed only apply to the bundled sample API, not to --source-url"
            )
        if source_url is None:
            sample = publish_next_batch(layout.data_dir, args.sample_orders, args.seed)
            api = stack.enter_context(SampleApiServer(sample))
            source_url = api.url
            print(f"Sample API on {api.url}: batch {sample.batches} of seed {sample.seed} published")
        ingestion = IngestionSettings.from_environment(
            bronze_root=str(layout.bronze),
            source={"base_url": source_url, "page_size": args.page_size},
            # Any declared one: the runner names each branch's dataset in its Bronze event, which wins.
            dataset=registry.datasets()[0].name,
        )
        runner = LocalRunner(
            layout,
            ingestion,
            spark_factory=lambda: _quiet(
                build_session(str(layout.warehouse), save_class_archive=True), args.verbose
            ),
            progress=lambda line: print(line, flush=True),
            function_budget_seconds=args.ingest_budget,
            audits=AuditThresholds.from_arguments(args),
            publish_anyway=args.publish_anyway,
            gold_refresh=args.gold_refresh,
        )
        if args.publish_anyway:
            print("--publish-anyway: this run's branch is published to main even if audits fail", flush=True)
        began = time.perf_counter()
        # The options the commands a failed run suggests need, to act on the same data and measure as it did.
        data_dir = _data_dir_option(args)
        thresholds = AuditThresholds.from_arguments(args).options_changed()
        try:
            result = runner.run()
        except AuditFailed as failure:
            class_archive.release()  # only a run that finished saves the classes its JVM loaded
            if runner.current is not None:  # what the run did before its branch was held back
                print()
                print(run_summary(runner.current), flush=True)
            source = f" --source-url {args.source_url}" if args.source_url else ""
            raise AuditFailed(failure.branch, failure.results, data_dir, source, thresholds) from failure
        except Exception:
            class_archive.release()
            if runner.current is not None:
                if runner.current.steps:  # what the run did before it stopped
                    with contextlib.suppress(Exception):  # never in place of the run's own error
                        print(f"\n{run_summary(runner.current)}")
                stopped = stopped_run(runner, data_dir, args.source_url, thresholds)
                print(f"\n{as_invoked(stopped)}", flush=True)
            raise
    print()
    print(run_summary(result))
    leftover = None
    with contextlib.suppress(Exception):  # a reminder: it never fails a run that published
        # Publishing saw every table's branches: only when it saw others are they looked at again.
        if result.result(pipeline.AUDIT.name).other_branches:
            leftover = earlier_branches(runner.kept_branches(), data_dir)
    if leftover:
        print(f"\n{as_invoked(leftover)}")
    print(f"\nDone in {time.perf_counter() - began:.1f} s. Data in {layout.data_dir}")
    command = invoked_as()
    example = "SELECT * FROM gold.daily_sales ORDER BY order_date DESC LIMIT 10"
    print(f'Query it with: {command} query "{example}"{data_dir}', flush=True)
    if class_archive.finished():
        print(
            "Java saves the classes this run loaded as it exits, in the background (once, about 15 s): "
            "later runs and queries start quicker"
        )
    return 0


def stopped_run(
    runner: LocalRunner, data_dir: str = "", source_url: str | None = None, thresholds: str = ""
) -> str:
    """What a run that failed before publishing left, and the way forward: printed before its error.
    `data_dir`: the " --data-dir DIR" option the suggested commands need, `source_url` the run's own,
    `thresholds` its `--audit-*` options (" --audit-... N", where not the default), to measure as it would."""
    assert runner.current is not None
    run_id = runner.current.run_id
    try:
        branch = run_id if run_id in runner.kept_branches() else None
    except Exception:  # the session itself failed: the error says so, and the way forward is unknown
        return f"Run {run_id} stopped."
    source = f" --source-url {source_url}" if source_url else ""
    again = f"`lakehouse run{data_dir}{source}{thresholds}`"
    if branch is None:
        return f"Run {run_id} stopped before writing to any table: fix the cause, then {again}."
    return (
        f"Run {run_id} stopped: what it wrote waits on branch {branch}, not published to main; "
        f"`lakehouse audits --branch {branch}{data_dir}{thresholds}` measures it. Nothing is lost: fix the "
        f"cause and {again} (a new run, which merges this one's records again); "
        f"`lakehouse audits --drop-branch {branch} --even-if-waiting{data_dir}` drops the branch."
    )


def earlier_branches(kept: Mapping[str, bool], data_dir: str = "") -> str | None:
    """After a run that published: the branches earlier runs left (failed, or held back by an audit), each
    out of date (True) or still waiting to be published, which stay until dropped; None when none are."""
    if not kept:
        return None
    if len(kept) == 1:
        ((branch, out_of_date),) = kept.items()
        if out_of_date:
            return (
                f"Branch {branch}, left by an earlier run, is out of date (main moved on since it was made): "
                f"`lakehouse audits --drop-branch {branch}{data_dir}` drops it."
            )
        return (
            f"Branch {branch}, left by an earlier run, still waits to be published: `lakehouse audits "
            f"--branch {branch}{data_dir}` shows why it was held back."
        )
    states = ", ".join(f"{b} ({'out of date' if old else 'waiting'})" for b, old in kept.items())
    waiting = f"`lakehouse audits{data_dir}` shows the newest one waiting; " if not all(kept.values()) else ""
    drop = f"`lakehouse audits --drop-branch <run>{data_dir}` drops one."
    return f"Branches left by earlier runs: {states}. {waiting}{drop}"


def query_command(args: argparse.Namespace) -> int:
    from local.report import json_line, text_table
    from local.runner import LocalLayout
    from local.session import build_session

    layout = LocalLayout(args.data_dir.resolve())
    if not layout.warehouse.is_dir():
        raise NoData(f"no tables in {layout.data_dir} yet: run `lakehouse run` first")
    spark = _quiet(build_session(str(layout.warehouse), app_name="lakehouse-query"), args.verbose)
    from local.query import read_rows, refuse_writes

    if not args.allow_writes:
        refuse_writes(spark, args.sql)
    headers, rows = read_rows(spark, args.sql)
    if args.format == "json":
        for row in rows:
            print(json_line(headers, row))
    else:
        print(text_table(headers, rows))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0


def audits_command(args: argparse.Namespace) -> int:
    from etl.audit.job import measure
    from etl.audit.kept_branches import NoSuchBranch, kept_branches, moved_on, table_names
    from local.report import audit_table
    from local.runner import LocalLayout
    from local.session import build_session

    if args.even_if_waiting and not args.drop_branch:
        raise CommandRefused("--even-if-waiting goes with --drop-branch RUN")
    layout = LocalLayout(args.data_dir.resolve())
    if not layout.warehouse.is_dir():
        raise NoData(f"no tables in {layout.data_dir} yet: run `lakehouse run` first")
    if args.drop_branch:
        return _drop_branch(args, layout)
    spark = _quiet(build_session(str(layout.warehouse), app_name="lakehouse-audits"), args.verbose)
    kept = kept_branches(spark, layout.silver_database, layout.gold_database)
    # A branch whose main moved on (a later run published what it held back) has nothing left to measure.
    moved = {name: moved_on(spark, layout.silver_database, layout.gold_database, name) for name in kept}
    waiting = [name for name in kept if not moved[name]]
    branch = args.branch or (waiting[-1] if waiting else None)
    if branch is None:
        print(
            as_invoked(
                "No branch is waiting to be published"
                if not kept
                else f"No branch is waiting; out of date: {', '.join(kept)} (main moved on since a later run "
                f"published): `lakehouse audits --drop-branch <branch>{_data_dir_option(args)}` drops one "
                "from every table that has it"
            )
        )
        return 0
    if branch not in kept:
        raise NoSuchBranch(f"no table has a branch {branch!r}; kept branches: {', '.join(kept) or 'none'}")
    if moved[branch]:
        raise CommandRefused(
            f"branch {branch} is out of date: main of {table_names(moved[branch])} moved on since it was "
            f"made (a later run published), so its audits cannot be measured against main; drop it from "
            f"every table with `lakehouse audits --drop-branch {branch}{_data_dir_option(args)}`"
        )
    others = [name for name in kept if name != branch]
    print(
        f"Branch {branch}, not published to main"
        + (f" (also kept: {', '.join(others)})" if others else "")
        + ":"
    )
    thresholds = AuditThresholds.from_arguments(args)
    results = measure(spark, layout.silver_database, layout.gold_database, branch, thresholds)
    print(audit_table(results))
    return 1 if any(not result.passed for result in results) else 0


def _drop_branch(args: argparse.Namespace, layout: LocalLayout) -> int:
    from etl.audit.kept_branches import drop_branch, dropped_line
    from local.run_lock import hold_data_dir
    from local.session import build_session

    with hold_data_dir(layout.data_dir):  # a run meanwhile may be writing to the branch
        spark = _quiet(build_session(str(layout.warehouse), app_name="lakehouse-audits"), args.verbose)
        dropped = drop_branch(
            spark,
            layout.silver_database,
            layout.gold_database,
            args.drop_branch,
            even_if_waiting=args.even_if_waiting,
            inspect=f"`lakehouse audits --branch {args.drop_branch}{_data_dir_option(args)}`, with the "
            "`--audit-*` options its run had,",
            force="--even-if-waiting",
        )
    print(dropped_line(args.drop_branch, dropped))
    return 0


def _data_dir_option(args: argparse.Namespace) -> str:
    """The option the suggested commands need to work on the same data directory ("" for the default)."""
    return "" if args.data_dir == DEFAULT_DATA_DIR else f" --data-dir {args.data_dir}"


def rebuild_command(args: argparse.Namespace) -> int:
    from local.rebuild import refuse_incomplete_bronze, replay
    from local.run_lock import hold_data_dir
    from local.runner import LocalLayout
    from local.session import build_session

    layout = LocalLayout(args.data_dir.resolve())
    if not layout.bronze.is_dir():
        raise NoData(f"no Bronze data in {layout.bronze}: nothing to rebuild from")
    with hold_data_dir(layout.data_dir):  # a run writing the tables meanwhile would be lost
        # Checked before Spark starts (they need none): a refusal is one line, and nothing is announced.
        refuse_incomplete_bronze(str(layout.bronze), layout.silver_database)
        print(f"Rebuilding Silver and Gold in {layout.warehouse} from {layout.bronze}", flush=True)
        spark = _quiet(build_session(str(layout.warehouse), app_name="lakehouse-rebuild"), args.verbose)
        rebuilt = replay(spark, str(layout.bronze), layout.silver_database, layout.gold_database)
    for dataset, merged in rebuilt.silver.items():
        runs = len(merged.runs)
        print(
            f"Replayed {runs} run{'s' if runs != 1 else ''} of {dataset}: {merged.records:,} records, "
            # Into empty tables every row is an insert (copy-on-write commits do not count updates).
            f"{merged.inserted:,} rows in silver.{dataset}, {merged.quarantined:,} rejected "
            f"deliver{'y' if merged.quarantined == 1 else 'ies'} "
            "(the quarantine keeps each record once)"
        )
    print(
        ", ".join(
            f"{rows:,} row{'s' if rows != 1 else ''} in gold.{table}"
            for table, rows in rebuilt.gold.rows.items()
        )
    )
    return 0


def bronze_repair_command(args: argparse.Namespace) -> int:
    from etl.timestamps import format_rfc3339
    from local.repair import repair_run

    store = _bronze_store(args)
    with _holding_bronze(args):
        repaired = repair_run(store, _declared_layout(args.dataset), args.run_id)
    for damage in repaired.damaged:
        print(f"damaged: {damage}")
    print(
        f"Run {repaired.run_id} is set aside (its objects stay where they are); the watermark is at "
        f"{format_rfc3339(repaired.watermark.after)}: the next pipeline run ingests everything changed "
        "since then from the source again, and merges it with the runs waiting"
    )
    return 0


def bronze_rewind_command(args: argparse.Namespace) -> int:
    from etl.timestamps import format_rfc3339
    from local.repair import rewind_watermark

    store = _bronze_store(args)
    with _holding_bronze(args):
        rewound = rewind_watermark(store, _declared_layout(args.dataset), args.to, "rewind")
    before = "none" if rewound.before is None else format_rfc3339(rewound.before)
    print(
        f"Watermark {before} -> {format_rfc3339(rewound.after)}: the next pipeline run ingests everything "
        "changed since then from the source"
    )
    return 0


def _declared_layout(dataset: str) -> BronzeLayout:
    """The Bronze layout of a declared dataset; a misspelt name is refused, naming the declared ones."""
    from etl import registry
    from etl.bronze.layout import BronzeLayout

    return BronzeLayout(registry.dataset(dataset).name)


def _holding_bronze(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """The local run lock, when the command works on a data directory: a run meanwhile would undo it."""
    from local.run_lock import hold_data_dir

    if args.bronze_root:
        return contextlib.nullcontext()
    return hold_data_dir(args.data_dir.resolve())


def _bronze_store(args: argparse.Namespace) -> ObjectStore:
    from etl.storage import open_store
    from local.runner import LocalLayout

    root = args.bronze_root or str(LocalLayout(args.data_dir.resolve()).bronze)
    if "://" not in root and not Path(root).is_dir():
        raise NoData(f"no Bronze data in {root}: pass --data-dir or --bronze-root")
    return open_store(root)


def sample_api_command(args: argparse.Namespace) -> int:
    from local.sample_api.generator import SampleSource
    from local.sample_api.server import CUSTOMERS_PATH, ORDERS_PATH, SampleApiServer

    source = SampleSource(
        seed=args.seed, initial_orders=args.orders, change_fraction=args.change_fraction, batches=args.batches
    )
    token = os.environ.get("SAMPLE_API_TOKEN") or None
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before the server's threads start, which inherit it
    with SampleApiServer(source, port=args.port, token=token) as api:
        paths = ", ".join(f"{api.url}{path}" for path in (ORDERS_PATH, CUSTOMERS_PATH))
        batches = f"{args.batches} batch{'' if args.batches == 1 else 'es'}"
        print(f"Sample API on {paths} ({batches}); Ctrl-C stops it", flush=True)
        signal.sigwait(stop)
    return 0


def _positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


def _page_size(text: str) -> int:
    from etl.bronze.settings import MAX_PAGE_SIZE  # checked before the sample API publishes a batch

    number = int(text)
    if not 1 <= number <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_PAGE_SIZE}, got {number}")
    return number


def _rfc3339(text: str) -> str:
    from etl.timestamps import parse_rfc3339

    if parse_rfc3339(text) is None:
        raise argparse.ArgumentTypeError(
            f"must be an RFC 3339 date-time such as 2026-01-01T00:00:00Z, got {text!r}"
        )
    return text


def _positive_seconds(text: str) -> float:
    seconds = float(text)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return seconds


def _directory(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory")
    return path


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with a bad option refused in one line (the usage block is what --help shows) and
    an option only by its full name: `--gold` would otherwise be taken for `--gold-refresh`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        command = self.prog.replace("lakehouse", invoked_as(), 1)
        self.exit(2, f"{self.prog}: error: {message} (`{command} --help` lists the options)\n")


VERBOSE_HELP = "show logs and full error traces"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lakehouse", description="Run the medallion pipeline on this machine.")
    parser.add_argument("--verbose", "-v", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="ingest, merge into Silver, rebuild Gold")
    run.set_defaults(command=run_command)
    run.add_argument(
        "--source-url",
        help="base URL of your source API (default: SOURCE_BASE_URL, else start the bundled sample API)",
    )
    run.add_argument(
        "--page-size",
        type=_page_size,
        default=None,
        help="records per page (default: SOURCE_PAGE_SIZE, else 1000)",
    )
    run.add_argument(
        "--data-dir", type=_directory, default=DEFAULT_DATA_DIR, help="where the data lives (./data)"
    )
    run.add_argument(
        "--sample-orders", type=_positive_int, default=None, help="orders in a new sample (default 5000)"
    )
    run.add_argument("--seed", type=int, default=None, help="seed of a new sample (default 7)")
    run.add_argument(
        "--publish-anyway",
        action="store_true",
        help="publish the run's branch to main even when audits fail (the summary lists them)",
    )
    AuditThresholds.add_arguments(run)
    run.add_argument(
        "--gold-refresh",
        choices=GOLD_REFRESH_MODES,
        default="full",
        help="full (default): rebuild a Gold table whose Silver input changed; incremental: recompute only "
        "the rows the change touched (slower at the sizes measured: README, Incremental Gold)",
    )
    run.add_argument(
        "--ingest-budget",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="stop each ingestion run after this long and run it again, as Lambda's timeout does in AWS",
    )

    query = commands.add_parser("query", help="run Spark SQL on the local tables")
    query.set_defaults(command=query_command)
    query.add_argument("sql", help='e.g. "SELECT * FROM gold.daily_sales LIMIT 5"')
    query.add_argument("--data-dir", type=_directory, default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)
    query.add_argument("--format", choices=("table", "json"), default="table", help="json: JSON Lines")
    query.add_argument(
        "--allow-writes",
        action="store_true",
        help="also run statements that change tables (INSERT, DELETE, DROP, ...); without it only reads run",
    )

    audits = commands.add_parser(
        "audits",
        help="show the audits of a run's branch that was not published (default: the newest), or drop one",
    )
    audits.set_defaults(command=audits_command)
    chosen = audits.add_mutually_exclusive_group()
    chosen.add_argument("--branch", metavar="RUN", help="the run id the failed run named")
    chosen.add_argument(
        "--drop-branch",
        metavar="RUN",
        help="drop the run's kept branch from every table that has it (one that is out of date, or one still "
        "waiting with --even-if-waiting)",
    )
    audits.add_argument(
        "--even-if-waiting",
        action="store_true",
        help="with --drop-branch: also drop a branch still waiting to be published",
    )
    AuditThresholds.add_arguments(audits)
    audits.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)

    rebuild = commands.add_parser("rebuild", help="drop Silver and Gold and replay them from Bronze")
    rebuild.set_defaults(command=rebuild_command)
    rebuild.add_argument("--data-dir", type=_directory, default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)

    bronze = commands.add_parser(
        "bronze", help="repair Bronze: set a damaged run aside, rewind the watermark"
    )
    bronze_commands = bronze.add_subparsers(required=True, metavar="ACTION")
    repair = bronze_commands.add_parser(
        "repair", help="set aside a run with a damaged object and re-ingest its window on the next run"
    )
    repair.set_defaults(command=bronze_repair_command)
    repair.add_argument("run_id", metavar="RUN", help="the run the Silver job named")
    rewind = bronze_commands.add_parser(
        "rewind", help="move the watermark back, so that the next run ingests from there again"
    )
    rewind.set_defaults(command=bronze_rewind_command)
    rewind.add_argument(
        "--to", required=True, type=_rfc3339, help="RFC 3339 date-time, e.g. 2026-01-01T00:00:00Z"
    )
    for action in (repair, rewind):
        action.add_argument("--data-dir", type=_directory, default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)
        action.add_argument(
            "--bronze-root", help="s3://bucket[/prefix] or a directory (default: DATA_DIR/bronze)"
        )
        action.add_argument(
            "--dataset", required=True, help="the dataset whose Bronze data to change (see datasets/)"
        )

    sample = commands.add_parser("sample-api", help="serve the sample source API until stopped")
    sample.set_defaults(command=sample_api_command)
    sample.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    sample.add_argument("--orders", type=_positive_int, default=5000, help="orders in the first batch")
    sample.add_argument("--batches", type=_positive_int, default=1, help="batches published")
    sample.add_argument("--seed", type=int, default=7, help="seed of the generated data (default 7)")
    sample.add_argument(
        "--change-fraction", type=float, default=0.1, help="size of later batches, as a share of --orders"
    )

    diagram = commands.add_parser(
        "diagram", help="print the architecture as a Mermaid flowchart, drawn from the pipeline and datasets"
    )
    diagram.set_defaults(command=diagram_command)
    # Also after the command (`lakehouse run --verbose`), where the error line's hint leads users to put it.
    for command in [*commands.choices.values(), *bronze_commands.choices.values()]:
        command.add_argument(
            "--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )
    return parser


def diagram_command(args: argparse.Namespace) -> int:
    from local.diagram import architecture

    print(architecture(), end="")
    return 0


def _configure_logs(verbose: bool) -> None:
    """Logs go to stderr (stdout is for results): structured and from INFO with --verbose, else only
    warnings as plain lines. Failures are reported once, by main, so their logged copies are dropped."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO" if verbose else "WARNING"
    from etl.bronze.handler import logger

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
        # setLogLevel sets the root logger alone: the loggers local/log4j2.properties names keep their
        # level, and Spark's Utils logs a failing write task's stack trace at ERROR.
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        log4j = jvm.org.apache.logging.log4j
        log4j.core.config.Configurator.setAllLevels(log4j.LogManager.ROOT_LOGGER_NAME, log4j.Level.OFF)
    return spark


def _one_line(error: BaseException) -> str:
    java = getattr(error, "java_exception", None)  # Py4JJavaError: its own text only names the JVM call
    text = str(java.toString() if java is not None else error).strip() or type(error).__name__
    if "Traceback (most recent call last)" in text:  # an error in a Python worker: its last line says what
        text = [line for line in text.splitlines() if line.strip()][-1].strip()
    first = _STAGE_FAILURE.sub("", text.splitlines()[0])
    root = _root_cause(java) if java is not None else None
    # A wrapper's message can leave out what failed (Iceberg's "Failed to create Parquet file" names no
    # file): the root cause names the path.
    if root is not None and root not in first:
        first = f"{first} (caused by {root})"
    # Spark's analysis errors carry the plan after the first line; the first line says what is wrong.
    # Our own messages name objects and commands in full; a JVM's first line can run on for pages.
    limit = 500 if java is not None else 2000
    return first if len(first) <= limit else first[:limit] + "..."


# Spark's wrapper around a task's failure; the exception after it says what failed.
_STAGE_FAILURE = re.compile(r"org\.apache\.spark\.SparkException: Job aborted due to stage failure: .*?\): ")


def _root_cause(java: object) -> str | None:
    """The first line of the innermost cause of a JVM exception, or None when it has no cause."""
    cause, seen = getattr(java, "getCause", lambda: None)(), 0
    root = None
    while cause is not None and seen < 20:
        root, cause, seen = cause, cause.getCause(), seen + 1
    if root is None:
        return None
    return (str(root.toString()).strip().splitlines() or [""])[0] or None


if __name__ == "__main__":
    sys.exit(main())
