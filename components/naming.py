"""Names and tags shared by every resource of a stack, so two stacks can live in one AWS account."""

from __future__ import annotations

import re
from dataclasses import dataclass

from etl.tables import Layer

# The `layer` tag of resources that belong to the pipeline rather than to one medallion layer.
PIPELINE_LAYER = "pipeline"
# The `layer` tag of the access-log bucket, which serves every layer.
LOGS_LAYER = "logs"


@dataclass(frozen=True)
class Naming:
    project: str
    stack: str

    @property
    def prefix(self) -> str:
        """Prefix of names AWS wants unique per account and region, e.g. lakehouse-dev."""
        return f"{self.project}-{self.stack}"

    def database_name(self, layer: Layer) -> str:
        """Glue database of a layer, e.g. lakehouse_dev_silver (Glue and Athena want lower case and _)."""
        return re.sub(r"[^a-z0-9_]", "_", f"{self.project}_{self.stack}_{layer.value}".lower())

    def tags(self, layer: str) -> dict[str, str]:
        """The tags every taggable resource carries; `layer` is a medallion layer, pipeline or logs."""
        return {"project": self.project, "stack": self.stack, "layer": layer}
