"""Gold models: one module (with a `MODEL`) and one SQL file per Gold table."""
