"""Ingestion settings from the environment: defaults, overrides, and one clear error per bad value."""

from __future__ import annotations

import pytest

from etl.bronze.settings import IngestionSettings, SettingsError, SourceSettings

BASE = {
    "SOURCE_BASE_URL": "https://api.example.com/",
    "LAKEHOUSE_BRONZE_ROOT": "s3://bronze",
    "LAKEHOUSE_DATASET": "orders",
}


def test_reads_every_source_setting_from_the_environment() -> None:
    environ = {
        **BASE,
        "SOURCE_PAGE_SIZE": "250",
        "SOURCE_SINCE_PARAM": "changed_after",
        "SOURCE_TIMEOUT_SECONDS": "2.5",
        "SOURCE_MAX_PAGES": "7",
        "SOURCE_MAX_BODY_BYTES": "65536",
        "SOURCE_AUTH_SCHEME": "",
        "SOURCE_API_TOKEN_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:t",
        "LAKEHOUSE_DATASET": "orders_eu",
    }
    settings = IngestionSettings.from_environment(environ)
    assert settings.source.url == "https://api.example.com/v1/orders"  # until a declaration names its path
    assert (settings.source.page_size, settings.source.since_param) == (250, "changed_after")
    assert settings.source.timeout_seconds == 2.5
    assert (settings.source.max_pages, settings.source.max_body_bytes) == (7, 65536)
    assert settings.source.auth_scheme == ""  # set but empty: send the bare token
    assert settings.token_secret_arn == "arn:aws:secretsmanager:eu-west-1:1:secret:t"
    assert (settings.bronze_root, settings.dataset) == ("s3://bronze", "orders_eu")


def test_an_empty_variable_leaves_other_settings_at_their_default() -> None:
    settings = IngestionSettings.from_environment({**BASE, "SOURCE_SINCE_PARAM": "", "SOURCE_PAGE_SIZE": ""})
    assert (settings.source.since_param, settings.source.page_size, settings.source.auth_scheme) == (
        "updated_since",
        1000,
        "Bearer",
    )


def test_settings_survive_a_round_trip_through_the_environment() -> None:
    source = SourceSettings("https://x", page_size=5, auth_scheme="", timeout_seconds=1.5)
    assert SourceSettings.from_environment(source.to_environment()) == source


def test_explicit_values_win_over_the_environment() -> None:
    settings = IngestionSettings.from_environment(
        {**BASE, "SOURCE_PAGE_SIZE": "250"},
        bronze_root="/tmp/bronze",
        source={"base_url": "http://127.0.0.1:8000", "page_size": 50, "path": None},
    )
    assert settings.source.url == "http://127.0.0.1:8000/v1/orders"
    assert settings.source.page_size == 50
    assert settings.bronze_root == "/tmp/bronze"


def test_no_dataset_is_assumed_when_neither_the_event_nor_the_environment_names_one() -> None:
    without_dataset = {name: value for name, value in BASE.items() if name != "LAKEHOUSE_DATASET"}
    with pytest.raises(SettingsError) as refused:
        IngestionSettings.from_environment(without_dataset)
    assert str(refused.value) == (
        'which dataset to ingest is not set: name it in the event\'s "dataset" field or set LAKEHOUSE_DATASET'
    )
    assert IngestionSettings.from_environment(without_dataset, dataset="customers").dataset == "customers"


def test_the_dataset_an_event_names_wins_over_the_environment() -> None:
    assert IngestionSettings.from_environment(BASE, dataset="customers").dataset == "customers"
    assert IngestionSettings.from_environment(BASE).dataset == "orders"


def test_the_token_is_not_in_the_repr() -> None:
    settings = IngestionSettings.from_environment({**BASE, "SOURCE_API_TOKEN": "s3cr3t-value"})
    assert settings.token == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LAKEHOUSE_BRONZE_ROOT": "/tmp/b"}, "set SOURCE_BASE_URL"),
        ({"SOURCE_BASE_URL": "https://x"}, "set LAKEHOUSE_BRONZE_ROOT"),
        ({**BASE, "SOURCE_PAGE_SIZE": "many"}, "SOURCE_PAGE_SIZE must be a number"),
        ({**BASE, "SOURCE_PAGE_SIZE": "20000"}, "page size must be between 1 and 10000"),
        ({**BASE, "SOURCE_MAX_ATTEMPTS": "0"}, "max attempts must be at least 1"),
        ({**BASE, "SOURCE_BASE_URL": "ftp://x"}, "must start with http:// or https://"),
        ({**BASE, "LAKEHOUSE_DATASET": "../x"}, "dataset must be letters"),
        ({**BASE, "SOURCE_MAX_PAGES": "0"}, "max pages must be at least 1"),
        ({**BASE, "SOURCE_MAX_BODY_BYTES": "100"}, "max body bytes must be at least 1024"),
    ],
)
def test_bad_settings_fail_naming_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        IngestionSettings.from_environment(environ)


def test_source_settings_validate_directly_too() -> None:
    with pytest.raises(SettingsError):
        SourceSettings(base_url="https://x", timeout_seconds=0)
