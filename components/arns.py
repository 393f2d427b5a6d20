"""ARNs of things the program names but does not get an ARN for (Glue catalog objects, log groups by name).

Partition, region and account come from the provider, so the same program works in any account and in
partitions other than `aws`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class Account:
    partition: pulumi.Output[str]
    region: pulumi.Output[str]
    account_id: pulumi.Output[str]

    @classmethod
    def current(cls) -> Account:
        return cls(
            partition=aws.get_partition_output().partition,
            region=aws.get_region_output().region,
            account_id=aws.get_caller_identity_output().account_id,
        )

    def arn(self, service: str, resource: str) -> pulumi.Output[str]:
        """A regional ARN in this account, e.g. arn("glue", "catalog")."""
        return pulumi.Output.format(
            "arn:{0}:{1}:{2}:{3}:{4}", self.partition, service, self.region, self.account_id, resource
        )

    def service_endpoint(self, service: str) -> pulumi.Output[str]:
        """The endpoint `kms:ViaService` conditions name, e.g. secretsmanager.eu-west-1.amazonaws.com."""
        return pulumi.Output.format("{0}.{1}.amazonaws.com", service, self.region)

    def glue_catalog(self) -> pulumi.Output[str]:
        return self.arn("glue", "catalog")

    def glue_database(self, database: str) -> pulumi.Output[str]:
        return self.arn("glue", f"database/{database}")

    def glue_table(self, database: str, table: str) -> pulumi.Output[str]:
        return self.arn("glue", f"table/{database}/{table}")

    def glue_job(self, job: pulumi.Input[str]) -> pulumi.Output[str]:
        return pulumi.Output.format("{0}{1}", self.arn("glue", "job/"), job)

    def state_machine(self, name: str) -> pulumi.Output[str]:
        """The ARN a state machine named `name` gets, known before it exists."""
        return self.arn("states", f"stateMachine:{name}")

    def state_machine_executions(self, name: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """Every execution of the state machine named `name`: standard, and express (which IAM lists as a
        resource of the same actions; a standard machine has none)."""
        return self.arn("states", f"execution:{name}:*"), self.arn("states", f"express:{name}:*")


def log_streams(log_group_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """The streams of a log group: the resource of logs:CreateLogStream and logs:PutLogEvents."""
    return pulumi.Output.format("{0}:*", log_group_arn)
