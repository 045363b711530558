"""A local server replaying the recorded Yahoo chart answers (demo and tests)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from b3_dagster.replay.b3_api import SHUTDOWN_POLL_SECONDS
from b3_dagster.sources.yahoo_chart import CHART_PATH, QUOTE_FIELDS


# ---------------------------------------------------------------------------------------------------------------------
# Replay: a local server that answers chart requests from recorded answers (demo and tests)
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class _RecordedSeries:
    meta: dict
    bars: dict[int, dict[str, Any]]  # timestamp -> {"open":..., ..., "adjclose":...}
    source: str


def load_chart_recordings(directory: str | Path) -> dict[str, list[_RecordedSeries]]:
    """Every ``*.json`` chart answer in ``directory``, by symbol. Files are read as recorded; an answer whose
    top-level ``b3_dagster_provenance.kind`` is ``derived`` ranks after real recordings where both have a bar."""
    series: dict[str, list[_RecordedSeries]] = {}
    for path in sorted(Path(directory).glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        results = (document.get("chart") or {}).get("result") or []
        if not results:
            continue
        result = results[0]
        quote_block = result["indicators"]["quote"][0]
        adjclose = (result["indicators"].get("adjclose") or [{}])[0].get("adjclose")
        bars = {}
        for position, stamp in enumerate(result.get("timestamp") or []):
            bar = {name: quote_block[name][position] for name in QUOTE_FIELDS}
            if adjclose is not None:
                bar["adjclose"] = adjclose[position]
            bars[stamp] = bar
        derived = (document.get("b3_dagster_provenance") or {}).get("kind") == "derived"
        entry = _RecordedSeries(meta=result.get("meta") or {}, bars=bars, source=path.name)
        bucket = series.setdefault(result["meta"]["symbol"], [])
        bucket.append(entry) if derived else bucket.insert(0, entry)
    return series


def replay_answer(recordings: dict[str, list[_RecordedSeries]], symbol: str, period1: int,
                  period2: int) -> tuple[int, dict]:
    """(HTTP status, body) for a chart request, built from the recorded bars in [period1, period2)."""
    if symbol not in recordings:
        return 404, {"chart": {"result": None, "error": {"code": "Not Found",
                                                          "description": "No data found, symbol may be delisted"}}}
    chosen: dict[int, dict[str, Any]] = {}
    meta: dict = {}
    for entry in reversed(recordings[symbol]):  # real recordings last, so their bars and meta win
        window = {stamp: bar for stamp, bar in entry.bars.items() if period1 <= stamp < period2}
        if window:
            chosen.update(window)
            meta = entry.meta
    meta = dict(meta or recordings[symbol][0].meta)
    stamps = sorted(chosen)
    quote_block = {name: [chosen[stamp][name] for stamp in stamps] for name in QUOTE_FIELDS}
    result: dict[str, Any] = {"meta": meta, "indicators": {"quote": [quote_block]}}
    if stamps:
        result["timestamp"] = stamps
        if all("adjclose" in chosen[stamp] for stamp in stamps):
            result["indicators"]["adjclose"] = [{"adjclose": [chosen[stamp]["adjclose"] for stamp in stamps]}]
    return 200, {"chart": {"result": [result], "error": None}}


def serve_chart_recordings(directory: str | Path | None = None, host: str = "127.0.0.1",
                           port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a background HTTP server that answers ``GET /v8/finance/chart/<symbol>?period1=&period2=`` from the
    recordings in ``directory`` (default: the packaged ``b3_dagster/recordings/yahoo``). Returns the server (call
    ``shutdown()`` to stop it) and its base URL, to be used as ``YahooChartResource.base_url``."""
    recordings = load_chart_recordings(directory or Path(__file__).resolve().parent.parent / "recordings" / "yahoo")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if not parts.path.startswith(CHART_PATH) or "period1" not in query or "period2" not in query:
                status, body = 400, {"chart": {"result": None, "error": {
                    "code": "Bad Request", "description": "this replay serves /v8/finance/chart/<symbol>"
                                                          "?period1=..&period2=.. only"}}}
            else:
                symbol = unquote(parts.path[len(CHART_PATH):])
                status, body = replay_answer(recordings, symbol, int(query["period1"][0]), int(query["period2"][0]))
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # keep test and demo output quiet
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True,
                     name="yahoo-chart-replay").start()
    return server, f"http://{host}:{server.server_address[1]}"
