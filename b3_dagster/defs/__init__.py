"""Dagster lives here, and only here: resources, partitions, assets, checks and automation."""
