import datetime as dt

import pytest

from b3_dagster.errors import NotARawPartition
from b3_dagster.storage.layout import (
    hive_escape,
    hive_unescape,
    parse_raw_key,
    raw_key,
)

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


def test_raw_keys():
    assert raw_key(dt.date(2025, 4, 7)) == "raw/date=2025-04-07/ibov_setor.parquet"
    assert parse_raw_key("raw/date=2025-04-07/anything.parquet") == dt.date(2025, 4, 7)


@pytest.mark.parametrize("key", ["refined/date=2025-04-07/x.parquet", "raw/2025-04-07/x.parquet",
                                 "raw/date=2025-4-7/x.parquet", "raw/date=2025-02-30/x.parquet",
                                 "raw/date=2025-04-07/x.csv", "raw/date=2025-04-07/sub/x.parquet"])
def test_bad_raw_keys_say_why(key):
    with pytest.raises(NotARawPartition, match=key.replace(".", r"\.").split("/")[0]):
        parse_raw_key(key)
