"""Gold: business aggregates built from Silver with one SQL file per table."""
