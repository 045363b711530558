"""The shipped production configuration: valid for Dagster, secrets only from the environment, and the one-host and
ECS instance files identical except where they must differ."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

REPO = Path(__file__).resolve().parents[2]
ONE_HOST = REPO / "deploy" / "dagster.yaml"
ECS = REPO / "deploy" / "aws" / "dagster.yaml"
PG_ENV = {"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5433", "DAGSTER_PG_DB": "dagster",
          "DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": "s3cret", "DAGSTER_MAX_CONCURRENT_RUNS": "3",
          "B3_COMPUTE_LOGS_BUCKET": "logs-bucket"}


@pytest.mark.parametrize("path", [ONE_HOST, ECS], ids=["one-host", "ecs"])
def test_instance_file_is_valid_and_reads_connection_from_the_environment(path, tmp_path, monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_bytes(path.read_bytes())
    config, _ = dagster_instance_config(str(tmp_path))
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["hostname"] == {"env": "DAGSTER_PG_HOST"} and db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert "s3cret" not in path.read_text() and not re.search(r"password:\s*[^{\s]", path.read_text())
    coordinator = config["run_coordinator"]["config"]
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in \
        coordinator["tag_concurrency_limits"]
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["max_runtime_seconds"] > 0
    assert config["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    assert config["retention"]["sensor"]["purge_after_days"]["skipped"] > 0


def test_ecs_file_differs_only_in_launcher_and_compute_logs():
    one_host, ecs = yaml.safe_load(ONE_HOST.read_text()), yaml.safe_load(ECS.read_text())
    assert ecs["run_launcher"]["class"] == "EcsRunLauncher" and one_host["run_launcher"]["class"] == \
        "DefaultRunLauncher"
    for document in (one_host, ecs):
        document.pop("run_launcher")
        document.pop("compute_logs", None)
    assert ecs == one_host


def test_start_script_refuses_a_home_without_dagster_yaml(tmp_path):
    result = subprocess.run([str(REPO / "deploy" / "start.sh"), "daemon"], env={"DAGSTER_HOME": str(tmp_path),
                            "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 2 and "no dagster.yaml" in result.stderr
    result = subprocess.run([str(REPO / "deploy" / "start.sh"), "nonsense"], capture_output=True, text=True,
                            env={"DAGSTER_HOME": str(ONE_HOST.parent), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "usage" in result.stderr


@pytest.mark.slow  # cfn-lint in a real process, 3.4 s (measured 2026-11-30, --durations=0)
def test_production_cloudformation_template_passes_cfn_lint(cfn_lint_findings):
    assert cfn_lint_findings["production"] == []


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags: ``!Ref x`` -> ``{"Ref": x}``, ``!Equals [...]`` ->
    ``{"Fn::Equals": [...]}``."""


def _short_tag(loader, suffix, node):
    value = (loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else
             loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode) else
             loader.construct_mapping(node, deep=True))
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _short_tag)


def _evaluate(expression, parameters: dict):
    """The rule functions the template uses (Fn::Or, Fn::Not, Fn::Equals, Ref), on given parameter values."""
    if not isinstance(expression, dict):
        return expression
    [(function, argument)] = expression.items()
    if function == "Ref":
        return parameters[argument]
    values = [_evaluate(item, parameters) for item in argument]
    return {"Fn::Or": lambda: any(values), "Fn::Not": lambda: not values[0],
            "Fn::Equals": lambda: values[0] == values[1]}[function]()


