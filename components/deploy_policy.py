"""The least-privilege policy of the role that deploys a stack, derived from the resource types it declares.

Each resource type maps to the IAM actions its create, read, update and delete call (as the AWS provider
makes them), scoped to where the stack's resources of that type live: names that start with the stack's
prefix, the stack's role path, or keys tagged with the stack. `tests/infra/deploy_policy.py` runs the program
under mocks, collects the declared types and writes docs/deploy-policy/<stack>.json (`make deploy-policy`);
a test keeps those files current and fails, naming the type, when a declared type has no mapping here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from components.iam import ANY_RESOURCE, POLICY_VERSION, Statement
from components.naming import Naming

# Types that need no AWS permission: the program's own components and Pulumi's providers.
PERMISSIONLESS_TYPE_PREFIXES = ("lakehouse:", "pulumi:")

# Where a stack's resources live. Placeholders: {partition}, {region}, {prefix} (e.g. lakehouse-dev),
# {databases} (e.g. lakehouse_dev), {role_path} (e.g. /lakehouse/dev/), {project}, {stack}. The account is
# `*`: an identity policy only reaches another account's resource if that account's resource policy allows it.
BUCKETS = "arn:{partition}:s3:::{prefix}-*"
OBJECTS = "arn:{partition}:s3:::{prefix}-*/*"
KEYS = "arn:{partition}:kms:{region}:*:key/*"
ALIASES = "arn:{partition}:kms:{region}:*:alias/{prefix}-*"
ROLES = "arn:{partition}:iam::*:role{role_path}*"
FUNCTIONS = "arn:{partition}:lambda:{region}:*:function:{prefix}-*"
# Any path whose last part starts with the prefix: /aws/lambda/<prefix>-..., /aws-glue/<prefix>-..., ...
LOG_GROUPS = "arn:{partition}:logs:{region}:*:log-group:*/{prefix}-*"
GLUE_CATALOG = "arn:{partition}:glue:{region}:*:catalog"
GLUE_DATABASES = "arn:{partition}:glue:{region}:*:database/{databases}_*"
GLUE_TABLES = "arn:{partition}:glue:{region}:*:table/{databases}_*/*"
GLUE_FUNCTIONS = "arn:{partition}:glue:{region}:*:userDefinedFunction/{databases}_*/*"
GLUE_JOBS = "arn:{partition}:glue:{region}:*:job/{prefix}-*"
STATE_MACHINES = "arn:{partition}:states:{region}:*:stateMachine:{prefix}-*"
RULES = "arn:{partition}:events:{region}:*:rule/{prefix}-*"
SCHEDULES = "arn:{partition}:scheduler:{region}:*:schedule/default/{prefix}-*"
TOPICS = "arn:{partition}:sns:{region}:*:{prefix}-*"
SECRETS = "arn:{partition}:secretsmanager:{region}:*:secret:{prefix}-*"
DYNAMODB_TABLES = "arn:{partition}:dynamodb:{region}:*:table/{prefix}-*"
WORKGROUPS = "arn:{partition}:athena:{region}:*:workgroup/{prefix}-*"
# The stack has no Athena data catalogs or capacity reservations; see the workgroup's tagging grant.
ATHENA_CATALOGS = "arn:{partition}:athena:{region}:*:datacatalog/{prefix}-*"
ATHENA_RESERVATIONS = "arn:{partition}:athena:{region}:*:capacity-reservation/{prefix}-*"
MANAGED_POLICIES = "arn:{partition}:iam::*:policy{role_path}*"
# Budgets are global: no region.
BUDGETS = "arn:{partition}:budgets::*:budget/{prefix}-*"
ALARMS = "arn:{partition}:cloudwatch:{region}:*:alarm:{prefix}-*"
# Dashboards are global too.
DASHBOARDS = "arn:{partition}:cloudwatch::*:dashboard/{prefix}-*"

# KMS keys have generated ids: the stack's keys are the ones carrying its tags (Naming.tags).
STACK_KEY_TAGS = {"aws:ResourceTag/project": "{project}", "aws:ResourceTag/stack": "{stack}"}


@dataclass(frozen=True)
class Grant:
    """Actions on resources, possibly with a condition; statements with one sid are merged into one."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Mapping[str, Mapping[str, str | tuple[str, ...]]] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True)
