"""`b3-dagster query` on user SQL, in process (``cli.main(argv)``, as the console script calls it): an error is one line
that names the user's SQL, DuckDB's file access is locked, a table never committed is said so, a bad ``--as-of`` is one
clear line. The same command in a real process (time travel, `snapshots`) is tested in e2e/test_cli_tables.py."""

from dataclasses import dataclass

import pytest

from b3_dagster import cli as b3_cli


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def cli(capsys, lake, *args: str) -> Done:
    capsys.readouterr()  # what came before is not this command's
    code = b3_cli.main(["--lake", str(lake), *args])
    out, err = capsys.readouterr()
    return Done(code, out, err)


@pytest.fixture(autouse=True)
def no_settings_of_this_environment():
    """As the real-process tests run the command: none of the test environment's B3_* settings. The command sets its
    defaults (and --lake) in os.environ: the environment is put back as it was after each test."""
    import os

    saved = dict(os.environ)
    for name in [name for name in os.environ if name.startswith("B3_")]:
        del os.environ[name]
    yield
    os.environ.clear()
    os.environ.update(saved)


COUNT_DAYS = "SELECT COUNT(DISTINCT Data) AS days FROM default.tb_ibov_refined"


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELEC Setor FROM default.tb_ibov_refined", "'SELEC Setor FROM default.tb_ibov_refined'"),
    ("SELECT nope FROM default.tb_ibov_refined", "nope"),
    ("SELECT 1; SELECT 2", "expected one SQL statement"),
])
def test_query_errors_are_one_line_naming_the_users_sql(lake_root, two_commits, capsys, sql, expected):
    done = cli(capsys, lake_root, "query", sql)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("b3-dagster query: ") and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "SELEC AS" not in done.stderr


def test_query_cannot_write_or_read_files(lake_root, two_commits, tmp_path, capsys):
    target = tmp_path / "written-by-a-query"
    copy = cli(capsys, lake_root, "query", f"COPY (SELECT * FROM default.tb_ibov_refined) TO '{target}'")
    assert copy.returncode != 0 and "disabled by configuration" in copy.stderr and not target.exists()
    read = cli(capsys, lake_root, "query", "SELECT * FROM read_text('/etc/hostname')")
    assert read.returncode != 0 and "disabled by configuration" in read.stderr
    assert cli(capsys, lake_root, "query", COUNT_DAYS).returncode == 0, "the tables stay readable"


def test_a_table_never_committed_is_said_so_not_answered_as_an_empty_day(lake_root, two_commits, capsys):
    done = cli(capsys, lake_root, "query", "SELECT COUNT(*) AS n FROM b3_refined_db.ibov_refined")
    assert done.returncode == 0 and done.stdout.split() == ["n", "0"]
    assert "b3_refined_db.ibov_refined has no committed snapshot" in done.stderr
    assert "tb_ibov_refined" not in done.stderr, "only the tables the query names"
    # and the other way round: ibov_refined is the end of tb_ibov_refined's name, not a table this query names
    done = cli(capsys, lake_root, "query", COUNT_DAYS)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    quoted = cli(capsys, lake_root, "query", 'SELECT COUNT(*) AS n FROM "B3_REFINED_DB"."IBOV_REFINED"')
    assert "b3_refined_db.ibov_refined has no committed snapshot" in quoted.stderr


def test_a_bad_as_of_is_one_clear_line(lake_root, two_commits, capsys):
    done = cli(capsys, lake_root, "query", "--as-of", "last tuesday", COUNT_DAYS)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "neither a snapshot id nor an ISO timestamp" in done.stderr
