"""How ``BVSP_chart_1d_2022-01-03_2026-03-13.derived.json`` was made (kept so the derivation can be re-run and checked).

It re-shapes rows of a real recorded CSV (gitgbg1985/dash_ibov_test ``data/ibovespa.csv``, written by
``yf.Ticker("^BVSP").history()`` with prices rounded to 2 decimals) into the chart API's answer shape, so that the
local replay server can serve 2022-01..2026-03 for the demo. Nothing is invented: each bar's date, open, high, low,
close and volume are the CSV's; the stamp is 13:00 UTC of the date, as Yahoo stamps every ^BVSP daily bar in the
real chart recordings; ``meta`` holds only the constant fields copied from the real ^BVSP recording. ``adjclose`` is
left out (the CSV has none; for an index it equals close). The last CSV row (2026-03-13) is Yahoo's unfinalised bar
(fractional, volume 0), kept as recorded.

    python derive_chart_from_csv.py <csv> 2022-01-03 > BVSP_chart_1d_2022-01-03_2026-03-13.derived.json
"""

import csv
import datetime as dt
import json
import sys

META = {"currency": "BRL", "symbol": "^BVSP", "exchangeName": "SAO", "fullExchangeName": "São Paulo",
        "instrumentType": "INDEX", "gmtoffset": -10800, "timezone": "BRT",
        "exchangeTimezoneName": "America/Sao_Paulo", "dataGranularity": "1d"}


def main(path: str, start: str) -> None:
    with open(path, newline="", encoding="utf-8") as stream:
        rows = [row for row in csv.DictReader(stream) if row["date"] >= start]
    stamps = [int(dt.datetime.combine(dt.date.fromisoformat(r["date"]), dt.time(13), dt.timezone.utc).timestamp())
              for r in rows]
    quote = {name: [float(r[name]) for r in rows] for name in ("open", "high", "low", "close")}
    quote["volume"] = [int(r["volume"]) for r in rows]
    document = {
        "b3_dagster_provenance": {
            "kind": "derived",
            "from": "gitgbg1985/dash_ibov_test data/ibovespa.csv @ b40e80b7034a1d47dff3a1581f485088059de57b "
                    "(copy: shared/data/ibov_history/yahoo_csv/gitgbg1985-dash_ibov_test__ibovespa_1995-01-02_"
                    "2026-03-13.csv)",
            "how": "CSV rows re-shaped as a chart answer by derive_chart_from_csv.py; stamps 13:00 UTC; meta constants "
                   "copied from the real ^BVSP chart recording; no adjclose",
        },
        "chart": {"result": [{"meta": META, "timestamp": stamps, "indicators": {"quote": [quote]}}], "error": None},
    }
    json.dump(document, sys.stdout, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