class ResourceType:
    """What deploying one resource type needs, and where the stack's resources of that type live."""

    grants: tuple[Grant, ...]
    # ARN patterns of the resources themselves (empty for settings that have no ARN of their own).
    scope: tuple[str, ...] = ()


class UnmappedResourceTypes(ValueError):
    """The program declares resource types the deploy policy does not know."""


def _manage_buckets(*actions: str) -> Grant:
    return Grant("ManageStackBuckets", actions, (BUCKETS,))


def _manage_objects(*actions: str) -> Grant:
    return Grant("ManageStackObjects", actions, (OBJECTS,))


def _pass_role(service: str) -> Grant:
    """Pass the stack's roles to `service`; the services of every declared type pool into one statement."""
    return Grant(
        "PassStackRoles",
        ("iam:PassRole",),
        (ROLES,),
        {"StringEquals": {"iam:PassedToService": (f"{service}.amazonaws.com",)}},
    )


def _use_keys_through(service: str, sid: str) -> Grant:
    """Encrypt and decrypt with the stack's keys, only through `service` (kms:ViaService)."""
    return Grant(
        sid,
        ("kms:Decrypt", "kms:GenerateDataKey"),
        (KEYS,),
        {"StringEquals": {**STACK_KEY_TAGS, "kms:ViaService": f"{service}.{{region}}.amazonaws.com"}},
    )


_BUCKET_READS = (
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketLogging",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketPolicy",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetBucketWebsite",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
)
_IAM_ROLE = Grant(
    "ManageStackRoles",
    (
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:GetRole",
        "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
        "iam:ListRolePolicies",
        "iam:TagRole",
        "iam:UntagRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:UpdateRole",
        "iam:UpdateRoleDescription",
    ),
    (ROLES,),
)
_STACK_KEYS = Grant(
    "ManageStackKeys",
    (
        "kms:DescribeKey",
        "kms:EnableKeyRotation",
        "kms:GetKeyPolicy",
        "kms:GetKeyRotationStatus",
        "kms:ListResourceTags",
        "kms:ScheduleKeyDeletion",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:UpdateKeyDescription",
    ),
    (KEYS,),
    {"StringEquals": STACK_KEY_TAGS},
)
_BUCKET_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
# The tags a request gives a key it creates.
_NEW_KEY_TAGS = {key.replace("Resource", "Request"): value for key, value in STACK_KEY_TAGS.items()}
_GLUE_TAGS = ("glue:GetTags", "glue:TagResource", "glue:UntagResource")
_EVENT_RULE = ("events:DeleteRule", "events:DescribeRule", "events:PutRule")
_TAGGING = ("ListTagsForResource", "TagResource", "UntagResource")

