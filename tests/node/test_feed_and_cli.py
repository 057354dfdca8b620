"""The market-data feed (section 5) and the CLI client commands (section 1) against three
real peers."""

import asyncio
import json
import os
import subprocess
import sys
import zlib
from typing import Any

from peerbook.grenache import Link, Subscriber
from tests.node.conftest import Cluster


def checksum(book: dict[str, Any]) -> int:
    """Section 5's checksum, computed independently from a fetchOrderBook reply."""
    sides = [",".join(f"{p}:{a}" for p, a, _ in book[s][:25]) for s in ("bids", "asks")]
    return zlib.crc32("|".join(sides).encode())


def test_feed_carries_every_trade_in_order_with_matching_checksums(cluster: Cluster) -> None:
    async def subscribe() -> tuple[Subscriber, Link]:
        link = Link(cluster.grape)
        subscriber = Subscriber(link, "peerbook:main:feed", fan_in=True)
        subscriber.start()
        async with asyncio.timeout(20):
            while len(subscriber.publishers) < 3:
                await asyncio.sleep(0.05)
        return subscriber, link

    subscriber, link = cluster.run(subscribe())
    try:
        placed = []
        with cluster.writer(1) as p1, cluster.writer(2) as p2:
            for i in range(10):
                p1.create_order("BTC/USD", "limit", "sell", "0.01", f"{40000 + i}")
            for _ in range(10):
                placed.append(p2.create_order("BTC/USD", "market", "buy", "0.01"))
        cluster.wait_converged()
        with cluster.reader(3) as reader:
            book = reader.fetch_order_book("BTC/USD")
            trades = reader.fetch_trades("BTC/USD", None, 10)

        async def collect() -> list[dict[str, Any]]:
            messages: list[dict[str, Any]] = []
            try:
                async with asyncio.timeout(3):
                    while True:
                        messages.append(json.loads(await subscriber.receive()))
            except TimeoutError:
                return messages

        messages = cluster.run(collect())
    finally:
        cluster.run(subscriber.close())
        cluster.run(link.close())
    per_peer: dict[int, list[dict[str, Any]]] = {}
    # fan_in merges three identical streams: group by nonce and channel to check each stream
    seen = [m for m in messages if m["symbol"] == "BTC/USD"]
    trade_ids = []
    for message in seen:
        if message["channel"] == "trades":
            trade_ids += [t["id"] for t in message["data"]]
        per_peer.setdefault(message["nonce"], []).append(message)
    expected = [t["id"] for t in trades]
    assert sorted(set(trade_ids), key=int) == expected
    assert trade_ids.count(expected[0]) == 3  # every peer published it
    for same_nonce in per_peer.values():  # the same stream for the same sequence
        by_channel: dict[str, list[str]] = {}
        for message in same_nonce:
            by_channel.setdefault(message["channel"], []).append(
                json.dumps(message, sort_keys=True)
            )
        assert all(len(set(v)) == 1 for v in by_channel.values())
    last_book = max((m for m in seen if m["channel"] == "book"), key=lambda m: m["nonce"])
    assert last_book["nonce"] == book["nonce"]
    assert last_book["checksum"] == checksum(book)
    assert [t["id"] for p in placed for t in p["trades"]] == expected


def peerbook(cluster: Cluster, *args: str, data_dir: int | None = None) -> Any:
    env = {**os.environ, "PEERBOOK_GRAPE": cluster.grape}
    env.pop("PEERBOOK_DATA_DIR", None)
    if data_dir is not None:
        env["PEERBOOK_DATA_DIR"] = str(cluster.peers[data_dir - 1].data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "peerbook", *args, "--json"],
        check=False, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_client_commands(cluster: Cluster) -> None:
    sold = peerbook(cluster, "sell", "ETH/USD", "0.5", "2500", "--client-id", "cli-1", data_dir=2)
    assert sold["clientOrderId"] == "cli-1" and sold["status"] == "open"
    bought = peerbook(cluster, "buy", "ETH/USD", "0.2", "2500", "--ioc", data_dir=3)
    assert bought["info"]["state"] == "filled" and bought["timeInForce"] == "IOC"
    assert peerbook(cluster, "order", sold["id"])["filled"] == "0.2"
    open_ids = [o["id"] for o in peerbook(cluster, "orders", data_dir=2)]
    assert sold["id"] in open_ids
    book = peerbook(cluster, "book", "ETH/USD", "--depth", "3")
    assert ["2500", "0.3", 1] in book["asks"]
    assert peerbook(cluster, "trades", "ETH/USD", "--limit", "1")[0]["order"] == bought["id"]
    status = peerbook(cluster, "status")  # the raw fetchStatus result of any peer
    assert status["info"]["peer"] in {"p1", "p2", "p3"} and status["info"]["applied"] > 0
    assert peerbook(cluster, "status", data_dir=2)["info"]["peer"] == "p2"
    assert {m["symbol"] for m in peerbook(cluster, "markets")} == {"BTC/USD", "ETH/USD"}
    assert peerbook(cluster, "cancel", sold["id"], data_dir=2)["status"] == "canceled"
    assert sold["id"] in [o["id"] for o in peerbook(cluster, "orders", "--closed", data_dir=2)]


