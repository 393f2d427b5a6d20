"""Silver: validate, type, de-duplicate and MERGE the raw records into Iceberg tables."""
