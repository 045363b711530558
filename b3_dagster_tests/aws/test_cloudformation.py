"""deploy/aws/template.yaml: valid for cfn-lint (offline), consistent with the code, and least-privilege in the
sense that each role is allowed the calls the code really makes (recorded on moto) and the Glue job cannot touch
the raw or refined layers' writes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from b3_dagster.storage.glue_job import SCRIPT_NAME, STAGING_PREFIX

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "template.yaml"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True, timeout=300)


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


def test_cfn_lint_passes_on_the_template():
    result = _lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_fails_on_a_broken_copy(tmp_path):
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("GlueVersion: \"5.0\"", "GlueVersion: 5.0\n      Bogus: 1"))
    assert _lint(broken).returncode != 0


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


# S3 operations -> the IAM action that authorises them
_S3_ACTION = {"ListObjectsV2": "s3:ListBucket", "HeadObject": "s3:GetObject", "DeleteObjects": "s3:DeleteObject"}


def test_dagster_role_allows_every_call_the_aws_home_makes(template, bucket, aws_env, recorded_snapshots):
    """Record the AWS operations of a real publish on moto (S3 lake + Glue catalog) and check that the Dagster
    run role allows each of them."""
    from b3_dagster.storage.glue_catalog import GlueAthenaCatalog
    from b3_dagster.storage.lake import lake_from_uri
    from b3_dagster.storage.portfolio_store import PortfolioStore, portfolio_table_spec, publish_portfolio_day
    from b3_dagster.transforms.sectors import refine_portfolio

    calls: set[str] = set()

    def record(event_name, **kwargs):
        _, service, operation = event_name.split(".")
        calls.add(_S3_ACTION.get(operation, f"{service}:{operation}") if service == "s3" else
                  f"{service}:{operation}")

    store = PortfolioStore(lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env))
    store.lake.client.meta.events.register("before-call.*.*", record)
    catalog = GlueAthenaCatalog(lake=store.lake, database="b3_iam_check", endpoint_url=aws_env)
    catalog.glue.meta.events.register("before-call.*.*", record)
    for snapshot in recorded_snapshots:
        store.write_raw(snapshot)
        store.write_refined(snapshot.portfolio_date, refine_portfolio(snapshot.rows, dt.date(2025, 4, 8)))
        publish_portfolio_day(store, catalog, snapshot.portfolio_date)
        publish_portfolio_day(store, catalog, snapshot.portfolio_date)  # the update path too
    catalog.partitions(portfolio_table_spec())
    from b3_dagster.storage.catalog import PublishedPartition
    from b3_dagster.storage.index_store import index_table_spec

    catalog.publish(index_table_spec(), None, {"year": 2025, "month": 4},
                    [PublishedPartition((2025, 4), store.lake.uri("refined/ibov_index/year=2025/month=4/"))])
    glue_resources = [resource for statement in _statements(template, "DagsterRunRole")
                      if statement.get("Sid") == "GlueCatalog" for resource in _resources(statement)]
    assert any(resource.endswith(":database/${IndexGlueDatabaseName}") for resource in glue_resources)
    assert template["Parameters"]["IndexGlueDatabaseName"]["Default"] == index_table_spec().database

    assert {"s3:PutObject", "glue:CreateTable", "glue:BatchCreatePartition"} <= calls
    assert calls - _allowed(template, "DagsterRunRole") == set()
