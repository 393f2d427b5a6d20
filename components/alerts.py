"""Alerts: the SNS topic operators subscribe to, fed by the state machine and by an EventBridge rule.

The state machine publishes the error of a failed step itself; the rule adds what it cannot report on its
own behalf: executions that timed out or were aborted, and failures where even the notification failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import Statement, policy_document
from components.naming import PIPELINE_LAYER, Naming

ALERTED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")


@dataclass
class AlertsArgs:
    naming: Naming
    # Known before the state machine exists, so the rule and the state machine need not wait for each other.
    state_machine_arn: pulumi.Input[str]
    email: str | None = None


class Alerts(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    """ARN of the SNS topic that receives pipeline failures."""
    rule_name: pulumi.Output[str]
    """Name of the EventBridge rule that forwards failed, timed-out and aborted executions."""

    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:alerts:Alerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.naming.tags(PIPELINE_LAYER)
        # Not encrypted with a KMS key: EventBridge can publish to an encrypted topic only through a key
        # policy naming it, and the messages carry execution ARNs and error text, not data.
        topic = aws.sns.Topic(
            f"{name}-topic",
            name=f"{args.naming.prefix}-alerts",
            display_name=f"{args.naming.prefix} pipeline alerts",
            tags=tags,
            opts=child,
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-rule",
            # The stack's prefix lets the deploy policy scope EventBridge rules to this stack.
            name_prefix=f"{args.naming.prefix}-alerts-",
            description=f"Executions of {args.naming.prefix} that did not succeed",
            event_pattern=pulumi.Output.json_dumps(
                {
                    "source": ["aws.states"],
                    "detail-type": ["Step Functions Execution Status Change"],
                    "detail": {"status": list(ALERTED_STATUSES), "stateMachineArn": [args.state_machine_arn]},
                }
            ),
            tags=tags,
            opts=child,
        )
        policy = aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=policy_document(
                [
                    Statement(
                        sid="PublishFailedExecutions",
                        principal={"Service": "events.amazonaws.com"},
                        actions=("sns:Publish",),
                        resources=(topic.arn,),
                        condition={"ArnEquals": {"aws:SourceArn": rule.arn}},
                    ),
                    Statement(
                        sid="DenyInsecureTransport",
                        effect="Deny",
                        principal="*",
                        actions=("sns:Publish",),
                        resources=(topic.arn,),
                        condition={"Bool": {"aws:SecureTransport": "false"}},
                    ),
                ]
            ),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-target",
            rule=rule.name,
            arn=topic.arn,
            input_transformer={
                "input_paths": {
                    "status": "$.detail.status",
                    "execution": "$.detail.executionArn",
                    "stateMachine": "$.detail.stateMachineArn",
                },
                "input_template": json.dumps(
                    "Execution <execution> of <stateMachine> ended with status <status>."
                ),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        if args.email:
            aws.sns.TopicSubscription(
                f"{name}-email", topic=topic.arn, protocol="email", endpoint=args.email, opts=child
            )

        self.topic_arn = topic.arn
        self.rule_name = rule.name
        self.register_outputs({"topic_arn": self.topic_arn, "rule_name": self.rule_name})
