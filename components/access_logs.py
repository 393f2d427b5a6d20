"""AccessLogs: the bucket that receives the S3 server access logs of every other bucket of the stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.arns import Account
from components.hardened_bucket import AccessLogTarget, HardenedBucket, HardenedBucketArgs
from components.naming import LOGS_LAYER, Naming


@dataclass
class AccessLogsArgs:
    naming: Naming
    account: Account
    retention_days: int
    noncurrent_version_days: int
    force_destroy: bool = False
    protect: bool = False


class AccessLogs(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    """Name of the access-log bucket."""

    def __init__(self, name: str, args: AccessLogsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:access_logs:AccessLogs", name, None, opts)
        storage = HardenedBucket(
            f"{name}-storage",
            HardenedBucketArgs(
                name_prefix=args.naming.bucket_prefix("access-logs"),
                tags=args.naming.tags(LOGS_LAYER),
                # S3 delivers server access logs only into buckets encrypted with SSE-S3.
                kms_key_arn=None,
                noncurrent_version_days=args.noncurrent_version_days,
                expiration_days=args.retention_days,
                force_destroy=args.force_destroy,
                protect=args.protect,
                log_delivery_account=args.account.account_id,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.bucket_name = storage.bucket_name
        self.register_outputs({"bucket_name": self.bucket_name})

    def target(self, source: str) -> AccessLogTarget:
        """Where the logs of the bucket `source` go: a prefix of their own in this bucket."""
        return AccessLogTarget(bucket=self.bucket_name, prefix=f"{source}/")
