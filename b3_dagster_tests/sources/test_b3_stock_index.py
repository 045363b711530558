"""B3's GetStockIndex (index membership): every shipped real answer parsed, the cassettes' bodies, and the client
over a local HTTP server (the membership against the portfolios: ``rules/test_indices.py``)."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from b3_dagster.errors import B3StockIndexError
from b3_dagster.model import INDEX_CODE, MEMBERSHIP_COLUMNS, MEMBERSHIP_DATE
from b3_dagster.sources.b3_format import decode_payload
from b3_dagster.sources.b3_stock_index import (
    ENDPOINT_PATH,
    B3StockIndexClient,
    body_from_cassette,
    parse_stock_index,
    stock_index_url,
)
from b3_dagster.sources.http import HttpPolicy

RECORDED = Path(str(resources.files("b3_dagster") / "recordings" / "b3_indices" / "json"))
CASSETTES = Path(__file__).parents[1] / "fixtures" / "b3_indices" / "cassettes"
# file -> (update, securities, distinct indices, members of IBOV, IBXX, SMLL, IDIV, IBRA, IFIX, IBXL)
ANSWERS = {
    "GetStockIndex_2022-05-13_rb3_extdata.json": ("2022-05-13", 660, 25, (92, 100, 139, 47, 212, 106, 50)),
    "GetStockIndex_2022-12-08_from_rb3_cassette.json": ("2022-12-08", 517, 26, (92, 100, 133, 52, 200, 107, 50)),
    "GetStockIndex_2025-04-07_from_rb3_cassette.json": ("2025-04-07", 537, 34, (87, 101, 120, 51, 175, 117, 50)),
}
COUNTED = ("IBOV", "IBXX", "SMLL", "IDIV", "IBRA", "IFIX", "IBXL")


def answer(name: str):
    return parse_stock_index((RECORDED / name).read_bytes(), name)


def test_every_shipped_answer_is_covered():
    assert {path.name for path in RECORDED.glob("*.json")} == set(ANSWERS)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_every_recorded_answer_parses_to_one_row_per_security_and_index(name):
    update, securities, indices, counts = ANSWERS[name]
    parsed = answer(name)
    document = json.loads((RECORDED / name).read_bytes())
    assert parsed.update == dt.date.fromisoformat(update) and parsed.securities == securities
    assert list(parsed.membership.columns) == MEMBERSHIP_COLUMNS
    assert set(parsed.membership[MEMBERSHIP_DATE]) == {parsed.update}
    assert len(parsed.indices()) == indices
    assert tuple(len(parsed.members(index)) for index in COUNTED) == counts
    expected_rows = sum(len([code for code in row["indexes"].split(",") if code]) for row in document["results"])
    assert len(parsed.membership) == expected_rows
    first = document["results"][0]
    mine = parsed.membership[parsed.membership["cod"] == first["code"]]
    assert sorted(mine[INDEX_CODE]) == sorted(first["indexes"].split(","))
    assert set(mine["spotlight"]) == {first["spotlight"].strip()}
    assert (parsed.start_month, parsed.end_month) == (document["header"]["startMonth"], document["header"]["endMonth"])


@pytest.mark.parametrize("date", ["2022-12-08", "2025-04-07"])
def test_extracted_bodies_equal_the_cassettes(date):
    body = body_from_cassette((CASSETTES / f"rb3_GetStockIndex_{date}.yml").read_text(encoding="utf-8"))
    assert body == (RECORDED / f"GetStockIndex_{date}_from_rb3_cassette.json").read_bytes()


def test_cassette_request_is_the_url_our_client_builds():
    document = yaml.safe_load((CASSETTES / "rb3_GetStockIndex_2025-04-07.yml").read_text(encoding="utf-8"))
    assert document["http_interactions"][0]["request"]["uri"] == stock_index_url()


def test_client_fetches_one_page_of_9999_over_http(httpserver):
    body = (RECORDED / "GetStockIndex_2025-04-07_from_rb3_cassette.json").read_bytes()
    httpserver.expect_request(stock_index_url("")).respond_with_data(
        body, content_type="application/json")
    raw, parsed = B3StockIndexClient(httpserver.url_for("").rstrip("/"), policy=HttpPolicy(retries=0)).fetch()
    assert raw == body and parsed.update == dt.date(2025, 4, 7)
    (request, _), = httpserver.log
    assert request.path.startswith(ENDPOINT_PATH)
    assert decode_payload(request.path.rsplit("/", 1)[1]) == {"pageNumber": 1, "pageSize": 9999}


def _altered(change) -> bytes:
    document = json.loads((RECORDED / "GetStockIndex_2025-04-07_from_rb3_cassette.json").read_bytes())
    change(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["results"][3].pop("indexes"), r"result #4, field 'indexes'.*missing"),
        (lambda d: d["results"][3].update(indexes=["IBOV"]), r"result #4.*comma-joined"),
        (lambda d: d["results"][3].update(indexes="IBOV,ibrx 100"), r"result #4.*not index codes"),
        (lambda d: d["results"][5].update(code=d["results"][4]["code"]), r"result #6.*already listed as result #5"),
        (lambda d: d["page"].update(totalRecords=600), r"totalRecords announces 600.*537"),
        (lambda d: d["header"].update(update="07/04/2025"), r"header.update"),
    ],
)
def test_a_damaged_answer_is_refused_naming_the_row_and_field(change, message):
    with pytest.raises(B3StockIndexError, match=message):
        parse_stock_index(_altered(change), "altered")


def test_a_security_in_no_index_is_counted_not_lost():
    parsed = parse_stock_index(_altered(lambda d: d["results"][0].update(indexes="")), "altered")
    first = json.loads((RECORDED / "GetStockIndex_2025-04-07_from_rb3_cassette.json").read_bytes())["results"][0]
    assert parsed.without_index == (first["code"],) and parsed.securities == 537
    assert first["code"] not in set(parsed.membership["cod"])


def test_recorded_answers_are_listed_by_their_update_date():
    from b3_dagster.sources.b3_stock_index import recorded_answers

    found = recorded_answers()
    assert sorted(found) == ["2022-05-13", "2022-12-08", "2025-04-07"]
    assert all(answer(path.name).update.isoformat() == day for day, path in found.items())
