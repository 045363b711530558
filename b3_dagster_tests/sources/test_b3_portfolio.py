"""The real B3 client against a real local HTTP server answering with recorded B3 answers."""

import datetime as dt
import json
import math

import pytest
from werkzeug import Response

from b3_dagster.errors import B3ResponseError
from b3_dagster.replay.b3_api import answer
from b3_dagster.sources.b3_format import decode_payload, encode_payload, parse_decimal, parse_integer
from b3_dagster.sources.b3_portfolio import (
    B3PortfolioClient,
    portfolio_payload,
)
from b3_dagster.sources.http import HttpPolicy
from b3_dagster_tests.helpers import ENDPOINT


def client(base_url, language="pt-br", page_size=9999, retries=3):
    return B3PortfolioClient(base_url, page_size=page_size, language=language,
                             policy=HttpPolicy(request_timeout=5, fetch_deadline=20, retries=retries, backoff=0))


def recorded_rows(recording):
    return recording.document()["results"]


def test_payload_is_base64_json_in_the_url_path():
    payload = portfolio_payload(3, 20)
    assert payload == {"language": "pt-br", "pageNumber": 3, "pageSize": 20, "index": "IBOV", "segment": "2"}
    assert decode_payload(encode_payload(payload)) == payload
    assert "/indexProxy/indexCall/GetPortfolioDay/" in B3PortfolioClient("http://x").page_url(1)


@pytest.mark.parametrize(("date", "language"), [("2022-12-08", "pt-br"), ("2025-04-07", "en-us")])
def test_fetches_and_parses_a_recorded_day(serve_recording, recordings, date, language):
    recording = recordings[date]
    snapshot = client(serve_recording(recording), language=language).fetch()
    raw = recorded_rows(recording)
    header = recording.document()["header"]

    assert snapshot.portfolio_date == dt.date.fromisoformat(date)
    assert len(snapshot.rows) == len(raw) == recording.document()["page"]["totalRecords"]
    assert list(snapshot.rows["cod"]) == [row["cod"] for row in raw]
    assert snapshot.rows["part"].tolist() == [parse_decimal(row["part"], language) for row in raw]
    assert snapshot.rows["theoricalQty"].tolist() == [parse_integer(row["theoricalQty"], language) for row in raw]
    assert snapshot.theoretical_qty_total == parse_integer(header["theoricalQty"], language)
    assert snapshot.reductor == parse_decimal(header["reductor"], language)
    # padded fields are stripped at the ends only
    assert all(value == value.strip() for value in snapshot.rows["type"])
    assert any("  " in value for value in snapshot.rows["type"]), "inner padding of `type` must be kept"
    assert set(snapshot.rows["DataCarteira"]) == {snapshot.portfolio_date}


@pytest.mark.parametrize("page_size", [20, 29, 50, 91, 92])
def test_pagination_follows_pages_until_a_short_or_last_page(serve_recording, recordings, httpserver, page_size):
    recording = recordings["2022-12-08"]
    snapshot = client(serve_recording(recording), page_size=page_size).fetch()

    total = len(recorded_rows(recording))
    assert list(snapshot.rows["cod"]) == [row["cod"] for row in recorded_rows(recording)]
    requested_pages = [decode_payload(request.path.rsplit("/", 1)[1])["pageNumber"] for request, _ in httpserver.log]
    assert requested_pages == list(range(1, math.ceil(total / page_size) + 1))


def test_retries_server_errors_then_succeeds(httpserver, recordings):
    recording = recordings["2022-12-08"]
    calls = []

    def flaky(request):
        calls.append(request.path)
        if len(calls) <= 2:
            return Response("upstream error", status=500 if len(calls) == 1 else 429)
        status, body = answer(recording, request.path.rsplit("/", 1)[1])
        return Response(body, status=status, content_type="application/json")

    httpserver.expect_request(ENDPOINT).respond_with_handler(flaky)
    snapshot = client(httpserver.url_for("").rstrip("/")).fetch()
    assert len(calls) == 3
    assert len(snapshot.rows) == len(recorded_rows(recording))


def test_gives_up_with_a_clear_error_when_errors_persist(httpserver):
    httpserver.expect_request(ENDPOINT).respond_with_data("down", status=503)
    with pytest.raises(B3ResponseError, match=r"page 1.*HTTP 503"):
        client(httpserver.url_for("").rstrip("/"), retries=2).fetch()
    assert len(httpserver.log) == 3  # first try + 2 retries


def _serve_body(httpserver, body: bytes):
    httpserver.expect_request(ENDPOINT).respond_with_data(body, content_type="application/json")
    return httpserver.url_for("").rstrip("/")


