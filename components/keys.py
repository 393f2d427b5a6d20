"""Customer managed KMS keys: rotated yearly, with an alias people can find in the console."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws


def customer_managed_key(
    name: str,
    *,
    alias: str,
    description: str,
    tags: Mapping[str, str],
    deletion_window_days: int,
    protect: bool,
    parent: pulumi.Resource,
) -> aws.kms.Key:
    """A symmetric key with automatic rotation and `alias/<alias>`; children are `{name}-key`/`-key-alias`.

    No key policy is given, so AWS applies its default one: the account administers the key, and IAM
    policies (each role's own) decide who may use it.
    """
    key = aws.kms.Key(
        f"{name}-key",
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=deletion_window_days,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
    aws.kms.Alias(
        f"{name}-key-alias",
        name=f"alias/{alias}",
        target_key_id=key.key_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return key
