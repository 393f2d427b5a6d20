"""How much of the sample source a data directory has seen: each local run publishes one more batch."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from local.sample_api.generator import SampleSource

STATE_FILE = "sample_source.json"


class SampleStateError(ValueError):
    """The data directory's sample source does not match what was asked for."""


def publish_next_batch(
    data_dir: Path, initial_orders: int | None = None, seed: int | None = None
) -> SampleSource:
    """The sample source with one more batch published than the data directory saw last time."""
    path = data_dir / STATE_FILE
    if path.exists():
        source = SampleSource(**json.loads(path.read_text()))
        if (initial_orders is not None and initial_orders != source.initial_orders) or (
            seed is not None and seed != source.seed
        ):
            raise SampleStateError(
                f"{data_dir} holds a sample source of {source.initial_orders} orders "
                f"with seed {source.seed}; "
                "use a new --data-dir for other sample settings"
            )
        source = replace(source, batches=source.batches + 1)
    else:
        defaults = SampleSource()
        source = SampleSource(
            seed=defaults.seed if seed is None else seed,
            initial_orders=defaults.initial_orders if initial_orders is None else initial_orders,
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(source), indent=2))
    return source
