"""deploy/aws/template.yaml: valid for cfn-lint (offline), consistent with the code, and least-privilege in the
sense that each role is allowed the calls the code really makes (recorded on moto) and the Glue job cannot touch
the raw or refined layers' writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from b3_dagster.storage.glue_job import SCRIPT_NAME, STAGING_PREFIX

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "template.yaml"


@pytest.fixture(scope="module")
def template():
    from cfnlint.decode import decode

    decoded, problems = decode(str(TEMPLATE))
    assert not problems
    return decoded


def _statements(template, role: str) -> list[dict]:
    return [statement for policy in template["Resources"][role]["Properties"]["Policies"]
            for statement in policy["PolicyDocument"]["Statement"]]


def _allowed(template, role: str) -> set[str]:
    actions = set()
    for statement in _statements(template, role):
        if statement["Effect"] == "Allow":
            value = statement["Action"]
            actions |= {value} if isinstance(value, str) else set(value)
    return actions


def _resources(statement) -> list[str]:
    value = statement["Resource"]
    items = value if isinstance(value, list) else [value]
    return [item["Fn::Sub"] if isinstance(item, dict) and "Fn::Sub" in item else str(item) for item in items]


def test_cfn_lint_passes_on_the_template(cfn_lint_findings):
    assert cfn_lint_findings["template"] == []


def test_cfn_lint_fails_on_a_broken_copy(cfn_lint_findings):
    assert any("Bogus" in finding for finding in cfn_lint_findings["broken"]), cfn_lint_findings["broken"]


def test_template_matches_the_code(template):
    resources = template["Resources"]
    job = resources["GlueJob"]["Properties"]
    assert job["Command"]["Name"] == "glueetl"
    assert job["Command"]["ScriptLocation"]["Fn::Sub"].endswith(f"/glue_jobs/{SCRIPT_NAME}")
    assert job["GlueVersion"] == "5.0"  # Spark 3.5 on Python 3.11, the line pyspark is pinned to in the tests
    assert "dagster-pipes" in job["DefaultArguments"]["--additional-python-modules"]
    rules = resources["LakeBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    prefixes = [rule["Prefix"]["Fn::Sub"] if isinstance(rule["Prefix"], dict) else rule["Prefix"] for rule in rules]
    assert "${LakePrefix}/" + STAGING_PREFIX.split("/")[0] + "/" in prefixes  # staging expires; raw never does
    assert not any("raw" in prefix or "refined" in prefix for prefix in prefixes)
    assert resources["LakeBucket"]["DeletionPolicy"] == "Retain"
    workgroup = resources["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert workgroup["EnforceWorkGroupConfiguration"] is True


def test_glue_job_role_reads_raw_and_writes_only_staging(template):
    writes = [resource for statement in _statements(template, "GlueJobRole") if statement["Effect"] == "Allow"
              for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
              if action in ("s3:PutObject", "s3:DeleteObject") for resource in _resources(statement)]
    assert writes and all("/staging/" in resource or "/dagster-pipes/" in resource for resource in writes)
    assert not any(action.startswith(("glue:", "athena:", "iam:")) for action in _allowed(template, "GlueJobRole"))
    for statement in _statements(template, "DagsterRunRole") + _statements(template, "GlueJobRole"):
        assert statement["Action"] != "*" and "*" not in _resources(statement) or \
            statement.get("Condition"), statement  # no unconditioned wildcard resource


def _s3_action(method: str, url: str) -> str:
    """The IAM action that authorises an S3 REST request (as pyarrow and boto3 send them)."""
    path, _, query = url.partition("?")
    is_object = path.count("/") >= 4 and not path.endswith("/") or "uploadId" in query or "uploads" in query
    if method in ("GET", "HEAD"):
        return "s3:GetObject" if is_object else "s3:ListBucket"
    if method == "DELETE" or (method == "POST" and "delete" in query):
        return "s3:DeleteObject"
    return "s3:PutObject"


def test_dagster_role_allows_every_call_the_aws_home_makes(template, bucket, aws_env, recorded_snapshots,
                                                           tmp_path, monkeypatch):
    """Record every AWS request of the AWS home on moto (raw writes through boto3, the Iceberg commits through
    pyiceberg's Glue catalog and pyarrow's S3 client, reads, maintenance) and check that the Dagster run role
    allows each one, on the lake prefix only."""
    import json

    import pyarrow as pa
    import requests

    from b3_dagster.storage import staging
    from b3_dagster.storage.lakes import lake_from_uri
    from b3_dagster.storage.portfolio_store import PortfolioStore, expected_refined
    from b3_dagster.storage.tables import INDEX_TABLE_DEF, PORTFOLIO_TABLE_DEF, connect, open_tables
    from b3_dagster.transforms.index_features import index_features
    from b3_dagster.transforms.sector_refine import refine_portfolio
    from b3_dagster_tests.helpers import bars

    monkeypatch.setenv("MOTO_RECORDER_FILEPATH", str(tmp_path / "moto_recording"))
    monkeypatch.chdir(tmp_path)  # where the recorder writes when it ignores the variable
    requests.post(f"{aws_env}/moto-api/recorder/reset-recording")
    requests.post(f"{aws_env}/moto-api/recorder/start-recording")
    try:
        lake = lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env)
        store = PortfolioStore(lake)
        tables = open_tables(lake, "glue", glue_database="b3_iam_check", region_name="us-east-1",
                             endpoint_url=aws_env)
        for run, snapshot in enumerate(recorded_snapshots * 2):  # each day twice: the overwrite path too
            store.write_raw(snapshot)
            prefix = staging.run_prefix("ibov_sector_refined", f"run-{run}")
            staging.write_rows(lake, prefix, pa.Table.from_pandas(
                refine_portfolio(snapshot.rows, dt.date(2025, 4, 8)), preserve_index=False))
            staging.write_expected(lake, prefix, expected_refined(snapshot.rows))
            staging.commit_staged(tables, PORTFOLIO_TABLE_DEF, prefix, [snapshot.portfolio_date.isoformat()])
        index = index_features(bars())
        tables.commit(INDEX_TABLE_DEF, pa.Table.from_pandas(index[INDEX_TABLE_DEF.schema.names]),
                      INDEX_TABLE_DEF.keys_of(pa.Table.from_pandas(index[INDEX_TABLE_DEF.schema.names])))
        connect(tables)
        tables.maintain(PORTFOLIO_TABLE_DEF, snapshot_retention=dt.timedelta(0), orphan_grace=dt.timedelta(0))
    finally:
        requests.post(f"{aws_env}/moto-api/recorder/stop-recording")
    recorded = [json.loads(line) for line in
                requests.get(f"{aws_env}/moto-api/recorder/download-recording").text.splitlines() if line]

    calls, written = set(), set()
    for request in recorded:
        target = request["headers"].get("X-Amz-Target", "")
        if target.startswith("AWSGlue."):
            calls.add("glue:" + target.split(".", 1)[1])
            continue
        path = request["url"].split("://", 1)[1].split("/", 1)[1].split("?")[0]
        if not path.startswith(bucket):
            continue
        action = _s3_action(request["method"], request["url"])
        calls.add(action)
        if action in ("s3:PutObject", "s3:DeleteObject") and path[len(bucket) + 1:]:  # DeleteObjects: keys in body
            written.add(path[len(bucket) + 1:])
    assert {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "glue:CreateTable", "glue:UpdateTable",
            "glue:GetTable"} <= calls, calls
    assert calls - _allowed(template, "DagsterRunRole") == set()
    assert written and all(key.startswith("lake/") for key in written), "writes stay under ${LakePrefix}/"
    assert any(key.startswith("lake/warehouse/b3_refined_db/ibov_refined/") for key in written)

    glue_statement = next(statement for statement in _statements(template, "DagsterRunRole")
                          if statement.get("Sid") == "GlueCatalog")
    glue_resources = _resources(glue_statement)
    assert any(resource.endswith(":database/${IndexGlueDatabaseName}") for resource in glue_resources)
    assert template["Parameters"]["IndexGlueDatabaseName"]["Default"] == INDEX_TABLE_DEF.database
    granted = set(glue_statement["Action"])
    assert granted == {call for call in calls if call.startswith("glue:")} | {"glue:GetDatabase", "glue:GetTables"}, \
        "the Glue grant is what the commits use (no partition actions: Iceberg keeps its own)"