# Resource type token -> what deploying it needs. Add a type here when the program declares a new one.
RESOURCE_TYPES: Mapping[str, ResourceType] = MappingProxyType(
    {
        "aws:s3/bucket:Bucket": ResourceType(
            (
                _manage_buckets(
                    "s3:CreateBucket",
                    "s3:DeleteBucket",
                    "s3:ListBucket",
                    "s3:ListBucketVersions",
                    "s3:PutBucketTagging",
                    *_BUCKET_READS,
                ),
                # forceDestroy (dev, and the documented tear-down of prod) empties the bucket first.
                _manage_objects("s3:DeleteObject", "s3:DeleteObjectVersion"),
            ),
            scope=(BUCKETS,),
        ),
        "aws:s3/bucketVersioning:BucketVersioning": ResourceType(
            (_manage_buckets("s3:GetBucketVersioning", "s3:PutBucketVersioning"),)
        ),
        _BUCKET_ENCRYPTION: ResourceType(
            (_manage_buckets("s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration"),)
        ),
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ResourceType(
            (_manage_buckets("s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),)
        ),
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ResourceType(
            (_manage_buckets("s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls"),)
        ),
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ResourceType(
            (_manage_buckets("s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"),)
        ),
        "aws:s3/bucketPolicy:BucketPolicy": ResourceType(
            (_manage_buckets("s3:DeleteBucketPolicy", "s3:GetBucketPolicy", "s3:PutBucketPolicy"),)
        ),
        "aws:s3/bucketLogging:BucketLogging": ResourceType(
            (_manage_buckets("s3:GetBucketLogging", "s3:PutBucketLogging"),)
        ),
        "aws:s3/bucketObjectv2:BucketObjectv2": ResourceType(
            (
                _manage_buckets("s3:ListBucket", "s3:ListBucketVersions"),
                _manage_objects(
                    "s3:DeleteObject",
                    "s3:DeleteObjectVersion",
                    "s3:GetObject",
                    "s3:GetObjectTagging",
                    "s3:PutObject",
                    "s3:PutObjectTagging",
                ),
                # The artifacts bucket encrypts with the stack's key: uploading needs a data key from it.
                _use_keys_through("s3", "UseStackKeysThroughS3"),
            )
        ),
        "aws:kms/key:Key": ResourceType(
            (
                # CreateKey has no resource to scope; the request must carry the stack's tags.
                Grant(
                    "CreateStackKeys", ("kms:CreateKey",), (ANY_RESOURCE,), {"StringEquals": _NEW_KEY_TAGS}
                ),
                # Tags given to CreateKey are also authorised as kms:TagResource, before the key carries them.
                Grant("TagNewStackKeys", ("kms:TagResource",), (KEYS,), {"StringEquals": _NEW_KEY_TAGS}),
                _STACK_KEYS,
            ),
            scope=(KEYS,),
        ),
        "aws:kms/alias:Alias": ResourceType(
            (
                # IAM checks alias actions on the alias and on the key; the alias is the stack's by its name,
                # and naming a key grants no use of it.
                Grant(
                    "NameStackKeys",
                    ("kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"),
                    (ALIASES, KEYS),
                ),
                # ListAliases has no resource to scope.
                Grant("ListKeyAliases", ("kms:ListAliases",), (ANY_RESOURCE,)),
            ),
            scope=(ALIASES,),
        ),
        "aws:iam/role:Role": ResourceType((_IAM_ROLE,), scope=(ROLES,)),
        "aws:iam/rolePolicy:RolePolicy": ResourceType(
            (
                Grant(
                    "ManageStackRoles",
                    ("iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:PutRolePolicy"),
                    (ROLES,),
                ),
            )
        ),
        "aws:cloudwatch/logGroup:LogGroup": ResourceType(
            (
                Grant(
                    "ManageStackLogGroups",
                    (
                        "logs:CreateLogGroup",
                        "logs:DeleteLogGroup",
                        "logs:DeleteRetentionPolicy",
                        "logs:PutLogGroupDeletionProtection",
                        "logs:PutRetentionPolicy",
                        *(f"logs:{action}" for action in _TAGGING),
                    ),
                    (LOG_GROUPS,),
                ),
                # DescribeLogGroups (how the provider reads a log group) has no resource to scope.
                Grant("DescribeLogGroups", ("logs:DescribeLogGroups",), (ANY_RESOURCE,)),
            ),
            scope=(LOG_GROUPS,),
        ),
        "aws:lambda/function:Function": ResourceType(
            (
                Grant(
                    "ManageStackFunctions",
                    (
                        "lambda:CreateFunction",
                        "lambda:DeleteFunction",
                        "lambda:DeleteFunctionConcurrency",
                        "lambda:GetFunction",
                        "lambda:GetFunctionCodeSigningConfig",
                        "lambda:GetFunctionConfiguration",
                        "lambda:ListTags",
                        "lambda:ListVersionsByFunction",
                        "lambda:PutFunctionConcurrency",
                        "lambda:TagResource",
                        "lambda:UntagResource",
                        "lambda:UpdateFunctionCode",
                        "lambda:UpdateFunctionConfiguration",
                    ),
                    (FUNCTIONS,),
                ),
                _pass_role("lambda"),
            ),
            scope=(FUNCTIONS,),
        ),
        "aws:glue/catalogDatabase:CatalogDatabase": ResourceType(
            (
                Grant(
                    "ManageStackDatabases",
                    ("glue:CreateDatabase", "glue:DeleteDatabase", "glue:GetDatabase", "glue:UpdateDatabase"),
                    # Deleting a database deletes its tables and functions, which IAM checks too.
                    (GLUE_CATALOG, GLUE_DATABASES, GLUE_TABLES, GLUE_FUNCTIONS),
                ),
                Grant("TagStackGlueResources", _GLUE_TAGS, (GLUE_DATABASES,)),
            ),
            scope=(GLUE_DATABASES,),
        ),
        "aws:glue/job:Job": ResourceType(
            (
                Grant(
                    "ManageStackJobs",
                    ("glue:CreateJob", "glue:DeleteJob", "glue:GetJob", "glue:UpdateJob"),
                    (GLUE_JOBS,),
                ),
                Grant("TagStackGlueResources", _GLUE_TAGS, (GLUE_JOBS,)),
                _pass_role("glue"),
            ),
            scope=(GLUE_JOBS,),
        ),
        "aws:sfn/stateMachine:StateMachine": ResourceType(
            (
                Grant(
                    "ManageStackStateMachines",
                    (
                        "states:CreateStateMachine",
                        "states:DeleteStateMachine",
                        "states:DescribeStateMachine",
                        "states:ListStateMachineVersions",
                        "states:UpdateStateMachine",
                        *(f"states:{action}" for action in _TAGGING),
                    ),
                    (STATE_MACHINES,),
                ),
                # The provider validates the definition on every preview; the action has no resource.
                Grant(
                    "ValidateStateMachineDefinitions",
                    ("states:ValidateStateMachineDefinition",),
                    (ANY_RESOURCE,),
                ),
                # Logging to CloudWatch Logs sets up a log delivery; these actions have no resource to scope.
                Grant(
                    "DeliverStateMachineLogs",
                    (
                        "logs:CreateLogDelivery",
                        "logs:DeleteLogDelivery",
                        "logs:DescribeResourcePolicies",
                        "logs:GetLogDelivery",
                        "logs:ListLogDeliveries",
                        "logs:PutResourcePolicy",
                        "logs:UpdateLogDelivery",
                    ),
                    (ANY_RESOURCE,),
                ),
                _pass_role("states"),
            ),
            scope=(STATE_MACHINES,),
        ),
        "aws:cloudwatch/eventRule:EventRule": ResourceType(
            (Grant("ManageStackRules", (*_EVENT_RULE, *(f"events:{a}" for a in _TAGGING)), (RULES,)),),
            scope=(RULES,),
        ),
        "aws:cloudwatch/eventTarget:EventTarget": ResourceType(
            (
                Grant(
                    "ManageStackRules",
                    ("events:ListTargetsByRule", "events:PutTargets", "events:RemoveTargets"),
                    (RULES,),
                ),
            )
        ),
        "aws:scheduler/schedule:Schedule": ResourceType(
            (
                Grant(
                    "ManageStackSchedules",
                    (
                        "scheduler:CreateSchedule",
                        "scheduler:DeleteSchedule",
                        "scheduler:GetSchedule",
                        "scheduler:UpdateSchedule",
                    ),
                    (SCHEDULES,),
                ),
                _pass_role("scheduler"),
            ),
            scope=(SCHEDULES,),
        ),
        "aws:sns/topic:Topic": ResourceType(
            (
                Grant(
                    "ManageStackTopics",
                    (
                        "sns:CreateTopic",
                        "sns:DeleteTopic",
                        "sns:GetTopicAttributes",
                        "sns:SetTopicAttributes",
                        *(f"sns:{action}" for action in _TAGGING),
                    ),
                    (TOPICS,),
                ),
            ),
            scope=(TOPICS,),
        ),
        "aws:sns/topicPolicy:TopicPolicy": ResourceType(
            (Grant("ManageStackTopics", ("sns:GetTopicAttributes", "sns:SetTopicAttributes"), (TOPICS,)),)
        ),
        "aws:sns/topicSubscription:TopicSubscription": ResourceType(
            (
                Grant("ManageStackTopics", ("sns:ListSubscriptionsByTopic", "sns:Subscribe"), (TOPICS,)),
                # A subscription's own actions have no resource to scope.
                Grant(
                    "ManageSubscriptions",
                    ("sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes", "sns:Unsubscribe"),
                    (ANY_RESOURCE,),
                ),
            )
        ),
        "aws:secretsmanager/secret:Secret": ResourceType(
            (
                Grant(
                    "ManageStackSecrets",
                    (
                        "secretsmanager:CreateSecret",
                        "secretsmanager:DeleteSecret",
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetResourcePolicy",
                        "secretsmanager:TagResource",
                        "secretsmanager:UntagResource",
                        "secretsmanager:UpdateSecret",
                    ),
                    (SECRETS,),
                ),
            ),
            scope=(SECRETS,),
        ),
        "aws:secretsmanager/secretVersion:SecretVersion": ResourceType(
            (
                Grant(
                    "ManageStackSecrets",
                    (
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:ListSecretVersionIds",
                        "secretsmanager:PutSecretValue",
                        "secretsmanager:UpdateSecretVersionStage",
                    ),
                    (SECRETS,),
                ),
                # The secret is encrypted with the stack's key: writing and reading its value use it.
                _use_keys_through("secretsmanager", "UseStackKeysThroughSecretsManager"),
            )
        ),
        "aws:dynamodb/table:Table": ResourceType(
            (
                Grant(
                    "ManageStackTables",
                    (
                        "dynamodb:CreateTable",
                        "dynamodb:DeleteTable",
                        "dynamodb:DescribeContinuousBackups",
                        "dynamodb:DescribeTable",
                        "dynamodb:DescribeTimeToLive",
                        "dynamodb:ListTagsOfResource",
                        "dynamodb:TagResource",
                        "dynamodb:UntagResource",
                        "dynamodb:UpdateContinuousBackups",
                        "dynamodb:UpdateTable",
                        "dynamodb:UpdateTimeToLive",
                    ),
                    (DYNAMODB_TABLES,),
                ),
            ),
            scope=(DYNAMODB_TABLES,),
        ),
        "aws:athena/workgroup:Workgroup": ResourceType(
            (
                Grant(
                    "ManageStackWorkgroups",
                    (
                        "athena:CreateWorkGroup",
                        "athena:DeleteWorkGroup",
                        "athena:GetWorkGroup",
                        "athena:UpdateWorkGroup",
                    ),
                    (WORKGROUPS,),
                ),
                # The IAM reference lists three resource types for Athena's tag actions, and the lint wants
                # each named: the stack's catalogs and reservations (it has none) add nothing outside it.
                Grant(
                    "TagStackWorkgroups",
                    tuple(f"athena:{action}" for action in _TAGGING),
                    (WORKGROUPS, ATHENA_CATALOGS, ATHENA_RESERVATIONS),
                ),
            ),
            scope=(WORKGROUPS,),
        ),
        "aws:athena/namedQuery:NamedQuery": ResourceType(
            (
                Grant(
                    "ManageStackWorkgroups",
                    ("athena:CreateNamedQuery", "athena:DeleteNamedQuery", "athena:GetNamedQuery"),
                    (WORKGROUPS,),
                ),
            )
        ),
        "aws:iam/policy:Policy": ResourceType(
            (
                Grant(
                    "ManageStackPolicies",
                    (
                        "iam:CreatePolicy",
                        "iam:CreatePolicyVersion",
                        "iam:DeletePolicy",
                        "iam:DeletePolicyVersion",
                        "iam:GetPolicy",
                        "iam:GetPolicyVersion",
                        "iam:ListPolicyTags",
                        "iam:ListPolicyVersions",
                        "iam:TagPolicy",
                        "iam:UntagPolicy",
                    ),
                    (MANAGED_POLICIES,),
                ),
            ),
            scope=(MANAGED_POLICIES,),
        ),
        "aws:budgets/budget:Budget": ResourceType(
            (
                Grant(
                    "ManageStackBudgets",
                    ("budgets:ModifyBudget", "budgets:ViewBudget", *(f"budgets:{a}" for a in _TAGGING)),
                    (BUDGETS,),
                ),
            ),
            scope=(BUDGETS,),
        ),
        "aws:cloudwatch/metricAlarm:MetricAlarm": ResourceType(
            (
                Grant(
                    "ManageStackAlarms",
                    (
                        "cloudwatch:DeleteAlarms",
                        "cloudwatch:DescribeAlarms",
                        "cloudwatch:PutMetricAlarm",
                        *(f"cloudwatch:{action}" for action in _TAGGING),
                    ),
                    (ALARMS,),
                ),
            ),
            scope=(ALARMS,),
        ),
        "aws:cloudwatch/dashboard:Dashboard": ResourceType(
            (
                Grant(
                    "ManageStackDashboards",
                    ("cloudwatch:DeleteDashboards", "cloudwatch:GetDashboard", "cloudwatch:PutDashboard"),
                    (DASHBOARDS,),
                ),
            ),
            scope=(DASHBOARDS,),
        ),
        # Lake Formation mode (lakeFormation: true). Lake Formation's actions have no resource to scope;
        # the deploying identity must also be a data lake administrator, which IAM cannot grant.
        "aws:lakeformation/resource:Resource": ResourceType(
            (
                Grant(
                    "RegisterLocationsWithLakeFormation",
                    (
                        "lakeformation:DeregisterResource",
                        "lakeformation:DescribeResource",
                        "lakeformation:RegisterResource",
                    ),
                    (ANY_RESOURCE,),
                ),
                _pass_role("lakeformation"),
            )
        ),
        "aws:lakeformation/permissions:Permissions": ResourceType(
            (
                Grant(
                    "GrantThroughLakeFormation",
                    (
                        "lakeformation:GrantPermissions",
                        "lakeformation:ListPermissions",
                        "lakeformation:RevokePermissions",
                    ),
                    (ANY_RESOURCE,),
                ),
            )
        ),
    }
)


@dataclass(frozen=True)
class StackTarget:
    """The stack a policy is for: its names and its region."""

    naming: Naming
    region: str
    partition: str = "aws"

    def fill(self, template: str) -> str:
        return template.format(
            partition=self.partition,
            region=self.region,
            prefix=self.naming.prefix,
            databases=self.naming.database_prefix,
            role_path=self.naming.role_path,
            project=self.naming.project,
            stack=self.naming.stack,
        )


def needs_permissions(type_token: str) -> bool:
    return not type_token.startswith(PERMISSIONLESS_TYPE_PREFIXES)


def unmapped_types(type_tokens: Iterable[str]) -> list[str]:
    """The declared types that need permissions but have no entry in RESOURCE_TYPES."""
    return sorted({t for t in type_tokens if needs_permissions(t) and t not in RESOURCE_TYPES})


def deploy_policy(type_tokens: Iterable[str], target: StackTarget) -> dict[str, Any]:
    """The policy document that deploys, updates and deletes resources of `type_tokens` in `target`."""
    types = sorted({t for t in type_tokens if needs_permissions(t)})
    missing = unmapped_types(types)
    if missing:
        raise UnmappedResourceTypes(
            f"the deploy policy has no permissions for resource type(s) {', '.join(missing)}: add them to "
            "RESOURCE_TYPES in components/deploy_policy.py, then run `make deploy-policy`"
        )
    merged: dict[str, Grant] = {}
    for grant in (grant for t in types for grant in RESOURCE_TYPES[t].grants):
        known = merged.get(grant.sid)
        if known is None:
            merged[grant.sid] = grant
            continue
        merged[grant.sid] = Grant(
            grant.sid,
            tuple(sorted({*known.actions, *grant.actions})),
            tuple(sorted({*known.resources, *grant.resources})),
            _pooled_condition(grant.sid, known.condition, grant.condition),
        )
    statements = [_statement(merged[sid], target).render() for sid in sorted(merged)]
    return {"Version": POLICY_VERSION, "Statement": statements}


def _pooled_condition(
    sid: str,
    known: Mapping[str, Mapping[str, str | tuple[str, ...]]],
    other: Mapping[str, Mapping[str, str | tuple[str, ...]]],
) -> Mapping[str, Mapping[str, str | tuple[str, ...]]]:
    """One condition for two grants with one sid: a tuple lists alternatives, and the grants' alternatives
    pool (one statement instead of one per service keeps the policy within IAM's size limit); anything
    else must be equal."""
    if known == other:
        return known
    same_keys = known.keys() == other.keys() and all(known[op].keys() == other[op].keys() for op in known)
    if not same_keys or any(
        not (isinstance(known[op][key], tuple) and isinstance(other[op][key], tuple))
        for op in known
        for key in known[op]
        if known[op][key] != other[op][key]
    ):
        raise ValueError(f"grants named {sid} differ in their condition")
    return {
        op: {
            key: tuple(sorted({*known[op][key], *other[op][key]}))
            if isinstance(known[op][key], tuple)
            else known[op][key]
            for key in known[op]
        }
        for op in known
    }


def _statement(grant: Grant, target: StackTarget) -> Statement:
    condition = {
        operator: {key: _fill_value(value, target) for key, value in values.items()}
        for operator, values in grant.condition.items()
    }
    return Statement(
        sid=grant.sid,
        actions=tuple(sorted(set(grant.actions))),
        resources=tuple(sorted({target.fill(r) for r in grant.resources})),
        condition=condition,
    )


def _fill_value(value: str | tuple[str, ...], target: StackTarget) -> str | list[str]:
    return target.fill(value) if isinstance(value, str) else [target.fill(v) for v in value]
