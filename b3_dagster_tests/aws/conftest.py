"""AWS fixtures: one moto server (server mode, real HTTP on 127.0.0.1) per test session; every boto3,
awswrangler and dagster-aws client in these tests talks to it through AWS_ENDPOINT_URL."""

from __future__ import annotations

import uuid

import boto3
import pytest

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch):
    """Point every AWS client at moto, with dummy credentials, for one test (monkeypatch restores the rest)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    return moto_endpoint


@pytest.fixture
def bucket(aws_env):
    """A fresh, empty bucket per test (so tests cannot see each other's objects)."""
    name = f"b3-lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(aws_env):
    return boto3.client("s3", region_name=REGION)


# ---- recorded real data ----------------------------------------------------------------------------------------
def load_recorded_snapshots():
    """The real B3 answers shipped in the package (b3_dagster/recordings/b3_api, see its SOURCES.md), parsed by the
    project's own parser, as snapshots (oldest first)."""
    from b3_dagster.model import PortfolioSnapshot
    from b3_dagster.replay.b3_api import recorded_days
    from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame

    snapshots = []
    for recording in recorded_days():
        parsed = parse_page(recording.path.read_bytes(), page=1, language=recording.language)
        snapshots.append(PortfolioSnapshot(portfolio_date=parsed.portfolio_date, rows=rows_to_frame(parsed.rows),
                                           reductor=parsed.reductor,
                                           theoretical_qty_total=parsed.theoretical_qty_total,
                                           source=f"recording {recording.path.name}"))
    assert len(snapshots) >= 2, "the recorded B3 answers are missing from the package"
    return snapshots


@pytest.fixture(scope="session")
def recorded_snapshots():
    return load_recorded_snapshots()


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (one core) for the whole test session, configured like a small Glue worker."""
    pyspark_sql = pytest.importorskip("pyspark.sql")
    session = (pyspark_sql.SparkSession.builder.master("local[1]").appName("b3-dagster-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.host", "127.0.0.1")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
