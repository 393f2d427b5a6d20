"""Benchmarks of the local pipeline (`make bench`); figures, not assertions."""

import os

# Set before etl.bronze creates its loggers: per-run INFO logs would drown the figures.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
