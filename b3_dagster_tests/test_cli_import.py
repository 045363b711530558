"""`b3-dagster import-csv` records each imported raw day in the Dagster instance of DAGSTER_HOME, as the raw asset
would have (rows, path, preview, object key and version, the raw checks), once per object."""

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from b3_dagster.settings import LOCAL_DEFAULTS
from b3_dagster import cli
from b3_dagster.replay.b3_api import recordings_dir

SECTOR_CSVS = sorted((recordings_dir().parent / "b3_csv").glob("*.csv"))


@pytest.fixture(autouse=True)
def restored_settings(monkeypatch):
    """The command sets the local defaults in os.environ: set them through monkeypatch so they are undone after."""
    for name, value in LOCAL_DEFAULTS.items():
        monkeypatch.setenv(name, value)


def test_import_csv_records_each_day_in_the_instance_once(tmp_path, monkeypatch, capsys):
    home, lake = tmp_path / "home", tmp_path / "data"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert cli.main(["--lake", str(lake), "import-csv", *map(str, SECTOR_CSVS)]) == 0
    assert f"3 day(s) recorded in the Dagster instance at {home}" in capsys.readouterr().out
    assert "enabled: false" in (home / "dagster.yaml").read_text(), "no telemetry banner on a fresh home"

    assert cli.main(["--lake", str(lake), "import-csv", *map(str, SECTOR_CSVS)]) == 0
    assert "0 day(s) recorded" in capsys.readouterr().out, "identical files: nothing new to record"

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        records = instance.fetch_materializations(dg.AssetKey("ibov_raw_snapshot"), limit=10).records
        assert sorted(r.partition_key for r in records) == ["2023-01-17", "2024-07-10", "2024-07-26"]
        metadata = records[0].asset_materialization.metadata
        assert metadata["source"].value == "b3-dagster import-csv"
        assert metadata["dagster/row_count"].value > 80
        assert metadata["object_key"].value == f"raw/date={records[0].partition_key}/ibov_setor.parquet"
        assert metadata["object_version"].value and "|" in metadata["preview"].value
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("ibov_raw_snapshot"), "weights_sum_to_100")])
        assert check, "the raw rules' verdicts are recorded with the import"


def test_import_csv_without_dagster_home_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli.main(["--lake", str(tmp_path / "data"), "import-csv", str(SECTOR_CSVS[0])]) == 0
    assert "DAGSTER_HOME is not set" in capsys.readouterr().out


@pytest.mark.parametrize(("home", "command"), [("relative", ["import-csv", str(SECTOR_CSVS[0])]),
                                               ("relative", ["demo"]),
                                               ("a file", ["import-csv", str(SECTOR_CSVS[0])])])
def test_a_dagster_home_that_is_not_an_absolute_folder_is_refused_before_anything_is_written(
        tmp_path, monkeypatch, capsys, home, command):
    monkeypatch.chdir(tmp_path)
    value = "dagster_home"
    if home == "a file":
        (tmp_path / value).write_text("not a folder")
        value = str(tmp_path / value)
    monkeypatch.setenv("DAGSTER_HOME", value)
    monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)  # the demo sets it
    assert cli.main(["--lake", str(tmp_path / "data"), *command]) == 1
    assert f"b3-dagster {command[0]}: DAGSTER_HOME={value!r}: expected an absolute path to a folder" in \
        capsys.readouterr().err
    assert not (tmp_path / "data").exists()
    if home == "a file":
        assert (tmp_path / "dagster_home").read_text() == "not a folder"
    else:
        assert not (tmp_path / "dagster_home").exists()


def test_a_failed_run_of_the_demo_is_one_line_with_the_steps_own_error():
    # the runs' console is at CRITICAL (B3_LOG_LEVEL), so Dagster prints no stack trace: the demo's line must carry
    # the error the step raised, not Dagster's wrapper ("Error occurred while executing op ...")
    @dg.asset
    def unserved():
        raise ValueError("B3 served no portfolio for 2022-12-09")

    defs = dg.Definitions(assets=[unserved], jobs=[dg.define_asset_job("unserved_job", [unserved])])
    with pytest.raises(SystemExit) as stopped:
        cli.run_job(defs, "unserved_job", dg.DagsterInstance.ephemeral())
    assert str(stopped.value) == "unserved_job  failed: ValueError: B3 served no portfolio for 2022-12-09"
