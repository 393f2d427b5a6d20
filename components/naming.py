"""Names and tags shared by every resource of a stack, so two stacks can live in one AWS account."""

from __future__ import annotations

import re
from dataclasses import dataclass

from etl.tables import Layer

# The `layer` tag of resources that belong to the pipeline rather than to one medallion layer.
PIPELINE_LAYER = "pipeline"
# The `layer` tag of the access-log bucket, which serves every layer.
LOGS_LAYER = "logs"
# The `layer` tag of the query layer (Athena) over Gold.
ANALYTICS_LAYER = "analytics"
# The longest bucket name prefix AWS accepts.
BUCKET_PREFIX_LENGTH = 37


@dataclass(frozen=True)
class Naming:
    project: str
    stack: str

    @property
    def prefix(self) -> str:
        """Prefix of names AWS wants unique per account and region, e.g. lakehouse-dev."""
        return f"{self.project}-{self.stack}"

    def bucket_prefix(self, role: str) -> str:
        """Start of a bucket name, e.g. lakehouse-dev-silver-; a unique suffix follows (names are global)."""
        prefix = re.sub(r"[^a-z0-9-]", "-", f"{self.prefix}-{role}".lower())
        return prefix[: BUCKET_PREFIX_LENGTH - 1] + "-"

    @property
    def database_prefix(self) -> str:
        """Start of the stack's Glue database names, e.g. lakehouse_dev (Glue wants lower case and _)."""
        return re.sub(r"[^a-z0-9_]", "_", f"{self.project}_{self.stack}".lower())

    def database_name(self, layer: Layer) -> str:
        """Glue database of a layer, e.g. lakehouse_dev_silver."""
        return re.sub(r"[^a-z0-9_]", "_", f"{self.database_prefix}_{layer.value}".lower())

    @property
    def role_path(self) -> str:
        """IAM path of the stack's roles, e.g. /lakehouse/dev/: the deploy policy passes only these."""
        return f"/{self.project}/{self.stack}/"

    def tags(self, layer: str) -> dict[str, str]:
        """The tags every taggable resource carries; `layer`: medallion layer, pipeline, logs or analytics."""
        return {"project": self.project, "stack": self.stack, "layer": layer}
