"""A sample source API that follows the source contract, deterministic from a seed."""