def test_truncated_body_is_a_clear_error(httpserver, recordings):
    whole = recordings["2022-12-08"].path.read_bytes()
    base = _serve_body(httpserver, whole[: len(whole) // 2])
    with pytest.raises(B3ResponseError, match=r"page 1.*not valid JSON"):
        client(base).fetch()


def test_html_error_page_is_a_clear_error(httpserver):
    base = _serve_body(httpserver, b"<html><body>Service Unavailable</body></html>")
    with pytest.raises(B3ResponseError, match="not valid JSON"):
        client(base).fetch()


def _mutated(recording, change):
    document = recording.document()
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: [row.update(theoreticalQty=row.pop("theoricalQty")) for row in d["results"]],
         r"lacks 'theoricalQty' \(schema change\?\)"),
        (lambda d: d.update(results=[]), r"'results' is empty"),
        (lambda d: d.pop("header"), r"lacks 'header'"),
        (lambda d: d["header"].update(date="2022-12-08"), r"field 'header.date'"),
        (lambda d: d["header"].pop("date"), r"lacks 'date'"),
        (lambda d: d["results"][5].update(part="abc"), r"result #6 \(.+\): 'abc' is not a pt-br number"),
        (lambda d: d["results"][0].update(segment=""), r"empty sector"),
        (lambda d: d["results"][3].update(part="-0,250"), r"result #4 \(\w+\): part is -0.25, it must be greater"),
        (lambda d: d["results"][3].update(part="0,000"), r"result #4 \(\w+\): part is 0.0, it must be greater"),
        (lambda d: d["results"][7].update(theoricalQty="-1.000"),
         r"result #8 \(\w+\): theoricalQty is -1000, it must be greater"),
        (lambda d: d["results"][7].update(theoricalQty="0"), r"result #8 \(\w+\): theoricalQty is 0, it must be"),
    ],
    ids=["renamed-column", "empty-results", "no-header", "malformed-date", "missing-date", "bad-number",
         "empty-sector", "negative-weight", "zero-weight", "negative-quantity", "zero-quantity"],
)
def test_bad_answers_raise_one_clear_error_naming_page_and_field(serve_recording, recordings, change, message):
    recording = recordings["2022-12-08"]
    base = serve_recording(recording, mutate=lambda document: _mutated(recording, change))
    with pytest.raises(B3ResponseError, match=message) as raised:
        client(base).fetch()
    assert "page 1" in str(raised.value)


def test_a_new_portfolio_published_mid_download_is_refused(httpserver, recordings):
    recording = recordings["2022-12-08"]

    def handler(request):
        token = request.path.rsplit("/", 1)[1]
        document = recording.document()
        if decode_payload(token)["pageNumber"] == 2:
            document["header"]["date"] = "09/12/22"
        status, body = answer(recording, token, document)
        return Response(body, status=status, content_type="application/json")

    httpserver.expect_request(ENDPOINT).respond_with_handler(handler)
    with pytest.raises(B3ResponseError, match="mid-download"):
        client(httpserver.url_for("").rstrip("/"), page_size=50).fetch()


def test_unparseable_reductor_is_a_warning_not_a_failure(serve_recording, recordings):
    recording = recordings["2022-12-08"]
    base = serve_recording(recording, mutate=lambda d: _mutated(recording, lambda x: x["header"].update(
        reductor="18.296.803,37677573,1")))
    snapshot = client(base).fetch()
    assert snapshot.reductor is None
    assert any("reductor" in warning for warning in snapshot.warnings)
    assert len(snapshot.rows) == len(recorded_rows(recording))


def test_recording_is_valid_json_as_served(recordings):
    # The replay re-serialises the recording; the bytes must still parse to the same rows.
    recording = recordings["2025-04-07"]
    status, body = answer(recording, encode_payload(portfolio_payload(1, 9999, "en-us")))
    assert status == 200
    assert json.loads(body)["results"] == recorded_rows(recording)


@pytest.mark.parametrize(
    ("change", "message"),
    [(lambda d: d["page"].update(totalRecords=len(d["results"]) + 8), r"announces \d+ records but 1 page"),
     (lambda d: d.update(results={"cod": "X"}), r"'results' is dict, not a list"),
     (lambda d: d.update(header=None), r"'header' is not an object")],
    ids=["page-metadata-disagrees", "results-not-a-list", "null-header"],
)
def test_malformed_documents_are_refused(httpserver, recordings, change, message):
    document = recordings["2022-12-08"].document()
    change(document)
    base = _serve_body(httpserver, json.dumps(document).encode())
    with pytest.raises(B3ResponseError, match=message):
        client(base).fetch()


@pytest.mark.parametrize("index", ["IBOV", "IBXX", "SMLL"])
def test_the_index_code_travels_in_the_payload(index):
    payload = decode_payload(B3PortfolioClient("http://x", index=index).page_url(1).rsplit("/", 1)[1])
    assert payload["index"] == index


def test_the_index_parameter_is_sent_and_answered_with_the_real_ibov_recording(serve_recording, recordings,
                                                                                httpserver):
    """The client's ``index`` against the replay of a real answer. No recorded GetPortfolioDay answer for an index
    other than IBOV exists anywhere we could find (see ../shared/data/b3_indices/SOURCES.md), so the real IBOV
    answer is what is served: asked for IBOV, the replay answers it; asked for IBXX, the replay (which holds only
    IBOV) refuses, and the client reports that error; in both cases the request carried the index code asked for."""
    recording = recordings["2025-04-07"]
    base = serve_recording(recording)
    snapshot = B3PortfolioClient(base, page_size=9999, language="en-us", index="IBOV",
                                 policy=HttpPolicy(request_timeout=5, retries=0)).fetch()
    assert len(snapshot.rows) == len(recorded_rows(recording))
    assert '"index": "IBOV"' in snapshot.source
    with pytest.raises(B3ResponseError, match=r"HTTP 404.*IBOV segment 2.*asked for.*IBXX"):
        B3PortfolioClient(base, page_size=9999, language="en-us", index="IBXX",
                          policy=HttpPolicy(request_timeout=5, retries=0)).fetch()
    sent = [decode_payload(request.path.rsplit("/", 1)[1])["index"] for request, _ in httpserver.log]
    assert sent == ["IBOV", "IBXX"]
