"""The figures `make bench` measures, the targets of issue 9 they are held to, and how they are printed.

Pure data and arithmetic (no Spark), so that the ratios and verdicts are tested on figures made up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from benchmarks.ingestion import TARGET_FLOOR_RATIO, TARGET_MEMORY_RATIO, IngestionFigures

FULL, INCREMENTAL, NO_CHANGE = "full", "incremental", "no change"
RUNS = (FULL, INCREMENTAL, NO_CHANGE)

# Issue 9's targets (ratios in one run, 2 cores), with the size each is stated at (None: every size).
SILVER_FULL_RATIO = 0.8  # Silver project / hand-written, full load, at 1M
SILVER_INCREMENTAL_RATIO = 1.0  # the same on the 1% incremental run, at 1M
SILVER_RATIO_AT = 1_000_000
INCREMENTAL_RATIO = {200_000: 0.15, 3_000_000: 0.05}  # incremental run / full run
GROWTH = 1.5  # incremental run at the largest size / at the smallest (stated for 200k to 3M)
NO_CHANGE_ABOVE_SPARK_START_S = 2.0  # a run with nothing new: at most Spark start plus this
PASS, MISS, NONE = "PASS", "MISS", "-"


@dataclass
class StepTime:
    step: str  # the pipeline step: Bronze, Silver, Gold
    dataset: str | None  # the dataset of a per-dataset step
    project_s: float
    baseline_s: float | None = None  # the hand-written job's time for the same work, where there is one

    @property
    def label(self) -> str:
        return f"{self.step} {self.dataset}" if self.dataset else self.step

    @property
    def ratio(self) -> float | None:
        return self.project_s / self.baseline_s if self.baseline_s else None


@dataclass
class RunTimes:
    orders: int  # the size of the sample source
    run: str  # FULL, INCREMENTAL or NO_CHANGE
    records: int  # records the run ingested, all datasets
    steps: list[StepTime] = field(default_factory=list)
    load_average: float = 0.0  # the machine's 1-minute load average when the run ended

    @property
    def total_s(self) -> float:
        """The project's whole run (Spark start excluded: one session serves every run)."""
        return sum(step.project_s for step in self.steps)

    def step(self, label: str) -> StepTime | None:
        return next((step for step in self.steps if step.label == label), None)


@dataclass
class Check:
    figure: str
    orders: int | None  # the size it was measured at (None: across sizes, or no size)
    value: float
    target: str  # "<= 0.8", or NONE when the issue sets none at this size
    verdict: str  # PASS, MISS or NONE


