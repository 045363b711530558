"""b3-dagster: B3's public IBOV data as a partitioned, catalogued lakehouse table.

Below ``b3_dagster.defs`` nothing imports dagster: sources, transforms and storage are plain Python.
"""
