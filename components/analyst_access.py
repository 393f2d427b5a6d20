"""What an analyst may do: run queries in one Athena workgroup and read Gold through it, nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.arns import Account
from components.iam import ANY_RESOURCE, Statement

# The queries of the workgroup, started, watched, stopped and read, and its saved (named) queries.
WORKGROUP_ACTIONS = (
    "athena:StartQueryExecution",
    "athena:StopQueryExecution",
    "athena:GetQueryExecution",
    "athena:BatchGetQueryExecution",
    "athena:ListQueryExecutions",
    "athena:GetQueryResults",
    "athena:GetQueryRuntimeStatistics",
    "athena:GetWorkGroup",
    "athena:ListNamedQueries",
    "athena:GetNamedQuery",
    "athena:BatchGetNamedQuery",
)
# The console's table browser; Glue still decides which databases and tables it shows.
CATALOG_BROWSING_ACTIONS = (
    "athena:GetDataCatalog",
    "athena:ListDatabases",
    "athena:GetDatabase",
    "athena:ListTableMetadata",
    "athena:GetTableMetadata",
)
# Athena reads table definitions from Glue with the caller's own permissions.
GLUE_READ_ACTIONS = (
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:GetPartition",
    "glue:GetPartitions",
)
# Athena writes each result (in parts when large) and reads it back, with the caller's permissions.
RESULT_BUCKET_ACTIONS = ("s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads")
RESULT_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
# The Glue Data Catalog Athena queries by default.
DATA_CATALOG = "AwsDataCatalog"


@dataclass(frozen=True)
class AnalystAccess:
    """The statements of the analyst policy; with `lake_formation`, Gold's files are read only through it."""

    workgroup_arn: pulumi.Input[str]
    gold_database: str
    gold_bucket_arn: pulumi.Input[str]
    gold_key_arn: pulumi.Input[str]
    # Key pattern of Gold's tables in its bucket, e.g. "warehouse/*".
    gold_objects: str
    results_bucket_arn: pulumi.Input[str]
    results_key_arn: pulumi.Input[str]
    # Key pattern of the query results, e.g. "results/*".
    results_objects: str
    lake_formation: bool = False

    def statements(self, account: Account) -> list[Statement]:
        through_s3 = {"StringEquals": {"kms:ViaService": account.service_endpoint("s3")}}
        statements = [
            Statement(
                sid="RunQueriesInTheWorkgroup", actions=WORKGROUP_ACTIONS, resources=(self.workgroup_arn,)
            ),
            Statement(
                sid="BrowseTheCatalogThroughAthena",
                actions=CATALOG_BROWSING_ACTIONS,
                resources=(account.arn("athena", f"datacatalog/{DATA_CATALOG}"),),
            ),
            Statement(
                sid="ReadGoldTableDefinitions",
                actions=GLUE_READ_ACTIONS,
                resources=(
                    account.glue_catalog(),
                    account.glue_database(self.gold_database),
                    # Listing a database's tables (GetTables) is checked against all of them.
                    account.glue_table(self.gold_database, "*"),
                ),
            ),
            Statement(
                sid="WriteAndReadQueryResults",
                actions=RESULT_BUCKET_ACTIONS,
                resources=(self.results_bucket_arn,),
            ),
            Statement(
                sid="WriteAndReadQueryResultObjects",
                actions=RESULT_OBJECT_ACTIONS,
                resources=(pulumi.Output.format("{0}/{1}", self.results_bucket_arn, self.results_objects),),
            ),
            Statement(
                sid="EncryptQueryResultsThroughS3",
                actions=("kms:Decrypt", "kms:GenerateDataKey"),
                resources=(self.results_key_arn,),
                condition=through_s3,
            ),
        ]
        if self.lake_formation:
            # Lake Formation hands Athena short-lived credentials for the registered Gold location; the
            # analyst holds no S3 or KMS permission on Gold itself. GetDataAccess has no resource to scope.
            statements.append(
                Statement(
                    sid="ReadGoldThroughLakeFormation",
                    actions=("lakeformation:GetDataAccess",),
                    resources=(ANY_RESOURCE,),
                )
            )
            return statements
        statements += [
            Statement(
                sid="ListGold",
                actions=("s3:ListBucket", "s3:GetBucketLocation"),
                resources=(self.gold_bucket_arn,),
            ),
            Statement(
                sid="ReadGoldFiles",
                actions=("s3:GetObject",),
                resources=(pulumi.Output.format("{0}/{1}", self.gold_bucket_arn, self.gold_objects),),
            ),
            Statement(
                sid="DecryptGoldThroughS3",
                actions=("kms:Decrypt",),
                resources=(self.gold_key_arn,),
                condition=through_s3,
            ),
        ]
        return statements
