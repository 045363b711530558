"""AWS Glue (Spark) job: the sector refine of the IBOV portfolio, run on Spark instead of DuckDB.

Standalone by design: Glue runs this file on its own, so it imports only PySpark and the standard library. The
SQL is not written here: it arrives as the job argument ``--refine_sql``, rendered by
``b3_dagster.transforms.sector_refine.refine_sql(processing_date, dialect="spark")``, so DuckDB (local) and Spark (Glue)
run one definition of the refine.

Arguments (``--name value``, as Glue passes them; unknown ones such as Glue's own are ignored):
    --raw_paths          comma-separated raw Parquet folders or files (``s3://bucket/lake/raw/date=2025-04-07/``)
    --refine_sql         the Spark SQL statement; it reads the raw rows from the view named by --source_view
    --source_view        the view name the SQL reads (``raw_portfolio``)
    --mapping_path       the run's sector mapping (Parquet: DataCarteira, cod, setor_economico, subsetor, Setor),
                         staged by the pipeline beside the run's output
    --mapping_view       the view name the SQL joins the mapping as (``sector_mapping``)
    --output_path        where the refined rows are written, Hive-partitioned (the run's staging folder: the table
                         asset commits it to the Iceberg table in one commit)
    --partition_columns  comma-separated partition columns (``Data``: one folder per day; the sector stays a column,
                         so no sector name becomes a path)

When Dagster launches it through ``PipesGlueClient`` (``--dagster-pipes-context`` present) and the
``dagster-pipes`` module is installed (``--additional-python-modules dagster-pipes``), progress is reported
back to the Dagster run; otherwise the job runs the same without it.
"""

from __future__ import annotations

import contextlib
import sys

REQUIRED = ("raw_paths", "refine_sql", "source_view", "mapping_path", "mapping_view", "output_path",
            "partition_columns")


# Not in b3_dagster/errors.py on purpose: this script runs inside AWS Glue, where the b3_dagster package is not
# installed, so it can import nothing from it.
class JobArgumentError(ValueError):
    pass


def parse_arguments(argv: list[str], names: tuple[str, ...] = REQUIRED) -> dict[str, str]:
    """The values of ``--name value`` (or ``--name=value``) for each of ``names``; others are ignored."""
    found: dict[str, str] = {}
    position = 0
    while position < len(argv):
        item = argv[position]
        if item.startswith("--"):
            name, equals, value = item[2:].partition("=")
            if name in names:
                if not equals:
                    if position + 1 >= len(argv):
                        raise JobArgumentError(f"job argument --{name} has no value")
                    position += 1
                    value = argv[position]
                found[name] = value
        position += 1
    missing = [name for name in names if not found.get(name, "").strip()]
    if missing:
        raise JobArgumentError(f"missing job argument(s): {', '.join('--' + name for name in missing)}")
    return found


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def refine(spark, raw_paths: list[str], sql: str, source_view: str, mapping_path: str, mapping_view: str):
    """The refined rows: the SQL run over the raw Parquet rows (``source_view``) joined with the sector mapping
    (``mapping_view``)."""
    raw = spark.read.parquet(*raw_paths)
    raw.createOrReplaceTempView(source_view)
    spark.read.parquet(mapping_path).createOrReplaceTempView(mapping_view)
    return spark.sql(sql)


def write_partitioned(frame, output_path: str, partition_columns: list[str]) -> None:
    """Hive-partitioned Parquet (one folder per partition value, values escaped as Hive does), one task per
    first partition column value (a day) so each (day, sector) folder gets one file."""
    missing = [name for name in partition_columns if name not in frame.columns]
    if missing:
        raise JobArgumentError(f"partition columns {missing} are not columns of the refined rows {frame.columns}")
    (frame.repartition(partition_columns[0])
          .write.mode("overwrite")
          .option("compression", "snappy")
          .partitionBy(*partition_columns)
          .parquet(output_path))


@contextlib.contextmanager
def _dagster_pipes(argv: list[str]):
    """The Dagster Pipes session when launched by PipesGlueClient, else ``None``."""
    if "--dagster-pipes-context" not in argv:
        yield None
        return
    try:
        import boto3
        from dagster_pipes import PipesCliArgsParamsLoader, PipesS3ContextLoader, open_dagster_pipes
    except ImportError:
        print("dagster-pipes is not installed (add --additional-python-modules dagster-pipes): running without "
              "reporting to Dagster", file=sys.stderr)
        yield None
        return
    with open_dagster_pipes(context_loader=PipesS3ContextLoader(client=boto3.client("s3")),
                            params_loader=PipesCliArgsParamsLoader()) as pipes:
        yield pipes


def main(argv: list[str] | None = None, spark=None) -> int:
    """Run the job; returns the number of refined rows written."""
    argv = list(sys.argv[1:] if argv is None else argv)
    arguments = parse_arguments(argv)
    raw_paths = split_list(arguments["raw_paths"])
    partition_columns = split_list(arguments["partition_columns"])
    with _dagster_pipes(argv) as pipes:
        if spark is None:
            from pyspark.sql import SparkSession

            spark = SparkSession.builder.appName("b3-dagster refine_sectors").getOrCreate()
        refined = refine(spark, raw_paths, arguments["refine_sql"], arguments["source_view"],
                         arguments["mapping_path"], arguments["mapping_view"]).cache()
        rows = refined.count()
        write_partitioned(refined, arguments["output_path"], partition_columns)
        refined.unpersist()
        message = f"refined {len(raw_paths)} raw partition(s) into {rows} rows at {arguments['output_path']}"
        print(message)
        if pipes is not None:
            pipes.log.info(message)
    return rows


if __name__ == "__main__":
    main()