def test_cli_reports_errors_with_their_class(cluster: Cluster) -> None:
    env = {**os.environ, "PEERBOOK_GRAPE": cluster.grape,
           "PEERBOOK_DATA_DIR": str(cluster.peers[0].data_dir)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "peerbook", "buy", "BTC/USD", "0.00001", "100"],
        check=False, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "InvalidOrder: amount 0.00001 is not a multiple of step 0.0001" in done.stderr


def test_node_peersub_sees_every_trade_in_order(cluster: Cluster) -> None:
    import pytest

    from tests.interop.node_harness import (
        NodeProcess,
        ensure_node_modules,
        node_binary,
        unavailable_reason,
    )

    if node_binary() is None or not ensure_node_modules():
        pytest.skip(unavailable_reason())
    args = ("--grape", cluster.grape, "--service", "peerbook:main:feed",
            "--count", "100000", "--timeout", "60000")  # fmt: skip
    with NodeProcess("sub.js", args) as subscriber:
        subscriber.wait_for(lambda line: line.get("connected") is True, timeout=20)
        with cluster.writer(3) as p3, cluster.writer(1) as p1:
            for i in range(5):
                p3.create_order("ETH/USD", "limit", "buy", "0.01", f"{1000 + i}")
            sold = p1.create_order("ETH/USD", "market", "sell", "0.05")
        expected = [t["id"] for t in sold["trades"]]

        def trade_ids() -> list[str]:
            found = []
            for line in subscriber.lines():
                if "message" in line:
                    message = json.loads(line["message"])
                    if message["channel"] == "trades":
                        found += [t["id"] for t in message["data"]]
            return found

        subscriber.wait_for(lambda _: set(expected) <= set(trade_ids()), timeout=20)
    ids = trade_ids()
    assert ids[-len(expected) :] == expected and len(expected) == 5


def test_a_local_book_follows_the_feed_with_matching_checksums(cluster: Cluster) -> None:
    from peerbook.client import AsyncClient
    from peerbook.client.book import LocalBook

    async def follow() -> tuple[LocalBook, int, dict[str, Any]]:
        link = Link(cluster.grape)
        subscriber = Subscriber(link, "peerbook:main:feed")
        subscriber.start()
        reader = AsyncClient(cluster.grape, peer="p2")
        try:
            async with asyncio.timeout(20):
                while not subscriber.publishers:
                    await asyncio.sleep(0.05)
            book = LocalBook(await reader.fetch_order_book("ETH/USD"))
            writer = AsyncClient.from_data_dir(cluster.grape, cluster.peers[0].data_dir)
            try:
                for i in range(6):
                    await writer.create_order("ETH/USD", "limit", "sell", "0.01", f"{4000 + i}")
                await writer.create_order("ETH/USD", "market", "buy", "0.025")
            finally:
                await writer.close()
            checked = 0
            try:
                async with asyncio.timeout(3):
                    while True:
                        event = json.loads(await subscriber.receive())
                        if event["channel"] == "book" and event["symbol"] == "ETH/USD":
                            assert book.apply(event), event
                            checked += 1
            except TimeoutError:
                pass
            return book, checked, await reader.fetch_order_book("ETH/USD")
        finally:
            await reader.close()
            await subscriber.close()
            await link.close()

    book, checked, served = cluster.run(follow())
    assert checked >= 7
    bids, asks = book.levels(100)
    assert [list(level) for level in asks] == [[p, a] for p, a, _ in served["asks"]]
    assert [list(level) for level in bids] == [[p, a] for p, a, _ in served["bids"]]
    assert book.checksum() == checksum(served)


def test_cli_watch_prints_the_feed(cluster: Cluster) -> None:
    env = {**os.environ, "PEERBOOK_GRAPE": cluster.grape}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "peerbook", "watch", "BTC/USD", "--json", "--duration", "16"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        import time

        # A trade every 2 s for 12 s: the watcher sees the ones after it has connected
        # (on a loaded machine that took more than the 3 s this test once waited).
        with cluster.writer(2) as p2:
            for _ in range(6):
                time.sleep(2)
                p2.create_order("BTC/USD", "limit", "sell", "0.01", "45000")
                p2.create_order("BTC/USD", "limit", "buy", "0.01", "45000")
        out, _ = watcher.communicate(timeout=40)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    events = [json.loads(line) for line in out.splitlines()]
    assert any(e["channel"] == "trades" and e["data"][0]["price"] == "45000" for e in events)
    assert watcher.returncode == 0
