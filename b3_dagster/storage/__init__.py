"""Where the data lives: the lake (local folder or S3) and the Iceberg tables (SQLite catalog or Glue catalog)."""
