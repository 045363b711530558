"""Benchmark: the UI's partition view of index_portfolio_raw (dia × indice) with 5 indices × ~250 sessions, beside
the IBOV-only daily asset ibov_raw_snapshot (~250 keys).

Starts ``dagster-webserver`` on 127.0.0.1 over the project's code location (an empty temporary DAGSTER_HOME, no
daemon, B3 and Yahoo pointed at a closed port), with B3_INDICES set to 5 codes and B3_PARTITIONS_START a year back,
then times the GraphQL query the asset page's partition view issues (``partitionKeysByDimension`` and
``assetPartitionStatuses``, as Dagster's ``usePartitionHealthData`` asks for them).

    .venv/bin/python benchmarks/index_ui.py            # 7 rounds per asset, prints the median and the worst

Prints wall-clock seconds; nothing is asserted. Figures with the date they were measured are in README
("Every B3 index ...: measured").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
INDICES = "IBOV,IBXX,IBRA,SMLL,IDIV"
ROUNDS = 7
ASSETS = ["index_portfolio_raw", "ibov_raw_snapshot"]

STATUSES = """
  ... on TimePartitionStatuses { ranges { status startKey endKey } }
  ... on DefaultPartitionStatuses { materializedPartitions failedPartitions unmaterializedPartitions
                                    materializingPartitions }
"""
PARTITION_HEALTH = """
query PartitionHealth($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        __typename
        %s
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges { primaryDimStartKey primaryDimEndKey secondaryDim { __typename %s } }
        }
      }
    }
  }
}
""" % (STATUSES, STATUSES)


REPORT = """
mutation Report($params: ReportRunlessAssetEventsParams!) {
  reportRunlessAssetEvents(eventParams: $params) { __typename ... on PythonError { message } }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(url: str, query: str, variables: dict) -> dict:
    answer = requests.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=300)
    document = answer.json()
    if answer.status_code != 200 or document.get("errors"):
        raise RuntimeError(f"GraphQL answered {answer.status_code}: {str(document)[:1000]}")
    return document["data"]


def wait_for_location(url: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            node = graphql(url, PARTITION_HEALTH, {"assetKey": {"path": [ASSETS[0]]}})["assetNodeOrError"]
            if node["__typename"] == "AssetNode":
                return
        except (requests.RequestException, RuntimeError, ValueError):
            pass
        time.sleep(1)
    raise SystemExit(f"the webserver at {url} did not serve {ASSETS[0]} within {timeout:.0f} s")


@contextlib.contextmanager
def webserver(root: str, start: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``dagster-webserver`` in its own session over the project's code location (DAGSTER_HOME ``root``, no
    daemon, B3 and Yahoo pointed at a closed port, B3_INDICES and B3_PARTITIONS_START set), until the block ends:
    its URL and its process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B3_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": root, "B3_LAKE_ROOT": str(Path(root) / "data"), "B3_INDICES": INDICES,
                "B3_PARTITIONS_START": start, "B3_BASE_URL": "http://127.0.0.1:9",
                "B3_YAHOO_BASE_URL": "http://127.0.0.1:9"})
    port = free_port()
    log = open(Path(root) / "webserver.log", "wb")
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "b3_dagster.definitions",
               "-h", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        os.killpg(process.pid, signal.SIGINT)  # its own session: only the webserver this script started
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def main() -> None:
    start = (dt.date.today() - dt.timedelta(days=365)).isoformat()
    with tempfile.TemporaryDirectory() as root:
        began = time.perf_counter()
        with webserver(root, start) as (url, _):
            wait_for_location(url)
            print(f"webserver up with the code location loaded: {time.perf_counter() - began:.1f} s "
                  f"(B3_INDICES={INDICES}, B3_PARTITIONS_START={start})")
            for state in ("no materialisation", "every key materialised"):
                if state == "every key materialised":
                    materialise_every_key(url)
                time_assets(url, state)


def time_assets(url: str, state: str) -> None:
    for asset in ASSETS:
        times, node = [], None
        for _ in range(ROUNDS):
            started = time.perf_counter()
            node = graphql(url, PARTITION_HEALTH, {"assetKey": {"path": [asset]}})["assetNodeOrError"]
            times.append(time.perf_counter() - started)
        dims = ", ".join(f"{d['name']}: {len(d['partitionKeys'])}" for d in node["partitionKeysByDimension"])
        keys = 1
        for dim in node["partitionKeysByDimension"]:
            keys *= len(dim["partitionKeys"])
        print(f"{asset} ({state}): {keys} keys ({dims}); partition view query median "
              f"{statistics.median(times):.3f} s, worst {max(times):.3f} s over {ROUNDS} rounds")


def materialise_every_key(url: str) -> None:
    """One runless materialisation event per key of each asset (what a finished backfill leaves in the instance)."""
    for asset in ASSETS:
        node = graphql(url, PARTITION_HEALTH, {"assetKey": {"path": [asset]}})["assetNodeOrError"]
        dims = node["partitionKeysByDimension"]
        keys = ([f"{a}|{b}" for a in dims[0]["partitionKeys"] for b in dims[1]["partitionKeys"]] if len(dims) == 2
                else dims[0]["partitionKeys"])
        started = time.perf_counter()
        answer = graphql(url, REPORT, {"params": {"eventType": "ASSET_MATERIALIZATION", "assetKey": {"path": [asset]},
                                                  "partitionKeys": keys}})["reportRunlessAssetEvents"]
        if answer["__typename"] != "ReportRunlessAssetEventsSuccess":
            raise RuntimeError(f"reporting {asset}'s materialisations failed: {answer}")
        print(f"{asset}: {len(keys)} materialisations reported in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
