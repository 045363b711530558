"""Local replay (127.0.0.1) of B3's index endpoints, from the shipped real recordings (for the demo and the tests).

- ``indexStatisticsProxy/IndexCall/GetPortfolioDay/<token>``: the recorded year grid of exactly the requested
  (index, year, language), else 404 naming what is recorded (``sources.b3_index_history.replay_answer``).
- ``indexProxy/indexCall/GetStockIndex/<token>``: B3 serves only the current membership list, so the replay serves
  one recorded answer at a time (``current``, a path), whatever page is asked (the list fits one page).
Nothing is made up: every body sent is a recorded one.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from b3_dagster.sources import b3_index_history, b3_stock_index


class IndicesReplay:
    def __init__(self, membership: Path | None = None):
        self.current = membership
        self.grids = b3_index_history.recorded_grids()
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                if self.path.startswith(b3_index_history.ENDPOINT_PATH):
                    status, body = b3_index_history.replay_answer(
                        replay.grids, self.path[len(b3_index_history.ENDPOINT_PATH):])
                elif self.path.startswith(b3_stock_index.ENDPOINT_PATH) and replay.current is not None:
                    status, body = 200, Path(replay.current).read_bytes()
                else:
                    status, body = 404, b'{"message":"not recorded"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the demo's output readable
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "IndicesReplay":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
