"""The README's first command, for real: `b3-dagster demo` in a subprocess on an empty lake, then the table is
queried from outside. And the code location loads as `dagster dev` would load it."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
import pytest

from b3_dagster_tests.helpers import b3_dagster_command

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_runs_the_chain_end_to_end_offline(demo_run, query_tables):
    # the demo's first run on an empty lake and a fresh DAGSTER_HOME is the shared fixture (conftest.py): the UI test
    # reads the same lake and instance
    tmp_path, lake, env, done = demo_run.root, demo_run.lake, demo_run.env, demo_run.done
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_clean(done.stdout + done.stderr)
    assert done.stderr == "", "everything the demo says is on stdout, once"
    assert f"Apache Iceberg, Iceberg SQL catalog {lake / 'iceberg_catalog.db'}" in done.stdout
    assert "total_participacao" in done.stdout
    assert "skipped: raw_snapshot_on_time (demo lake" in done.stdout
    assert (tmp_path / "home" / "dagster.yaml").read_text().count("enabled: false") == 1

    asked = subprocess.run([*b3_dagster_command(), "--lake", str(lake), "query", "SELECT COUNT(*) AS n FROM default.tb_ibov_refined"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert asked.returncode == 0 and asked.stderr == "", asked.stderr[-2000:]
    assert asked.stdout.split()[0] == "n", "the answer is the first thing printed"

    raw_days = sorted(p.name for p in (lake / "raw").glob("date=*"))
    assert "date=2022-12-08" in raw_days and "date=2025-04-07" in raw_days and len(raw_days) >= 5
    by_day = query_tables(lake, "SELECT Data, SUM(soma_part) AS part, SUM(total_codigo) AS tickers "
                                "FROM default.tb_ibov_refined GROUP BY Data ORDER BY Data")
    assert len(by_day) == len(raw_days)
    assert by_day["part"].between(99.99, 100.01).all()
    index = query_tables(lake, 'SELECT COUNT(*) AS n FROM "b3_refined_db"."ibov_refined"')
    assert index["n"].iloc[0] > 200
    charts = sorted(p.name for p in (lake / "charts").glob("*.png"))
    assert charts == ["ibov_anomalies.png", "ibov_close_moving_averages.png", "ibov_sector_participation.png",
                      "ibov_sector_weights.png"]
    # every shipped download (2022-12..2026-03) in the table, one row per canonical subsector, never B3's damaged text
    assert len(raw_days) == 25 and raw_days[0] == "date=2022-12-08" and raw_days[-1] == "date=2026-03-24"
    from b3_dagster.cli import SEED_000_QUERIES

    by_sector = query_tables(lake, SEED_000_QUERIES["Participação por setor"])
    subsectors = query_tables(lake, "SELECT COUNT(DISTINCT (setor_economico, subsetor)) AS n "
                                    "FROM default.tb_ibov_refined")
    assert len(by_sector) == subsectors["n"].iloc[0] and not by_sector["Setor"].str.contains("\ufffd").any()
    assert "ONE run over 2022-12-08..2026-03-24" in done.stdout
    # the 25 days with raw are marked refined and committed (2 x 25), not the ~800 sessions between them
    assert "ibov_refine_job 2022-12-08..2026-03-24: ok, 50 materialisation(s); 7 checks passed" in done.stdout
    assert "  23 downloads: 23 written (portfolios of 2023-01-17..2026-03-24)" in done.stdout, "one line per batch"
    # issue 14: B3's official IBOV closes from the replayed grids and downloads, two other indices' portfolios from
    # their real downloads, membership compared with the IBOV portfolios of the same days, the anomaly table
    closes = query_tables(lake, "SELECT year(data) AS ano, count(*) AS n FROM b3_refined_db.index_closes "
                                "WHERE indice = 'IBOV' GROUP BY 1 ORDER BY 1")
    assert dict(zip(closes["ano"], closes["n"])) == {1968: 246, 1997: 249, 1998: 246, 2021: 161, 2022: 250}
    others = query_tables(lake, "SELECT DISTINCT indice FROM b3_refined_db.index_portfolios ORDER BY 1")
    assert others["indice"].tolist() == ["IBOV", "IBRA", "IBXX"]  # IBOV from GetPortfolioDay (dia x indice keys)
    assert "index_membership_table_job : ok, 1 materialisation(s); 1 checks passed" in done.stdout
    assert "index_closes_job : ok, 1 materialisation(s); 3 checks passed; skipped: yahoo_reconciles_with_b3" \
        in done.stdout
    anomalies = query_tables(lake, "SELECT count(*) AS n, sum(anomalia) AS flagged FROM b3_refined_db.ibov_anomalies")
    assert anomalies["n"].iloc[0] > 250 and anomalies["flagged"].iloc[0] >= 1
    assert all((lake / "charts" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in charts)

    again = subprocess.run([*b3_dagster_command(), "--lake", str(lake), "demo"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "23 downloads: 23 unchanged" in again.stdout, "a second demo finds the raw partitions identical, keeps them"
    assert again.stderr == "" and "replaced" not in again.stdout, "nothing is archived and written again"

    # what the first `dagster dev` after the demo would do: raw_partition_sensor on the demo's instance, fresh cursor
    from b3_dagster.defs.automation.sensors import raw_partition_sensor
    from b3_dagster.defs.resources import LakeResource
    from b3_dagster.definitions import defs

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "home"))) as instance:
        raw = {record.partition_key for record in instance.fetch_materializations(
            dg.AssetKey("ibov_raw_snapshot"), limit=1000).records}
        assert {f"date={day}" for day in raw} == set(raw_days), "every raw day is recorded as a materialisation"
        context = dg.build_sensor_context(instance=instance, definitions=defs,
                                          resources={"lake": LakeResource(root=str(lake))})
        tick = raw_partition_sensor(context)
        assert tick.run_requests == [] and tick.asset_events == [], "no refine of the demo's own days"


def assert_clean(output: str) -> None:
    """What a new user reads: no warnings, no traceback, no failure, no telemetry banner."""
    for bad in ("Warning", "Traceback", "failed", "FAILED", "Telemetry", "No dagster instance configuration"):
        assert bad not in output, f"{bad!r} in the output:\n{output[:3000]}"


def test_the_definitions_are_loadable():
    """The quick, in-process half of the check below (the subprocess costs ~10 s: it runs with the slow tests)."""
    from b3_dagster.definitions import defs

    dg.Definitions.validate_loadable(defs)


@pytest.mark.slow
def test_the_code_location_loads_as_dagster_dev_loads_it():
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run([str(dagster), "definitions", "validate", "-w", str(PROJECT / "workspace.yaml")],
                          cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Validation successful" in done.stdout + done.stderr
