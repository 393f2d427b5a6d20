"""Dataset declarations, one module per dataset (see README, "Add a dataset"); Gold models in `gold/`."""
