"""Which staged rows a table commit takes in a line of re-executed runs (``defs/shared/tables.py``)."""

from types import SimpleNamespace

from b3_dagster.defs.shared.tables import staged_prefix
from b3_dagster.storage import staging
from b3_dagster.storage.lake import LocalLake

DATASET = "ibov_sector_refined"


def line_of_runs(*runs: tuple[str, str | None]):
    """A step's context in the last of ``runs`` ((run_id, parent_run_id), root first), with an instance that knows
    them all."""
    by_id = {run_id: SimpleNamespace(run_id=run_id, parent_run_id=parent, root_run_id=runs[0][0] if parent else None)
             for run_id, parent in runs}
    instance = SimpleNamespace(get_run_by_id=by_id.get)
    return SimpleNamespace(run=by_id[runs[-1][0]], instance=instance)


def stage(lake: LocalLake, run_id: str) -> str:
    prefix = staging.run_prefix(DATASET, run_id)
    lake.write_bytes(f"{prefix}part-0.parquet", b"rows")
    return prefix


def test_a_commit_takes_the_newest_refine_of_its_line_not_the_roots(tmp_path):
    # r0 refined and failed its commit; r1 re-executed it, refined again and failed its commit; r2 and r3 re-executed
    # only the commit, each failing before r3
    lake = LocalLake(tmp_path)
    stage(lake, "r0")
    newest = stage(lake, "r1")
    context = line_of_runs(("r0", None), ("r1", "r0"), ("r2", "r1"), ("r3", "r2"))
    assert staged_prefix(context, DATASET, lake) == newest


def test_a_run_that_refined_commits_its_own_rows(tmp_path):
    lake = LocalLake(tmp_path)
    stage(lake, "r0")
    own = stage(lake, "r1")
    assert staged_prefix(line_of_runs(("r0", None), ("r1", "r0")), DATASET, lake) == own


def test_the_root_is_still_found_when_a_middle_run_was_deleted(tmp_path):
    lake = LocalLake(tmp_path)
    root = stage(lake, "r0")
    context = line_of_runs(("r0", None), ("r1", "r0"), ("r2", "r1"))
    context.instance = SimpleNamespace(get_run_by_id=lambda run_id: None)  # r1 deleted from the instance
    assert staged_prefix(context, DATASET, lake) == root


def test_with_nothing_staged_the_answer_is_the_runs_own_folder(tmp_path):
    lake = LocalLake(tmp_path)
    context = line_of_runs(("r0", None), ("r1", "r0"))
    assert staged_prefix(context, DATASET, lake) == staging.run_prefix(DATASET, "r1")