@dataclass
class BenchFigures:
    spark_start_s: float  # the session created first in the process (JVM start included)
    runs: list[RunTimes] = field(default_factory=list)
    ingestion: IngestionFigures | None = None

    @property
    def sizes(self) -> list[int]:
        return sorted({run.orders for run in self.runs})

    def run(self, orders: int, run: str) -> RunTimes | None:
        return next((r for r in self.runs if r.orders == orders and r.run == run), None)

    def checks(self) -> list[Check]:
        """Every figure the issue sets a target for, and the project / baseline ratios it sets none for."""
        checks = []
        for orders in self.sizes:
            full, incremental = self.run(orders, FULL), self.run(orders, INCREMENTAL)
            for times, limit in ((full, SILVER_FULL_RATIO), (incremental, SILVER_INCREMENTAL_RATIO)):
                silver = times.step("Silver orders") if times else None
                if times and silver and silver.ratio is not None:
                    at = limit if orders == SILVER_RATIO_AT else None
                    checks.append(
                        _check(f"Silver orders project/baseline, {times.run}", orders, silver.ratio, at)
                    )
            for times in (full, incremental):
                gold = times.step("Gold") if times else None
                if times and gold and gold.ratio is not None:
                    checks.append(_check(f"Gold project/baseline, {times.run}", orders, gold.ratio, None))
            if full and incremental and full.total_s:
                ratio = incremental.total_s / full.total_s
                checks.append(_check("incremental/full run", orders, ratio, INCREMENTAL_RATIO.get(orders)))
            no_change = self.run(orders, NO_CHANGE)
            if no_change:
                limit = self.spark_start_s + NO_CHANGE_ABOVE_SPARK_START_S
                checks.append(
                    _check("no-change run s (target: Spark start + 2 s)", orders, no_change.total_s, limit)
                )
        sizes = self.sizes
        smallest, largest = (
            (self.run(sizes[0], INCREMENTAL), self.run(sizes[-1], INCREMENTAL)) if sizes else (None, None)
        )
        if smallest and largest and smallest is not largest and smallest.total_s:
            growth = largest.total_s / smallest.total_s
            figure = f"incremental run growth {smallest.orders:,} -> {largest.orders:,}"
            checks.append(_check(figure, None, growth, GROWTH))
        if self.ingestion:
            checks.append(
                _check(
                    "ingestion/floor", self.ingestion.orders, self.ingestion.floor_ratio, TARGET_FLOOR_RATIO
                )
            )
            for label, key in (("peak RSS", "peak_mib"), ("Python heap peak", "heap_peak_mib")):
                memory_ratio = self.ingestion.memory_ratio(key)
                if memory_ratio is not None:
                    probed = sorted(self.ingestion.memory)
                    figure = f"ingestion {label} {probed[-1]:,} / {probed[0]:,} records"
                    checks.append(_check(figure, None, memory_ratio, TARGET_MEMORY_RATIO))
        return checks

    def as_dict(self) -> dict[str, object]:
        return {
            "spark_start_s": self.spark_start_s,
            "runs": [{**asdict(run), "total_s": run.total_s} for run in self.runs],
            "ingestion": self.ingestion.as_dict() if self.ingestion else None,
            "checks": [asdict(check) for check in self.checks()],
        }


def _check(figure: str, orders: int | None, value: float, limit: float | None) -> Check:
    if limit is None:
        return Check(figure, orders, value, NONE, NONE)
    return Check(figure, orders, value, f"<= {limit:.3g}", PASS if value <= limit else MISS)


def print_times(figures: BenchFigures) -> None:
    """One table per size: each step's seconds, the project's and the baseline's, per run."""
    for orders in figures.sizes:
        runs = [r for r in (figures.run(orders, name) for name in RUNS) if r is not None]
        labels = list(dict.fromkeys(step.label for r in runs for step in r.steps))
        headers = ["step"]
        for r in runs:
            headers += [f"{r.run} s"] if r.run == NO_CHANGE else [f"{r.run} s", "baseline s", "ratio"]
        rows: list[list[object]] = []
        for label in [*labels, "whole run"]:
            row: list[object] = [label]
            for r in runs:
                step = r.step(label)
                seconds = r.total_s if label == "whole run" else (step.project_s if step else None)
                row.append(_seconds(seconds))
                if r.run != NO_CHANGE:
                    baseline = step.baseline_s if step else None
                    row += [_seconds(baseline), f"{step.ratio:.2f}" if step and step.ratio else NONE]
            rows.append(row)
        records = ", ".join(f"{r.run} {r.records:,}" for r in runs)
        loads = ", ".join(f"{r.load_average:.1f}" for r in runs)
        print(f"\n{orders:,} orders (records ingested: {records}; load average after each run: {loads})")
        print(table(headers, rows))


def print_checks(checks: Sequence[Check]) -> None:
    rows = [
        [c.figure, f"{c.orders:,}" if c.orders else NONE, f"{c.value:.3f}", c.target, c.verdict]
        for c in checks
    ]
    print("\nAgainst issue 9's targets (ratios of figures from this one run):")
    print(table(["figure", "orders", "value", "target", "verdict"], rows))
    print(
        "(Here the baseline always runs after the project's step, and runs slower after it: "
        "`make bench-silver` times Silver orders and the baseline in alternating pairs.)"
    )


def _seconds(value: float | None) -> str:
    return NONE if value is None else f"{value:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An aligned text table: the first column left-aligned, the others (figures) right-aligned."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        aligned = [v.rjust(w) for v, w in zip(values, widths, strict=True)]
        aligned[0] = values[0].ljust(widths[0])
        return "  ".join(aligned).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(row) for row in cells)])
