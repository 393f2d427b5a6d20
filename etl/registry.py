"""The declared datasets and Gold models, found by name: the one way the engine learns about them.

Declarations live in the top-level package `datasets` (one module per dataset, each with a `DATASET`;
one module per Gold model under `datasets/gold`, each with a `MODEL` and its SQL file). The engine never
imports them by name: it looks the package up here, so that adding a dataset is adding one file. The
Glue package and the Lambda bundle carry `datasets/` (components/bundles.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib import resources

from etl.dataset import Dataset, GoldModel
from etl.tables import SILVER_INGESTION_RUNS, TableDefinition

PACKAGE = "datasets"
GOLD_PACKAGE = f"{PACKAGE}.gold"


class UnknownDataset(LookupError):
    """A dataset name that no declaration under datasets/ carries."""


@cache
def datasets() -> tuple[Dataset, ...]:
    """Every declared dataset, by name."""
    found = [getattr(module, "DATASET", None) for module in _modules(PACKAGE)]
    declared = sorted((d for d in found if isinstance(d, Dataset)), key=lambda d: d.name)
    names = [d.name for d in declared]
    if len(set(names)) != len(names):
        raise ValueError(f"two declarations under {PACKAGE}/ share a dataset name: {names}")
    return tuple(declared)


def dataset(name: str) -> Dataset:
    for declared in datasets():
        if declared.name == name:
            return declared
    known = ", ".join(d.name for d in datasets()) or "none"
    raise UnknownDataset(f"no dataset {name!r} is declared under {PACKAGE}/ (declared: {known})")


@cache
def gold_models() -> tuple[GoldModel, ...]:
    """Every declared Gold model, by table name; each reads only declared datasets."""
    found = [getattr(module, "MODEL", None) for module in _modules(GOLD_PACKAGE)]
    models = sorted((m for m in found if isinstance(m, GoldModel)), key=lambda m: m.table.name)
    for model in models:
        for name in model.reads:
            dataset(name)
    return tuple(models)


def gold_sql(model: GoldModel) -> str:
    return resources.files(GOLD_PACKAGE).joinpath(f"{model.table.name}.sql").read_text()


def silver_tables() -> tuple[TableDefinition, ...]:
    """The shared ledger, then each dataset's table and quarantine."""
    return (SILVER_INGESTION_RUNS, *(table for d in datasets() for table in d.tables))


def gold_tables() -> tuple[TableDefinition, ...]:
    return tuple(model.table for model in gold_models())


def all_tables() -> tuple[TableDefinition, ...]:
    return silver_tables() + gold_tables()


def _modules(package_name: str) -> list[object]:
    package = importlib.import_module(package_name)
    return [
        importlib.import_module(f"{package_name}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if not info.ispkg and not info.name.startswith("_")
    ]