@pytest.mark.parametrize(("ui_parameters", "allowed"), [
    ({}, False),  # neither: the UI, which has no login, would be opened to a default range
    ({"UiAllowedCidr": "0.0.0.0/0"}, False),
    ({"UiAllowedCidr": "10.20.0.0/16"}, True),
    ({"UiLoadBalancerSecurityGroupId": "sg-0123abcd"}, True),
], ids=["nothing", "internet", "cidr", "load-balancer"])
def test_production_stack_opens_the_ui_only_when_told_whom_to(ui_parameters, allowed):
    template = yaml.load((REPO / "deploy" / "aws" / "production.yaml").read_text(), Loader=_CloudFormationLoader)
    parameters = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    assert parameters["UiAllowedCidr"] == "" and parameters["UiLoadBalancerSecurityGroupId"] == ""
    parameters.update(ui_parameters)
    assertions = [a["Assert"] for rule in template.get("Rules", {}).values() for a in rule["Assertions"]]
    assert assertions, "the template has rules on the UI parameters"
    assert all(_evaluate(assertion, parameters) for assertion in assertions) == allowed
    # no ingress to the webserver is unconditional
    resources = template["Resources"]
    assert "SecurityGroupIngress" not in resources["TaskSecurityGroup"]["Properties"]
    for name, resource in resources.items():
        if resource["Type"] == "AWS::EC2::SecurityGroupIngress" and resource["Properties"].get("FromPort") == 3000:
            assert resource.get("Condition") in template["Conditions"], name


def test_the_table_commits_share_one_pool_limited_to_one_step_across_runs(tmp_path):
    """The production limit covers range runs: every table-writing step is in the pool, and the shipped instance
    file limits each pool to one step. Shown with a real run: while another run holds the pool's slot, the
    maintenance step waits ("blocked"), and it runs once the slot is freed."""
    import threading
    import time

    import dagster as dg

    from b3_dagster.defs.index.assets import index_refine_and_commit
    from b3_dagster.defs.portfolio.assets import sector_refine_and_commit
    from b3_dagster.defs.resources import CatalogResource, LakeResource
    from b3_dagster.defs.shared.tables import TABLE_POOL
    from b3_dagster.defs.maintenance.jobs import maintain_tables, table_maintenance_job

    assert sector_refine_and_commit.op.pool == index_refine_and_commit.op.pool == maintain_tables.pool == TABLE_POOL
    from b3_dagster.definitions import defs as shipped

    table_writers = {spec.key.to_user_string(): asset.op.pool for asset in shipped.assets for spec in asset.specs
                     if "iceberg" in spec.kinds}
    assert len(table_writers) >= 7 and set(table_writers.values()) == {TABLE_POOL}, table_writers
    for path in (ONE_HOST, ECS):
        assert yaml.safe_load(path.read_text())["concurrency"] == {"default_op_concurrency_limit": 1}

    concurrency = yaml.safe_load(ONE_HOST.read_text())["concurrency"]
    # No capture of the step's stdout/stderr: in process, Dagster tees the worker's own file descriptors through a
    # child process and, inside a pytest-xdist worker of the full suite, waited 60 s for it at the end of the step
    # ("Exception while cleaning up compute log capture"). What this test shows is the pool, not the log capture.
    no_log_capture = {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}
    with dg.instance_for_test(temp_dir=str(tmp_path),
                              overrides={"concurrency": concurrency, "compute_logs": no_log_capture}) as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(TABLE_POOL)
        assert storage.get_concurrency_info(TABLE_POOL).slot_count == 1
        storage.claim_concurrency_slot(TABLE_POOL, "a-range-run-committing", "ibov_sector_refined")
        defs = dg.Definitions(jobs=[table_maintenance_job], resources={
            "catalog": CatalogResource(lake=LakeResource(root=str(tmp_path / "lake")))})
        results = []
        worker = threading.Thread(target=lambda: results.append(
            defs.resolve_job_def("table_maintenance_job").execute_in_process(instance=instance)))
        worker.start()
        blocked = False
        for _ in range(600):  # bounded wait for the engine to report the step blocked
            runs = instance.get_runs()
            if runs and any("blocked by limit for pool iceberg_tables" in (e.message or "")
                            for e in instance.all_logs(runs[0].run_id)):
                blocked = True
                break
            time.sleep(0.1)
        assert blocked and not results, "the step waits while another run holds the pool"
        storage.free_concurrency_slots_for_run("a-range-run-committing")
        worker.join(120)
        assert results and results[0].success
