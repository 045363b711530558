"""Where the data lives: the lake (local folder or S3) and the catalog (DuckDB or Glue + Athena)."""
