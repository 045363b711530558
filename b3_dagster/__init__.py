"""b3-dagster: B3's public IBOV data as a partitioned, catalogued lakehouse table.

Below ``b3_dagster.defs`` nothing imports dagster: sources, transforms and storage are plain Python.

For a notebook: ``con = b3_dagster.connect()`` returns a DuckDB connection in which ``"default".tb_ibov_refined``
and ``b3_refined_db.ibov_refined`` answer SQL (see README, "Reading the tables").
"""

from __future__ import annotations


def connect(lake: str | None = None, as_of: str | None = None, *, catalog: str | None = None,
            external_access: bool = True, notes: list | None = None):
    """An in-memory DuckDB connection holding the refined Iceberg tables as of now (or ``as_of``: a snapshot id or
    an ISO timestamp). It holds no lock: refines commit while it is open; call ``connect()`` again to see them.

    ``lake`` defaults to ``$B3_LAKE_ROOT`` or ``data``; ``catalog`` to ``$B3_CATALOG`` or ``sql`` (``glue`` on AWS,
    with ``$B3_GLUE_DATABASE`` and the AWS region/endpoint from the environment). ``external_access=False`` locks
    DuckDB's file and network access off (what ``b3-dagster query`` does with user SQL). ``notes``, when given,
    receives a line for each table that has no snapshot (then) and so answers as an empty table."""
    from b3_dagster.storage import tables

    return tables.connect(open_lake_tables(lake, catalog), tables.AsOf.parse(as_of) if as_of else None,
                          external_access=external_access, notes=notes)


def open_lake_tables(lake: str | None = None, catalog: str | None = None):
    """The lake's Iceberg tables (``storage.tables.IcebergTables``) with the same defaults as ``connect``: what
    the command line's ``snapshots`` and ``rebuild-tables`` work on."""
    from b3_dagster import settings
    from b3_dagster.storage.lakes import lake_from_uri
    from b3_dagster.storage.tables import open_tables

    region = settings.region()
    return open_tables(lake_from_uri(lake or settings.get("B3_LAKE_ROOT"), region_name=region),
                       catalog or settings.get("B3_CATALOG"),
                       glue_database=settings.get("B3_GLUE_DATABASE"), region_name=region)
