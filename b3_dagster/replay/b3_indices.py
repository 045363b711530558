"""Local replay (127.0.0.1) of B3's index endpoints, from the shipped real recordings (for the demo and the tests).

- ``indexStatisticsProxy/IndexCall/GetPortfolioDay/<token>``: the recorded year grid of exactly the requested
  (index, year, language), else 404 naming what is recorded (``sources.b3_index_history.replay_answer``).
- ``indexProxy/indexCall/GetStockIndex/<token>``: B3 serves only the current membership list, so the replay serves
  one recorded answer at a time (``current``, a path), whatever page is asked (the list fits one page).
Nothing is made up: every body sent is a recorded one.
"""

from __future__ import annotations

from pathlib import Path

from b3_dagster.replay.b3_api import LocalReplayServer
from b3_dagster.sources import b3_index_history, b3_stock_index


class IndicesReplay(LocalReplayServer):
    def __init__(self, membership: Path | None = None):
        self.current = membership
        self.grids = b3_index_history.recorded_grids()
        super().__init__()

    def answer(self, path: str) -> tuple[int, bytes]:
        if path.startswith(b3_index_history.ENDPOINT_PATH):
            return b3_index_history.replay_answer(self.grids, path[len(b3_index_history.ENDPOINT_PATH):])
        if path.startswith(b3_stock_index.ENDPOINT_PATH) and self.current is not None:
            return 200, Path(self.current).read_bytes()
        return 404, b'{"message":"not recorded"}'
