"""Ingestion settings: the source API, where Bronze lives, and the environment variables that carry them.

The Lambda function reads its settings from the environment (set by the infrastructure); the local
runner builds them from command-line options. Explicit values win over the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from etl.dataset import Dataset

# Environment variable names, in one place: the infrastructure sets them on the Lambda function.
ENV_BRONZE_ROOT = "LAKEHOUSE_BRONZE_ROOT"  # s3://bucket[/prefix] or a local directory
ENV_DATASET = "LAKEHOUSE_DATASET"  # a manual run's dataset, when its event names none
ENV_TOKEN = "SOURCE_API_TOKEN"  # local runs: the token itself
ENV_TOKEN_SECRET_ARN = "SOURCE_API_TOKEN_SECRET_ARN"  # AWS: a Secrets Manager secret holding the token

# SourceSettings field -> environment variable. The path is not one: each dataset declares its own.
SOURCE_ENV: Mapping[str, str] = {
    "base_url": "SOURCE_BASE_URL",
    "page_size": "SOURCE_PAGE_SIZE",
    "since_param": "SOURCE_SINCE_PARAM",
    "limit_param": "SOURCE_LIMIT_PARAM",
    "cursor_param": "SOURCE_CURSOR_PARAM",
    "data_field": "SOURCE_DATA_FIELD",
    "next_cursor_field": "SOURCE_NEXT_CURSOR_FIELD",
    "auth_header": "SOURCE_AUTH_HEADER",
    "auth_scheme": "SOURCE_AUTH_SCHEME",
    "timeout_seconds": "SOURCE_TIMEOUT_SECONDS",
    "max_attempts": "SOURCE_MAX_ATTEMPTS",
    "backoff_base_seconds": "SOURCE_BACKOFF_BASE_SECONDS",
    "backoff_max_seconds": "SOURCE_BACKOFF_MAX_SECONDS",
    "initial_watermark": "SOURCE_INITIAL_WATERMARK",
    "max_pages": "SOURCE_MAX_PAGES",
    "max_body_bytes": "SOURCE_MAX_BODY_BYTES",
}

# Settings an empty variable sets to empty, rather than leaving at their default.
EMPTY_ALLOWED = frozenset({"auth_scheme"})

MAX_PAGE_SIZE = 10_000

# The source settings a dataset declaration may set for itself (etl.dataset.Source).
DATASET_SOURCE_FIELDS = (
    "path",
    "data_field",
    "next_cursor_field",
    "since_param",
    "limit_param",
    "cursor_param",
)


class SettingsError(ValueError):
    """A setting is missing or has a value the ingestion cannot use."""


@dataclass(frozen=True)
class SourceSettings:
    """How to page through the source API (see README, "Point it at your own API")."""

    base_url: str
    path: str = "/v1/orders"
    page_size: int = 1000
    since_param: str = "updated_since"
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    data_field: str = "data"
    next_cursor_field: str = "next_cursor"
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"  # empty: send the token as the whole header value
    timeout_seconds: float = 30.0
    max_attempts: int = 6
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    # The `updated_since` of the very first run, before any watermark exists.
    initial_watermark: str = "1970-01-01T00:00:00Z"
    # Pages one run may read: a source whose cursors never end stops here, whatever they are.
    max_pages: int = 10_000
    # Largest answer accepted, counted as it streams in. Parsed, a page takes 3 to 4 times its size in
    # memory for usual records, and up to 30 times for hostile ones (`[{}, {}, ...]`): 8 MiB stays within
    # the smallest memory the function is given (512 MB) whatever the source sends.
    max_body_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise SettingsError(f"source base URL must start with http:// or https://, got {self.base_url!r}")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise SettingsError(f"page size must be between 1 and {MAX_PAGE_SIZE}, got {self.page_size}")
        if self.max_attempts < 1:
            raise SettingsError(f"max attempts must be at least 1, got {self.max_attempts}")
        if self.max_pages < 1:
            raise SettingsError(f"max pages must be at least 1, got {self.max_pages}")
        if self.max_body_bytes < 1024:
            raise SettingsError(f"max body bytes must be at least 1024, got {self.max_body_bytes}")
        if self.timeout_seconds <= 0 or self.backoff_base_seconds < 0 or self.backoff_max_seconds < 0:
            raise SettingsError("timeout must be positive and backoff times not negative")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/" + self.path.lstrip("/")

    def to_environment(self) -> dict[str, str]:
        """The environment variables that give these settings back through from_environment."""
        return {variable: str(getattr(self, name)) for name, variable in SOURCE_ENV.items()}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **explicit: Any) -> SourceSettings:
        """Settings from `environ`, overridden by the non-None `explicit` values."""
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, variable in SOURCE_ENV.items():
            if explicit.get(name) is not None:
                values[name] = explicit[name]
            elif environ.get(variable, "") != "" or (name in EMPTY_ALLOWED and variable in environ):
                values[name] = _parse(variable, environ[variable], str(types[name]))
        if "base_url" not in values:
            raise SettingsError(f"the source API's base URL is not set: set {SOURCE_ENV['base_url']}")
        return cls(**values)


@dataclass(frozen=True)
class IngestionSettings:
    source: SourceSettings
    bronze_root: str
    dataset: str  # a name declared under datasets/ (etl/registry.py)
    token_secret_arn: str | None = None
    # The token itself, for local runs; never logged (repr=False keeps it out of reprs and tracebacks).
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> IngestionSettings:
        env = os.environ if environ is None else environ
        source = SourceSettings.from_environment(env, **explicit.pop("source", {}))
        bronze_root = explicit.get("bronze_root") or env.get(ENV_BRONZE_ROOT)
        if not bronze_root:
            raise SettingsError(f"where to write Bronze data is not set: set {ENV_BRONZE_ROOT}")
        # No dataset is assumed: the state machine names one in each event; a manual run must name one too.
        dataset = explicit.get("dataset") or env.get(ENV_DATASET)
        if not dataset:
            raise SettingsError(
                "which dataset to ingest is not set: "
                f'name it in the event\'s "dataset" field or set {ENV_DATASET}'
            )
        settings = cls(
            source=source,
            bronze_root=bronze_root,
            dataset=dataset,
            token_secret_arn=explicit.get("token_secret_arn") or env.get(ENV_TOKEN_SECRET_ARN) or None,
            token=explicit.get("token") or env.get(ENV_TOKEN) or None,
        )
        if not settings.dataset.replace("_", "").isalnum():
            raise SettingsError(f"dataset must be letters, digits and _, got {settings.dataset!r}")
        return settings

    def for_dataset(self, dataset: Dataset) -> IngestionSettings:
        """These settings for one declared dataset: its name, its path, and the paging and field names it
        declares instead of the shared ones."""
        declared = dataset.source
        overrides = {
            name: getattr(declared, name)
            for name in DATASET_SOURCE_FIELDS
            if getattr(declared, name) is not None
        }
        return replace(self, dataset=dataset.name, source=replace(self.source, **overrides))


def _parse(variable: str, raw: str, type_name: str) -> Any:
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
    except ValueError as e:
        raise SettingsError(f"{variable} must be a number, got {raw!r}") from e
    return raw
