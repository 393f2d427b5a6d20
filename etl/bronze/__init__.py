"""Bronze: pull records from the source API and land them in object storage as raw JSON Lines."""
