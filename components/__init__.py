"""Pulumi components of the lakehouse."""
