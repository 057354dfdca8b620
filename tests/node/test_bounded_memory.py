"""Closed orders leave a peer's memory once its audit trail holds them, and the peer still
answers everything about them: by id, by client order id, in listings, in its trades, to a
late cancel, to a repeated client order id, and again after a restart from a snapshot."""

import time
import urllib.request
from typing import Any

import pytest

from peerbook.client import OrderNotFound
from peerbook.engine.snapshot import restore_document
from peerbook.replication.state_machine import snapshot_document
from tests.node.conftest import Cluster, start_cluster

PAIRS = 40


def gauge(cluster: Cluster, name: str) -> float:
    address = cluster.peers[0].ready["metrics"]
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in the metrics")


def wait_retired(cluster: Cluster, at_least: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while gauge(cluster, "peerbook_orders_retired") < at_least:
        assert time.monotonic() < deadline, "closed orders did not leave memory"
        time.sleep(0.1)


def retired_in_snapshot(cluster: Cluster) -> int:
    """How many retired orders the peer's latest snapshot file carries (their records are
    in its copy of the audit trail)."""
    path = cluster.peers[0].data_dir / "raft.snapshot"
    if not path.exists():
        return 0
    body = path.read_bytes().split(b"\n", 1)[1]
    return restore_document(snapshot_document(body)["engine"]).retired_count


def answers(cluster: Cluster, filled: list[dict[str, Any]]) -> Any:
    with cluster.reader(1) as reader:
        return (
            [reader.fetch_order(order["id"]) for order in filled],
            reader.fetch_trades("BTC/USD", None, 1000),
            reader.fetch_trades("BTC/USD", filled[5]["timestamp"], 7),
        )


def own_answers(cluster: Cluster) -> Any:
    with cluster.writer(1) as client:
        return (
            client.fetch_closed_orders("BTC/USD", None, 1000),
            client.fetch_closed_orders(None, None, 3),
            client.fetch_my_trades("BTC/USD", None, 1000),
            client.fetch_open_orders(),
            client.fetch_order(None, "BTC/USD", {"clientOrderId": "m3"}),
        )


def test_closed_orders_leave_memory_and_are_still_served(
    grape_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    single = start_cluster(
        tmp_path_factory.mktemp("bounded"), grape_url, 1, network="bounded",
        extra_args=("--metrics-port", "0", "--snapshot-every", "10"),
    )  # fmt: skip
    try:
        filled: list[dict[str, Any]] = []
        with single.writer(1) as client:
            for pair in range(PAIRS):
                price = str(30_000 + pair)
                filled.append(client.create_order(
                    "BTC/USD", "limit", "sell", "0.01", price, {"clientOrderId": f"m{pair}"}
                ))  # fmt: skip
                filled.append(client.create_order("BTC/USD", "limit", "buy", "0.01", price))
            resting = client.create_order("BTC/USD", "limit", "buy", "0.5", "100")
            wait_retired(single, 2 * PAIRS)
            assert gauge(single, "peerbook_orders_in_memory") == 1  # only the resting order
            assert gauge(single, "peerbook_python_heap_blocks") > 10_000  # an interpreter's
            # A late cancel and a repeated client order id of an order that left memory.
            with pytest.raises(OrderNotFound, match=f"order {filled[0]['id']} is filled, not open"):
                client.cancel_order(filled[0]["id"])
            again = client.create_order(
                "BTC/USD", "limit", "sell", "0.01", "30000", {"clientOrderId": "m0"}
            )
            deadline = time.monotonic() + 20
            while retired_in_snapshot(single) == 0:  # entries until a snapshot is written
                assert time.monotonic() < deadline, "no snapshot holds the retired orders"
                client.create_order("BTC/USD", "limit", "buy", "0.01", "100")
        served = answers(single, filled)
        orders, trades, window = served
        assert [o["status"] for o in orders] == ["closed"] * (2 * PAIRS)
        assert [o["remaining"] for o in orders] == ["0"] * (2 * PAIRS)
        assert all(len(o["trades"]) == 1 for o in orders)
        assert orders[0]["trades"][0]["takerOrMaker"] == "maker"
        assert len(trades) == PAIRS and len(window) == 7
        assert again == orders[0]
        own = own_answers(single)
        assert len(own[0]) == 2 * PAIRS and len(own[1]) == 3 and len(own[2]) == 2 * PAIRS
        assert own[3][0]["id"] == resting["id"]
        assert own[4]["id"] == filled[6]["id"]
        digest = single.wait_converged()
        # A restart installs its snapshot, whose history part holds them; its audit trail
        # holds them too, so the orders stay retired and are served from disk again.
        peer = single.peers[0]
        single.run(single.network.stop(peer))
        single.run(single.network.restart(peer))
        assert single.wait_converged() == digest
        assert answers(single, filled) == served
        assert own_answers(single) == own
        wait_retired(single, 2 * PAIRS)
    finally:
        single.close()
