"""Every bucket is private, encrypted with its own rotating key, versioned, TLS-only and cleaned up."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.stacks import Resource, StackRun, as_list, statements

PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _buckets(stack: StackRun) -> list[Resource]:
    buckets = stack.of_type("aws:s3/bucket:Bucket")
    assert buckets
    return buckets


def _setting(stack: StackRun, type_token: str, bucket: Resource) -> dict[str, Any]:
    (setting,) = stack.attached_to_bucket(type_token, bucket.outputs["bucket"])
    return setting.inputs


def _is_access_log_bucket(bucket: Resource) -> bool:
    return bucket.name.startswith("access-logs-")


def test_every_bucket_is_encrypted_with_a_rotating_customer_managed_key(stack: StackRun) -> None:
    keys = {key.outputs["arn"]: key for key in stack.of_type("aws:kms/key:Key")}
    used_keys = []
    for bucket in _buckets(stack):
        (rule,) = _setting(
            stack,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            bucket,
        )["rules"]
        default = rule["applyServerSideEncryptionByDefault"]
        if _is_access_log_bucket(bucket):
            # S3 server access logging delivers only into SSE-S3 buckets.
            assert default == {"sseAlgorithm": "AES256"}
            continue
        assert default["sseAlgorithm"] == "aws:kms"
        key = keys[default["kmsMasterKeyId"]]
        assert key.inputs["enableKeyRotation"] is True
        assert rule["bucketKeyEnabled"] is True
        used_keys.append(key.name)
    # One key per bucket: a grant on one layer's key never opens another layer.
    assert len(used_keys) == len(set(used_keys))


def test_every_bucket_is_versioned(stack: StackRun) -> None:
    for bucket in _buckets(stack):
        versioning = _setting(stack, "aws:s3/bucketVersioning:BucketVersioning", bucket)
        assert versioning["versioningConfiguration"] == {"status": "Enabled"}


def test_every_bucket_blocks_all_public_access_and_acls(stack: StackRun) -> None:
    for bucket in _buckets(stack):
        block = _setting(stack, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket)
        assert {flag: block.get(flag) for flag in PUBLIC_ACCESS_FLAGS} == dict.fromkeys(
            PUBLIC_ACCESS_FLAGS, True
        )
        ownership = _setting(stack, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", bucket)
        assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_every_bucket_policy_denies_requests_without_tls(stack: StackRun) -> None:
    for bucket in _buckets(stack):
        policy = _setting(stack, "aws:s3/bucketPolicy:BucketPolicy", bucket)["policy"]
        denials = [
            s
            for s in statements(json.loads(policy))
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert len(denials) == 1, bucket.name
        (denial,) = denials
        assert denial["Principal"] == "*"
        assert as_list(denial["Action"]) == ["s3:*"]
        arn = bucket.outputs["arn"]
        assert sorted(as_list(denial["Resource"])) == [arn, f"{arn}/*"]


def test_every_bucket_expires_old_versions_and_abandoned_uploads(stack: StackRun) -> None:
    noncurrent_days = {"dev": 7, "prod": 90}[stack.stack]
    for bucket in _buckets(stack):
        rules = {
            rule["id"]: rule
            for rule in _setting(
                stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket
            )["rules"]
        }
        assert all(rule["status"] == "Enabled" for rule in rules.values())
        expiry = rules["expire-old-versions"]
        assert expiry["noncurrentVersionExpiration"] == {"noncurrentDays": noncurrent_days}
        current = {"days": 365} if _is_access_log_bucket(bucket) else {"expiredObjectDeleteMarker": True}
        assert expiry["expiration"] == current
        assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {
            "daysAfterInitiation": 7
        }


def test_layers_move_to_cheaper_storage_as_the_stack_asks(stack: StackRun) -> None:
    expected: dict[str, dict[str, dict[str, Any] | None]] = {
        "dev": {"bronze": None, "silver": None, "gold": None},
        "prod": {
            "bronze": {"days": 90, "storageClass": "GLACIER_IR"},
            "silver": {"days": 30, "storageClass": "INTELLIGENT_TIERING"},
            "gold": {"days": 30, "storageClass": "INTELLIGENT_TIERING"},
        },
    }
    for layer, transition in expected[stack.stack].items():
        bucket = stack.one("aws:s3/bucket:Bucket", f"{layer}-storage-bucket")
        rules = _setting(stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket)[
            "rules"
        ]
        transitions = [t for rule in rules for t in rule.get("transitions") or []]
        assert transitions == ([transition] if transition else [])


def test_access_logging_only_where_the_stack_asks(stack: StackRun) -> None:
    logging = stack.of_type("aws:s3/bucketLogging:BucketLogging")
    if stack.stack == "dev":
        assert logging == []
        return
    (log_bucket,) = [b for b in _buckets(stack) if _is_access_log_bucket(b)]
    logged = {entry.inputs["bucket"]: entry.inputs for entry in logging}
    others = [b for b in _buckets(stack) if b is not log_bucket]
    assert set(logged) == {b.outputs["bucket"] for b in others}
    assert all(entry["targetBucket"] == log_bucket.outputs["bucket"] for entry in logged.values())
    # Each source bucket writes under its own prefix.
    assert len({entry["targetPrefix"] for entry in logged.values()}) == len(others)
    policy = _setting(stack, "aws:s3/bucketPolicy:BucketPolicy", log_bucket)["policy"]
    (delivery,) = [s for s in statements(json.loads(policy)) if s["Effect"] == "Allow"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_force_destroy_and_deletion_protection_follow_the_stack(stack: StackRun) -> None:
    force_destroy = stack.stack == "dev"
    protected = stack.stack == "prod"
    for bucket in _buckets(stack):
        assert bucket.inputs["forceDestroy"] is force_destroy
        assert bucket.protect is protected
    for type_token in (
        "aws:kms/key:Key",
        "aws:glue/catalogDatabase:CatalogDatabase",
        "aws:secretsmanager/secret:Secret",
    ):
        assert {r.protect for r in stack.of_type(type_token)} == {protected}, type_token
    for log_group in stack.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert log_group.inputs["deletionProtectionEnabled"] is protected


def test_layer_buckets_expire_deleted_iceberg_files_and_leftover_checkpoints_sooner(stack: StackRun) -> None:
    warehouse_days = {"dev": 1, "prod": 3}[stack.stack]
    for layer in ("bronze", "silver", "gold"):
        bucket = stack.one("aws:s3/bucket:Bucket", f"{layer}-storage-bucket")
        rules = {
            rule["id"]: rule
            for rule in _setting(
                stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket
            )["rules"]
        }
        warehouse = rules["expire-warehouse"]
        assert warehouse["filter"] == {"prefix": "warehouse/"}
        assert warehouse["noncurrentVersionExpiration"] == {"noncurrentDays": warehouse_days}
        assert "expiration" not in warehouse or warehouse["expiration"] is None  # current files stay
        checkpoints = rules["expire-checkpoints"]
        assert checkpoints["filter"] == {"prefix": "_checkpoints"}
        assert checkpoints["noncurrentVersionExpiration"] == {"noncurrentDays": 1}
        assert checkpoints["expiration"] == {"days": 1}
    for name in ("artifacts", "access-logs"):
        for bucket in (b for b in _buckets(stack) if b.name.startswith(name)):
            rules = _setting(
                stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", bucket
            )
            assert not {"expire-warehouse", "expire-checkpoints"} & {rule["id"] for rule in rules["rules"]}
