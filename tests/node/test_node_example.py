"""The Node.js example (examples/node_client.js): the real grenache-nodejs-http client places,
reads and cancels an order at a Python peer, signing its writes in JavaScript."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.interop.node_harness import ensure_node_modules, node_binary, unavailable_reason
from tests.node.conftest import Cluster

ROOT = Path(__file__).resolve().parents[2]


def test_node_example_places_and_cancels(cluster: Cluster) -> None:
    node = node_binary()
    if node is None or not ensure_node_modules():
        pytest.skip(unavailable_reason())
    env = {**os.environ, "NODE_PATH": str(ROOT / "interop" / "node" / "node_modules")}
    done = subprocess.run(
        [node, str(ROOT / "examples" / "node_client.js"), cluster.grape,
         str(cluster.peers[1].data_dir)],
        check=False, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {line["step"]: line for line in map(json.loads, done.stdout.splitlines())}
    placed = steps["placed"]["order"]
    assert placed["status"] == "open" and placed["info"]["peer"] == "p2"
    assert placed["price"] == "12345.6" and placed["amount"] == "0.01"
    assert steps["fetched"]["order"]["id"] == placed["id"]
    assert steps["cancelled"]["order"]["status"] == "canceled"
    assert steps["refused"]["error"].startswith("OrderNotFound: ")
    with cluster.reader(3) as reader:
        assert reader.fetch_order(placed["id"])["status"] == "canceled"
