"""HardenedBucket: an S3 bucket that is private, encrypted, versioned, TLS-only and cleans up after itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import Statement, policy_document

# Uploads that never completed cost money and are invisible in listings.
ABORT_INCOMPLETE_UPLOADS_DAYS = 7


@dataclass(frozen=True)
class Transition:
    """Move current objects to a cheaper storage class after `days`."""

    days: int
    storage_class: str


@dataclass(frozen=True)
class PrefixExpiry:
    """Delete objects under `prefix` sooner than the bucket-wide rule does.

    S3 honours the shorter of two overlapping expirations, so this only ever shortens the bucket's.
    """

    prefix: str  # e.g. "warehouse/"
    noncurrent_days: int
    # Delete current objects too, this many days after they were written (scratch space); None keeps them.
    current_days: int | None = None


@dataclass(frozen=True)
class AccessLogTarget:
    """Where S3 server access logs of the bucket go."""

    bucket: pulumi.Input[str]
    prefix: str


@dataclass
class HardenedBucketArgs:
    # Start of the bucket's name (see Naming.bucket_prefix).
    name_prefix: str
    tags: Mapping[str, str]
    noncurrent_version_days: int
    # The customer managed key of SSE-KMS. None means SSE-S3, which only the access-log bucket uses:
    # S3 server access logging cannot deliver into a bucket whose default encryption is SSE-KMS.
    kms_key_arn: pulumi.Input[str] | None
    force_destroy: bool = False
    protect: bool = False
    transition: Transition | None = None
    prefix_expiries: tuple[PrefixExpiry, ...] = ()
    # Delete current objects after this many days (access logs); None keeps them.
    expiration_days: int | None = None
    access_logs: AccessLogTarget | None = None
    # The account whose buckets deliver S3 server access logs into this one (the access-log bucket only).
    log_delivery_account: pulumi.Input[str] | None = None


class HardenedBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    """Name of the bucket."""
    bucket_arn: pulumi.Output[str]
    """ARN of the bucket."""

    def __init__(
        self, name: str, args: HardenedBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lakehouse:hardened_bucket:HardenedBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        data = pulumi.ResourceOptions(parent=self, protect=args.protect)

        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=args.name_prefix,
            force_destroy=args.force_destroy,
            tags=dict(args.tags),
            opts=data,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            # ACLs off: access is decided by policies alone.
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[_encryption_rule(args.kms_key_arn)],
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=_lifecycle_rules(args),
            # Lifecycle rules on noncurrent versions need versioning in place first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket.id,
            policy=policy_document(_policy_statements(bucket.arn, args.log_delivery_account)),
            # S3 rejects a bucket policy while the public access block is still being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        if args.access_logs is not None:
            aws.s3.BucketLogging(
                f"{name}-access-logs",
                bucket=bucket.id,
                target_bucket=args.access_logs.bucket,
                target_prefix=args.access_logs.prefix,
                opts=child,
            )

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})


def _policy_statements(
    bucket_arn: pulumi.Output[str], log_delivery_account: pulumi.Input[str] | None
) -> list[Statement]:
    statements = tls_only_statements(bucket_arn)
    if log_delivery_account is not None:
        statements.append(
            Statement(
                sid="AllowAccessLogDelivery",
                principal={"Service": "logging.s3.amazonaws.com"},
                actions=("s3:PutObject",),
                resources=(pulumi.Output.format("{0}/*", bucket_arn),),
                # Only buckets of this account may deliver here.
                condition={"StringEquals": {"aws:SourceAccount": log_delivery_account}},
            )
        )
    return statements


def tls_only_statements(bucket_arn: pulumi.Input[str]) -> list[Statement]:
    """Deny every request that does not use TLS (AWS endpoints refuse TLS older than 1.2 themselves)."""
    resources = (bucket_arn, pulumi.Output.format("{0}/*", bucket_arn))
    return [
        Statement(
            sid="DenyInsecureTransport",
            effect="Deny",
            principal="*",
            actions=("s3:*",),
            resources=resources,
            condition={"Bool": {"aws:SecureTransport": "false"}},
        ),
    ]


def _encryption_rule(
    kms_key_arn: pulumi.Input[str] | None,
) -> aws.s3.BucketServerSideEncryptionConfigurationRuleArgsDict:
    if kms_key_arn is None:
        return {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}
    return {
        "apply_server_side_encryption_by_default": {
            "sse_algorithm": "aws:kms",
            "kms_master_key_id": kms_key_arn,
        },
        # A bucket key cuts KMS requests (and their cost) by orders of magnitude for Spark's many objects.
        "bucket_key_enabled": True,
    }


def _lifecycle_rules(args: HardenedBucketArgs) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    # One rule carries every expiration: S3 takes one Expiration per rule, and overlapping rules with the
    # same action are easy to get wrong. Current objects expire only where asked (the access logs);
    # elsewhere the rule removes delete markers with no versions left behind them, which slow listings.
    expiration: aws.s3.BucketLifecycleConfigurationRuleExpirationArgsDict = (
        {"days": args.expiration_days}
        if args.expiration_days is not None
        else {"expired_object_delete_marker": True}
    )
    rules: list[aws.s3.BucketLifecycleConfigurationRuleArgsDict] = [
        {
            "id": "expire-old-versions",
            "status": "Enabled",
            "filter": {"prefix": ""},
            "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_version_days},
            "expiration": expiration,
        },
        {
            "id": "abort-incomplete-multipart-uploads",
            "status": "Enabled",
            "filter": {"prefix": ""},
            "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_INCOMPLETE_UPLOADS_DAYS},
        },
    ]
    for expiry in args.prefix_expiries:
        rule: aws.s3.BucketLifecycleConfigurationRuleArgsDict = {
            "id": f"expire-{expiry.prefix.strip('/').replace('/', '-').replace('_', '')}",
            "status": "Enabled",
            "filter": {"prefix": expiry.prefix},
            "noncurrent_version_expiration": {"noncurrent_days": expiry.noncurrent_days},
        }
        if expiry.current_days is not None:
            rule["expiration"] = {"days": expiry.current_days}
        rules.append(rule)
    if args.transition is not None:
        rules.append(
            {
                "id": f"transition-to-{args.transition.storage_class.lower().replace('_', '-')}",
                "status": "Enabled",
                "filter": {"prefix": ""},
                "transitions": [
                    {"days": args.transition.days, "storage_class": args.transition.storage_class}
                ],
            }
        )
    return rules
