"""What one actor may do in one layer: IAM statements scoped to object prefixes, a key and catalog tables."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.arns import Account
from components.iam import Statement


@dataclass(frozen=True)
class LayerAccess:
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    # Key patterns under the bucket, e.g. ("warehouse/*",).
    object_keys: tuple[str, ...]
    write: bool = False
    # Iceberg rewrites and expires files; the ingestion only ever adds objects.
    delete: bool = False
    database: str | None = None
    tables: tuple[str, ...] = ()

    def statements(self, account: Account) -> list[Statement]:
        object_actions = ["s3:GetObject"]
        key_actions = ["kms:Decrypt"]
        if self.write:
            object_actions.append("s3:PutObject")
            key_actions.append("kms:GenerateDataKey")
        if self.delete:
            object_actions.append("s3:DeleteObject")
        statements = [
            # Listing also turns a missing object into 404 instead of 403, which readers rely on.
            Statement(actions=("s3:ListBucket", "s3:GetBucketLocation"), resources=(self.bucket_arn,)),
            Statement(
                actions=tuple(object_actions),
                resources=tuple(
                    pulumi.Output.format("{0}/{1}", self.bucket_arn, key) for key in self.object_keys
                ),
            ),
            Statement(actions=tuple(key_actions), resources=(self.key_arn,)),
        ]
        if self.database is not None:
            catalog = (account.glue_catalog(), account.glue_database(self.database))
            statements.append(Statement(actions=("glue:GetDatabase",), resources=catalog))
            table_actions = (
                ("glue:GetTable", "glue:CreateTable", "glue:UpdateTable")
                if self.write
                else ("glue:GetTable",)
            )
            tables = tuple(account.glue_table(self.database, table) for table in self.tables)
            if tables:
                statements.append(Statement(actions=table_actions, resources=(*catalog, *tables)))
        return statements
