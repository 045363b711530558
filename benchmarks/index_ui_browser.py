"""Benchmark: the asset page's partition view in a real browser (headless Chromium through playwright) with 5 indices
× ~250 sessions (``index_portfolio_raw``, ``dia`` × ``indice``), beside the baseline of IBOV's own daily asset
(``ibov_raw_snapshot``, ~250 keys). ``benchmarks/index_ui.py`` times only the GraphQL query behind the view; this
times what a user waits for: the page opened until its partition grid is drawn.

Starts ``dagster-webserver`` on 127.0.0.1 as ``index_ui.py`` does (empty temporary DAGSTER_HOME, no daemon,
B3_INDICES=IBOV,IBXX,IBRA,SMLL,IDIV, B3_PARTITIONS_START a year back, B3 and Yahoo pointed at a closed port), then per
asset and state opens ``/assets/<asset>?view=partitions`` in a fresh page ROUNDS times and measures:

- ``drawn``: navigation start until the partition view shows its counts ("Missing (1235)", from the partition
  statuses) and its list of session keys, i.e. the view is on screen with its data;
- ``idle``: until the network is idle (every GraphQL answer of the page received and rendered);
- the webserver's CPU seconds (user+sys of it and its code server) spent serving the page, and Chromium's.

    .venv/bin/python benchmarks/index_ui_browser.py [ROUNDS [SHOTS_DIR]]   # default 5 rounds; ~4 min on 2 cores

Chromium is Debian's /usr/bin/chromium (scripts/install_system_deps.sh), as in b3_dagster_tests/e2e. Prints
figures; nothing is asserted. The measured figures are in the README ("Every index's portfolio").
"""

from __future__ import annotations

import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_ui import ASSETS, INDICES, materialise_every_key, wait_for_location, webserver  # noqa: E402

ROUNDS = 5
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds_of(selected) -> float:
    """user+sys CPU seconds of every live process for which ``selected(stat fields, command line)`` is true."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if selected(fields, command):
            total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return total


def cpu_seconds(session_id: int) -> float:
    """user+sys CPU seconds of every live process in a session (the webserver and the code server it spawned)."""
    return _cpu_seconds_of(lambda fields, _: int(fields[3]) == session_id)  # field 6 of stat: the session id


def browser_cpu_seconds(browser_pid_marker: str) -> float:
    """user+sys CPU seconds of Chromium's processes (found by their command line)."""
    return _cpu_seconds_of(lambda _, command: browser_pid_marker.encode() in command)


def time_page(browser, url: str, asset: str, server_session: int, profile: str,
              screenshot: Path | None = None) -> tuple[float, float, float, float]:
    page = browser.new_page()
    try:
        cpu_server, cpu_browser = cpu_seconds(server_session), browser_cpu_seconds(profile)
        started = time.perf_counter()
        page.goto(f"{url}/assets/{asset}?view=partitions", wait_until="commit")
        # the partition health bar's legend and the key list appear only when partitionKeysByDimension and
        # assetPartitionStatuses have been answered and drawn
        # "1,235 Partitions ...", "Materialized (n)", "Missing (n)" and the key list: the counts come from
        # assetPartitionStatuses, so they are on screen only once the view has its data
        page.get_by_text(re.compile(r"Missing \(\d")).first.wait_for(timeout=120_000)
        page.get_by_text(re.compile(r"^\d{4}-\d{2}-\d{2}$")).first.wait_for(timeout=120_000)  # the newest keys
        drawn = time.perf_counter() - started
        page.wait_for_load_state("networkidle", timeout=120_000)
        idle = time.perf_counter() - started
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        return (drawn, idle, cpu_seconds(server_session) - cpu_server,
                browser_cpu_seconds(profile) - cpu_browser)
    finally:
        page.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    rounds_per_case = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
    shots = Path(sys.argv[2]) if len(sys.argv) > 2 else None  # a folder: one screenshot per asset and state
    start = (dt.date.today() - dt.timedelta(days=365)).isoformat()
    with tempfile.TemporaryDirectory() as root, webserver(root, start) as (url, process):
        profile = str(Path(root) / "chromium-profile")
        wait_for_location(url)
        print(f"B3_INDICES={INDICES}, B3_PARTITIONS_START={start}; {rounds_per_case} rounds per asset and state, "
              "a fresh page each; Chromium headless")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True,
                viewport={"width": 1440, "height": 900})
            try:
                warm = browser.new_page()  # the first visit loads the UI's bundle and its first-visit dialog
                warm.goto(f"{url}/assets/{ASSETS[1]}?view=partitions", wait_until="networkidle")
                try:  # dismissed once, remembered by the profile: the timed pages show only the view
                    warm.get_by_role("button", name="Skip").click(timeout=5000)
                except Exception:  # noqa: BLE001 (not shown this time)
                    pass
                warm.close()
                for state in ("nothing materialised", "every key materialised"):
                    if state == "every key materialised":
                        materialise_every_key(url)
                    for asset in ASSETS:
                        shot = shots / f"{asset}_{state.split()[0]}.png" if shots else None
                        rounds = [time_page(browser, url, asset, process.pid, profile, shot if i == 0 else None)
                                  for i in range(rounds_per_case)]
                        drawn, idle, server, chromium = (list(column) for column in zip(*rounds))
                        print(f"{asset:<21} ({state}): drawn median {statistics.median(drawn):.2f} s "
                              f"(worst {max(drawn):.2f}), network idle median {statistics.median(idle):.2f} s "
                              f"(worst {max(idle):.2f}); CPU per page: webserver "
                              f"{statistics.median(server):.2f} s, Chromium {statistics.median(chromium):.2f} s")
            finally:
                browser.close()


if __name__ == "__main__":
    main()
