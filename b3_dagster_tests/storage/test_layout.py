import datetime as dt

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from b3_dagster.storage.layout import (
    NotARawPartition,
    hive_escape,
    hive_unescape,
    parquet_bytes,
    parse_raw_key,
    raw_key,
    refined_day_prefix,
    refined_relative_key,
    sector_from_relative_key,
)
from b3_dagster.storage.lake import LocalLake

REAL_SECTOR_LABELS = [  # as B3 writes them (see b3/SOURCES.md): slashes, double spaces, accents, commas
    "Bens Indls / Máqs e Equips",
    "Bens Indls/Transporte",
    "Petróleo/ Gás e Biocombustíveis",
    "Petróleo, Gás e Biocombustíveis",
    "Cons N  Básico / Alimentos Processados",
    "Tec.Informação/Programas Servs",
    "Bens Indls / M\ufffdqs e Equips",
    "50% = odd: case?",
]


@pytest.mark.parametrize("sector", REAL_SECTOR_LABELS)
def test_hive_escaping_round_trips_and_keeps_one_folder(sector):
    escaped = hive_escape(sector)
    assert "/" not in escaped and "=" not in escaped
    assert hive_unescape(escaped) == sector
    assert sector_from_relative_key(refined_relative_key(sector)) == sector


def test_duckdb_and_pyarrow_read_the_sector_names_back(lake_root):
    lake = LocalLake(lake_root)
    day = dt.date(2025, 4, 7)
    for number, sector in enumerate(REAL_SECTOR_LABELS):
        table = pa.table({"n": [number]})
        lake.write_bytes(refined_day_prefix(day) + refined_relative_key(sector), parquet_bytes(table))

    by_duckdb = duckdb.sql(f"SELECT Setor, n FROM read_parquet('{lake_root}/refined/**/*.parquet', "
                           "hive_partitioning = true) ORDER BY n").fetchall()
    assert [sector for sector, _ in by_duckdb] == REAL_SECTOR_LABELS

    dataset = ds.dataset(lake_root / "refined", format="parquet",
                         partitioning=ds.HivePartitioning.discover(segment_encoding="uri"))
    by_arrow = dataset.to_table().to_pandas().sort_values("n")
    assert list(by_arrow["Setor"]) == REAL_SECTOR_LABELS


def test_raw_keys():
    assert raw_key(dt.date(2025, 4, 7)) == "raw/date=2025-04-07/ibov_setor.parquet"
    assert parse_raw_key("raw/date=2025-04-07/anything.parquet") == dt.date(2025, 4, 7)


@pytest.mark.parametrize("key", ["refined/date=2025-04-07/x.parquet", "raw/2025-04-07/x.parquet",
                                 "raw/date=2025-4-7/x.parquet", "raw/date=2025-02-30/x.parquet",
                                 "raw/date=2025-04-07/x.csv", "raw/date=2025-04-07/sub/x.parquet"])
def test_bad_raw_keys_say_why(key):
    with pytest.raises(NotARawPartition, match=key.replace(".", r"\.").split("/")[0]):
        parse_raw_key(key)
