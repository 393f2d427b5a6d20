"""Customers: one record per customer, the latest `updated_at` wins."""

from __future__ import annotations

from etl.audit.checks import Freshness, QuarantineRate, RecordsIngested
from etl.dataset import Dataset, Field, Length, OneOf, Pattern, Source

SEGMENTS = ("consumer", "business", "enterprise")

DATASET = Dataset(
    name="customers",
    comment="Latest valid version of every customer, typed and de-duplicated",
    source=Source(path="/v1/customers"),
    fields=(
        Field("customer_id", "STRING", "Customer key", constraints=(Length(minimum=1),)),
        Field("name", "STRING", "Name, as received"),
        Field(
            "email",
            "STRING",
            "Email address as received (one @ with text on both sides), null when absent",
            required=False,
            constraints=(Pattern(regex="[^@]+@[^@]+"),),
        ),
        Field(
            "country",
            "STRING",
            "ISO 3166-1 alpha-2 code, upper-case",
            constraints=(Pattern(regex="[A-Za-z]{2}", fold="upper"),),
        ),
        Field(
            "segment",
            "STRING",
            "Lower-case: " + ", ".join(SEGMENTS),
            constraints=(OneOf(values=frozenset(SEGMENTS), fold="lower"),),
        ),
        Field("created_at", "TIMESTAMP", "When the customer was created (UTC)"),
        Field("updated_at", "TIMESTAMP", "When the source last changed the customer (UTC)"),
    ),
    keys=("customer_id",),
    version="updated_at",
    audits=(RecordsIngested(), QuarantineRate(), Freshness(column="updated_at")),
)
