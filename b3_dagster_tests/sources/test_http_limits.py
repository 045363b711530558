"""Deadlines, the size cap and network errors of both clients (B3 and Yahoo), against real local servers.

Each hostile server is a real socket on 127.0.0.1: one drips its body (or its headers) one byte at a time, one
answers 429 with ``Retry-After: 300``, one streams an endless body, and a closed port refuses connections. The
deadlines are small (a second or two) so each test ends within a few seconds; no test asserts a duration, only that
the fetch ended with the error that names its cause.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading

import pytest
from werkzeug import Response

from b3_dagster.errors import B3ResponseError, B3Unreachable, YahooUnreachable
from b3_dagster.sources.b3_portfolio import B3PortfolioClient
from b3_dagster.sources.http import HttpPolicy
from b3_dagster.sources.yahoo_chart import YahooChartClient

FAST = dict(request_timeout=1.0, fetch_deadline=2.0, backoff=0.0)


def fetch_b3(base_url: str, **policy) -> None:
    B3PortfolioClient(base_url, policy=HttpPolicy(**{"retries": 2, **FAST, **policy})).fetch()


def fetch_yahoo(base_url: str, **policy) -> None:
    YahooChartClient(base_url, policy=HttpPolicy(**{"retries": 2, **FAST, **policy})).fetch_daily(
        dt.date(2026, 9, 14), dt.date(2026, 9, 18))


CLIENTS = [pytest.param(fetch_b3, B3Unreachable, id="b3"), pytest.param(fetch_yahoo, YahooUnreachable, id="yahoo")]


class RawServer:
    """A one-port TCP server that answers every connection with ``respond(connection)`` in its own thread."""

    def __init__(self, respond):
        self.respond = respond
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(4096)
                self.respond(connection, self.stop)
            except OSError:  # the client gave up and closed: what these servers are for
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def raw_server():
    servers = []

    def start(respond) -> RawServer:
        servers.append(RawServer(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def drip(data: bytes, connection: socket.socket, stop: threading.Event, interval: float = 0.05) -> None:
    for byte in data:
        if stop.wait(interval):
            return
        connection.sendall(bytes([byte]))


def drip_body(connection, stop) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    drip(b'{"header": ' + b" " * 99_000, connection, stop)


def drip_headers(connection, stop) -> None:
    drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Slow: " + b"a" * 5000, connection, stop)


def endless_body(connection, stop) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"[" + b"0," * 32_000
    while not stop.is_set():
        connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))


@pytest.mark.parametrize(("fetch", "error_type"), CLIENTS)
@pytest.mark.parametrize("respond", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_dripping_server_is_cut_off_by_the_deadline(raw_server, fetch, error_type, respond):
    server = raw_server(respond)
    with pytest.raises(error_type, match=r"deadline of 1 s ended it") as raised:
        fetch(server.base_url, request_timeout=0.5, fetch_deadline=1.0)  # a byte every 0.05 s: each read succeeds
    assert "nothing was written" in str(raised.value)


@pytest.mark.parametrize(("fetch", "error_type"), CLIENTS)
def test_a_retry_after_beyond_the_deadline_ends_the_fetch_at_once(httpserver, fetch, error_type):
    httpserver.expect_request("").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "300"}))
    base_url = httpserver.url_for("").rstrip("/")
    with pytest.raises(error_type, match=r"deadline of 2 s ended it after 1 request\(s\): HTTP 429; the server's "
                                         r"Retry-After: 300 asks to wait 300 s"):
        fetch(base_url, fetch_deadline=2.0)
    assert len(httpserver.log) == 1  # it did not sleep and ask again


@pytest.mark.parametrize(("fetch", "error_type"), CLIENTS)
def test_a_body_past_the_cap_is_refused(raw_server, fetch, error_type):
    server = raw_server(endless_body)
    with pytest.raises(error_type, match=r"larger than the cap of 100,000 bytes"):
        fetch(server.base_url, max_bytes=100_000, fetch_deadline=20, request_timeout=10)


@pytest.mark.parametrize(("fetch", "error_type"), CLIENTS)
def test_an_announced_body_past_the_cap_is_refused_unread(httpserver, fetch, error_type):
    httpserver.expect_request("").respond_with_data(b"x" * 200_001, content_type="application/json")
    with pytest.raises(error_type, match=r"announces 200,001 bytes, more than the cap of 200,000"):
        fetch(httpserver.url_for("").rstrip("/"), max_bytes=200_000)


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


def test_a_refused_connection_is_a_network_error_naming_host_retries_and_next_step():
    port = closed_port()
    with pytest.raises(B3Unreachable) as raised:
        fetch_b3(f"http://127.0.0.1:{port}", retries=2)
    first_line, *rest = str(raised.value).splitlines()
    assert f"B3 could not be reached (127.0.0.1:{port} could not be reached: connection refused" in first_line
    assert "3 attempts: 1 + 2 retries" in first_line
    assert "nothing was written" in first_line and "B3_BASE_URL" in first_line
    assert "before B3 replaces this session's portfolio" in first_line
    assert "GetPortfolioDay" not in first_line  # the base64 request URL is kept off the first line ...
    assert rest and "GetPortfolioDay" in rest[-1]  # ... and shown after it
    assert not isinstance(raised.value, B3ResponseError), "nothing answered: not 'an unusable answer'"
    assert raised.value.attempts == 3


def test_a_host_that_does_not_resolve_is_a_network_error():
    with pytest.raises(B3Unreachable, match=r"b3-dagster\.invalid could not be reached: the host name does not "
                                            r"resolve \(DNS\) \(1 attempt, no retries configured\)"):
        fetch_b3("http://b3-dagster.invalid", retries=0)


def test_yahoo_network_error_names_the_host_and_its_setting():
    port = closed_port()
    with pytest.raises(YahooUnreachable, match=rf"127\.0\.0\.1:{port} could not be reached: connection refused "
                                               r"\(2 attempts: 1 \+ 1 retries\).*B3_YAHOO_BASE_URL"):
        fetch_yahoo(f"http://127.0.0.1:{port}", retries=1)


def test_a_request_that_times_out_is_retried_within_the_deadline(raw_server):
    from b3_dagster.sources.http import get, http_session

    answered = []

    def silent_once(connection, stop):
        if not answered:  # the first request gets nothing: its request timeout ends it
            answered.append("silent")
            stop.wait(3)
            return
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    server = raw_server(silent_once)
    answer = get(http_session(), server.base_url + "/x",
                 HttpPolicy(request_timeout=0.5, fetch_deadline=10, retries=1, backoff=0))
    assert (answer.status, answer.body, answer.attempts) == (200, b"ok", 2)
