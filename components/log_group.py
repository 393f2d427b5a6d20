"""CloudWatch log groups with the stack's retention and, where the stack asks, deletion protection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class LogSettings:
    retention_days: int
    deletion_protection: bool


def log_group(
    name: str, *, log_group_name: str, settings: LogSettings, tags: Mapping[str, str], parent: pulumi.Resource
) -> aws.cloudwatch.LogGroup:
    """A log group named `log_group_name`; created here rather than by the service, so retention applies."""
    return aws.cloudwatch.LogGroup(
        name,
        name=log_group_name,
        retention_in_days=settings.retention_days,
        deletion_protection_enabled=settings.deletion_protection,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
