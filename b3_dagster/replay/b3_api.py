"""Replay of recorded real B3 answers over HTTP, in the shape of B3's API (for the offline demo and the tests).

B3 serves only the current portfolio, so the replay serves one recorded day at a time (``current``), answering
``GET /indexProxy/indexCall/GetPortfolioDay/<base64 JSON>`` and slicing the recorded rows into the requested pages.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from b3_dagster.sources.b3_format import decode_payload
from b3_dagster.sources.b3_portfolio import ENDPOINT_PATH

# How often a replay server's loop looks for shutdown(); socketserver's default of 0.5 s made every replay's exit wait
# about 0.4 s (7 replays in the demo: 2.7 s of its wall clock).
SHUTDOWN_POLL_SECONDS = 0.02

_RECORDING_NAME = re.compile(r"^GetPortfolioDay_(?P<index>\w+)_seg(?P<segment>\d)_(?P<language>[a-z]{2}-[a-z]{2})_"
                             r"(?P<date>\d{4}-\d{2}-\d{2})\.json$")


@dataclass(frozen=True)
class Recording:
    date: str
    language: str
    index: str
    segment: str
    path: Path

    def document(self) -> dict[str, Any]:
        return json.loads(self.path.read_bytes())


def recordings_dir() -> Path:
    return Path(str(resources.files("b3_dagster") / "recordings" / "b3_api"))


def recorded_days(directory: Path | None = None) -> list[Recording]:
    found = []
    for path in sorted((directory or recordings_dir()).glob("*.json")):
        match = _RECORDING_NAME.match(path.name)
        if match:
            found.append(Recording(match["date"], match["language"], match["index"], match["segment"], path))
    return sorted(found, key=lambda recording: recording.date)


def paginate(document: dict[str, Any], page_number: int, page_size: int) -> dict[str, Any]:
    """The recorded answer as B3 would page it: rows ``(page_number-1)*page_size`` onwards, and a matching
    ``page`` object. A page past the end has no rows (B3 answers the same way)."""
    rows = document["results"]
    total_pages = max(1, -(-len(rows) // page_size))
    start = (page_number - 1) * page_size
    return {
        **document,
        "page": {"pageNumber": page_number, "pageSize": page_size, "totalRecords": len(rows),
                 "totalPages": total_pages},
        "results": rows[start:start + page_size],
    }


def answer(recording: Recording, token: str, document: dict[str, Any] | None = None) -> tuple[int, bytes]:
    """The HTTP status and body the replay sends for one request token (base64 JSON payload). ``document``
    replaces the recorded answer (tests use it to serve an altered copy)."""
    try:
        payload = decode_payload(token)
        page_number, page_size = int(payload["pageNumber"]), int(payload["pageSize"])
    except (ValueError, KeyError, TypeError):
        return 400, b'{"message":"bad request payload"}'
    wanted = (payload.get("index"), str(payload.get("segment")), payload.get("language"))
    if wanted != (recording.index, recording.segment, recording.language):
        message = (f"this replay holds the {recording.language} answer for {recording.index} segment "
                   f"{recording.segment} of {recording.date}; the request asked for {wanted}")
        return 404, json.dumps({"message": message}).encode()
    if page_number < 1 or page_size < 1:
        return 400, b'{"message":"pageNumber and pageSize must be positive"}'
    document = recording.document() if document is None else document
    body = json.dumps(paginate(document, page_number, page_size), ensure_ascii=False,
                      separators=(",", ":"))
    return 200, body.encode("utf-8")


class LocalReplayServer:
    """A local HTTP server on 127.0.0.1 (a free port) that answers every GET with ``self.answer(path)``: the replay
    servers of the demo and the tests differ only in that method. Use it as a context manager."""

    def __init__(self) -> None:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                status, body = replay.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the demo's output readable
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True)

    def answer(self, path: str) -> tuple[int, bytes]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class B3Replay(LocalReplayServer):
    """A local HTTP server on 127.0.0.1 replaying one recorded day at a time."""

    def __init__(self, recording: Recording):
        self.current = recording
        super().__init__()

    def answer(self, path: str) -> tuple[int, bytes]:
        if not path.startswith(ENDPOINT_PATH):
            return 404, b'{"message":"not found"}'
        return answer(self.current, path[len(ENDPOINT_PATH):])
