"""The contract's RPC API (sections 3, 4 and 8) against three real peer processes: every
action, every error class provoked by a real request, and the peer serving on unchanged."""

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from peerbook.client import (
    AuthenticationError,
    BadRequest,
    BadSymbol,
    InvalidOrder,
    OrderImmediatelyFillable,
    OrderNotFillable,
    OrderNotFound,
)
from peerbook.errors import RpcError
from peerbook.grenache import Link, RpcClient
from peerbook.grenache.protocol import Json
from peerbook.node.auth import sign
from peerbook.node.datadir import DataDir
from tests.node.conftest import Cluster, assert_log_replays


def raw(cluster: Cluster, index: int, payload: Json) -> Json:
    """Send a payload as is to peer ``index``; its data, or RpcError with the error string."""

    async def send() -> Json:
        client = RpcClient(Link(cluster.grape))
        try:
            address = cluster.peers[index - 1].ready["rpc"]
            return await client.send(address, "peerbook:main:rpc", payload, timeout_s=15)
        finally:
            await client.close()

    return asyncio.run(send())


def signed(cluster: Cluster, index: int, action: str, args: list[Any], **changes: Any) -> Json:
    """A write payload signed with peer ``index``'s credentials (``changes`` spoil it)."""
    credentials = DataDir(cluster.peers[index - 1].data_dir).credentials()
    nonce = changes.pop("nonce", str(time.time_ns() // 1000))
    auth = {"key": credentials.key, "nonce": nonce,
            "signature": sign(credentials.secret, nonce, action, args)}  # fmt: skip
    auth.update(changes)
    return {"action": action, "args": args, "auth": auth}


def test_markets_and_status(cluster: Cluster) -> None:
    with cluster.reader(2) as client:
        markets = {m["symbol"]: m for m in client.fetch_markets()}
        status = client.fetch_status()
    assert markets["BTC/USD"]["precision"] == {"price": "0.1", "amount": "0.0001"}
    assert markets["ETH/USD"]["precision"] == {"price": "0.01", "amount": "0.001"}
    assert markets["BTC/USD"]["active"] is True
    assert status["status"] == "ok"
    info = status["info"]
    assert info["peer"] == "p2" and info["network"] == "main"
    assert info["members"] == ["p1", "p2", "p3"]
    assert info["role"] in ("leader", "follower") and info["leader"] in info["members"]
    assert len(info["digest"]) == 64 and isinstance(info["applied"], int)


def test_order_lifecycle_is_identical_on_every_peer(cluster: Cluster) -> None:
    with cluster.writer(1) as p1, cluster.writer(2) as p2:
        resting = p1.create_order(
            "ETH/USD", "limit", "sell", "2", "2000.5", {"clientOrderId": "life-1"}
        )
        assert resting["status"] == "open" and resting["remaining"] == "2"
        taker = p2.create_order(
            "ETH/USD", "limit", "buy", "0.5", "2001", {"clientOrderId": "life-2"}
        )
        assert taker["status"] == "closed" and taker["info"]["state"] == "filled"
        assert taker["remaining"] == "0" and taker["average"] == "2000.5"
        assert taker["trades"][0]["takerOrMaker"] == "taker"
        views = []
        for index in (1, 2, 3):
            with cluster.reader(index) as reader:
                views.append(reader.fetch_order(resting["id"]))
        assert all(v == views[0] for v in views[1:])
        assert views[0]["info"]["state"] == "partially_filled" and views[0]["filled"] == "0.5"
        by_client_id = p1.fetch_order(None, "ETH/USD", {"clientOrderId": "life-1"})
        assert by_client_id["id"] == resting["id"]
        assert resting["id"] in [o["id"] for o in p1.fetch_open_orders("ETH/USD")]
        cancelled = p1.cancel_order(resting["id"])
        assert cancelled["status"] == "canceled" and cancelled["remaining"] == "1.5"
        assert resting["id"] in [o["id"] for o in p1.fetch_closed_orders()]
        assert taker["id"] in [o["id"] for o in p2.fetch_closed_orders("ETH/USD")]
        mine = p2.fetch_my_trades("ETH/USD")
        assert mine[-1]["order"] == taker["id"] and mine[-1]["side"] == "buy"
        with pytest.raises(OrderNotFound):
            p1.cancel_order(resting["id"])  # no longer open


def test_repeated_client_order_id_returns_the_original(cluster: Cluster) -> None:
    with cluster.writer(3) as p3:
        first = p3.create_order("BTC/USD", "limit", "buy", "0.01", "100", {"clientOrderId": "same"})
        again = p3.create_order("BTC/USD", "limit", "buy", "0.5", "200", {"clientOrderId": "same"})
        assert again["id"] == first["id"] and again["amount"] == "0.01"


def test_book_and_trades_agree_across_peers(cluster: Cluster) -> None:
    with cluster.writer(1) as p1, cluster.writer(3) as p3:
        p1.create_order("BTC/USD", "limit", "sell", "0.3", "31000")
        p3.create_order("BTC/USD", "market", "buy", "0.1")
    cluster.wait_converged()
    books, trades = [], []
    for index in (1, 2, 3):
        with cluster.reader(index) as reader:
            book = reader.fetch_order_book("BTC/USD")
            books.append({k: book[k] for k in ("bids", "asks", "nonce")})
            trades.append(reader.fetch_trades("BTC/USD"))
    assert all(b == books[0] for b in books) and all(t == trades[0] for t in trades)
    assert ["31000", "0.2", 1] in books[0]["asks"]
    assert trades[0][-1]["price"] == "31000" and trades[0][-1]["side"] == "buy"


# Requests refused before the log: each answered with its class, the digest unchanged.
REFUSED = [
    ({"action": "fetchMarkets", "args": [], "extra": 1}, "BadRequest"),
    ({"action": 7, "args": []}, "BadRequest"),
    ({"action": "withdraw", "args": []}, "BadRequest"),
    ({"action": "fetchOrderBook", "args": "BTC/USD"}, "BadRequest"),
    ({"action": "fetchOrderBook", "args": ["DOGE/USD"]}, "BadSymbol"),
    ({"action": "fetchTrades", "args": ["BTC/USD", -1]}, "BadRequest"),
    ({"action": "fetchOrder", "args": ["999999"]}, "OrderNotFound"),
    (
        {"action": "createOrder", "args": ["BTC/USD", "limit", "buy", "0.01", "30000"]},
        "AuthenticationError",
    ),
]
SIGNED_REFUSALS: list[tuple[list[Any], str]] = [
    (
        ["BTC/USD", "limit", "buy", "0.01", "30000.05"],
        "InvalidOrder: price 30000.05 is not a multiple of tick 0.1",
    ),
    (["BTC/USD", "limit", "buy", "0", "30000"], "InvalidOrder: amount 0 must be positive"),
    (["BTC/USD", "limit", "buy", "-1", "30000"], "InvalidOrder"),
    (["BTC/USD", "limit", "buy", 0.5, "30000"], "BadRequest"),
    (["XRP/USD", "limit", "buy", "1", "1"], "BadSymbol"),
    (["BTC/USD", "stop", "buy", "1", "1"], "InvalidOrder"),
]


def test_bad_requests_are_answered_and_change_nothing(cluster: Cluster) -> None:
    before = cluster.wait_converged()
    for payload, error_class in REFUSED:
        with pytest.raises(RpcError, match=rf"^{error_class}: "):
            raw(cluster, 1, payload)
    for args, prefix in SIGNED_REFUSALS:
        with pytest.raises(RpcError, match=rf"^{re.escape(prefix)}"):
            raw(cluster, 1, signed(cluster, 1, "createOrder", args))
    with pytest.raises(RpcError, match=r"^OrderNotFound: "):  # someone else's order
        mine = cluster.writer(2)
        order = mine.create_order("BTC/USD", "limit", "buy", "0.01", "10")
        mine.close()
        before = cluster.wait_converged()
        raw(cluster, 1, signed(cluster, 1, "cancelOrder", [order["id"]]))
    assert cluster.wait_converged() == before


def test_authentication_failures(cluster: Cluster) -> None:
    args = ["BTC/USD", "limit", "buy", "0.01", "20"]
    before = cluster.wait_converged()
    for spoil in ({"signature": "00" * 48}, {"key": "not-my-key"},
                  {"nonce": str(time.time_ns() // 1000 - 120_000_000)}, {"nonce": "abc"}):  # fmt: skip
        payload = signed(cluster, 1, "createOrder", args)
        payload["auth"].update(spoil)
        with pytest.raises(RpcError, match=r"^AuthenticationError: "):
            raw(cluster, 1, payload)
    with pytest.raises(RpcError, match=r"^AuthenticationError: "):  # p1's key at p2
        raw(cluster, 2, signed(cluster, 1, "createOrder", args))
    assert cluster.wait_converged() == before
    accepted = signed(cluster, 1, "createOrder", args)
    raw(cluster, 1, accepted)
    with pytest.raises(RpcError, match=r"^AuthenticationError: nonce .* already used"):
        raw(cluster, 1, accepted)


def test_orders_the_book_decides_are_refused_through_the_log(cluster: Cluster) -> None:
    with cluster.writer(2) as p2, cluster.writer(1) as p1:
        p2.create_order("ETH/USD", "limit", "sell", "1", "3000")
        with pytest.raises(OrderNotFillable):
            p1.create_order("ETH/USD", "limit", "buy", "5", "3000", {"timeInForce": "FOK"})
        with pytest.raises(OrderImmediatelyFillable):
            p1.create_order("ETH/USD", "limit", "buy", "1", "3000", {"postOnly": True})
        with pytest.raises(InvalidOrder):
            p1.create_order("ETH/USD", "limit", "buy", "1", "0.001")
        with pytest.raises(BadSymbol):
            p1.fetch_order_book("NOPE/USD")
        with pytest.raises(BadRequest):
            p1.create_order("ETH/USD", "limit", "buy", 1.5, "10")  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError), cluster.reader(1) as anonymous:
        anonymous.call("createOrder", ["ETH/USD", "limit", "buy", "1", "10"])


def test_oversize_and_malformed_bodies_get_an_answer(cluster: Cluster) -> None:
    url = f"http://{cluster.peers[0].ready['rpc']}/"
    for body, status in ((b"x" * (70 * 1024), 413), (b"{not json", 400), (b"[1,2]", 400)):
        request = urllib.request.Request(url, data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == status
        assert refused.value.read()  # a reason, never silence
    with cluster.reader(1) as client:
        assert client.fetch_status()["status"] == "ok"


def test_command_log_replays_to_the_live_digest(cluster: Cluster) -> None:
    assert_log_replays(cluster, cluster.peers[1].data_dir)


def test_metrics_and_json_logs(grape_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.node.conftest import start_cluster

    single = start_cluster(tmp_path_factory.mktemp("metrics"), grape_url, 1, network="metrics",
                           extra_args=("--metrics-port", "0", "--log-json"))  # fmt: skip
    try:
        with single.writer(1) as client:
            client.create_order("BTC/USD", "limit", "sell", "1", "100")
            client.create_order("BTC/USD", "limit", "buy", "0.5", "100")
            with pytest.raises(InvalidOrder):
                client.create_order("BTC/USD", "limit", "buy", "0", "100")
        address = single.peers[0].ready["metrics"]
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        assert 'peerbook_orders_total{outcome="accepted"} 2.0' in text
        assert "peerbook_trades_total 1.0" in text
        assert "peerbook_applied_sequence 2.0" in text
        assert "peerbook_is_leader 1.0" in text
        assert 'peerbook_requests_total{action="createOrder",outcome="InvalidOrder"} 1.0' in text
        assert "peerbook_commit_seconds_count 2.0" in text
        peer = single.peers[0]  # counters are rebuilt from the journal after a restart
        single.run(single.network.stop(peer))
        single.run(single.network.restart(peer))
        with urllib.request.urlopen(f"http://{peer.ready['metrics']}/metrics", timeout=10) as reply:
            assert 'peerbook_orders_total{outcome="accepted"} 2.0' in reply.read().decode()
    finally:
        single.close()
    records = [json.loads(line) for line in
               (single.peers[0].data_dir / "node.log").read_text().splitlines()]  # fmt: skip
    applied = [r for r in records if r["message"] == "createOrder applied"]
    assert [r["sequence"] for r in applied] == [1, 2]
    assert all(r["peer"] == "p1" and r["order"] == r["sequence"] for r in applied)


def test_audit_trail_holds_what_the_api_serves(cluster: Cluster) -> None:
    import sqlite3

    with cluster.writer(1) as p1, cluster.writer(2) as p2:
        maker = p1.create_order(
            "ETH/USD", "limit", "buy", "0.7", "1500.25", {"clientOrderId": "au"}
        )
        taker = p2.create_order("ETH/USD", "limit", "sell", "0.2", "1500")
    cluster.wait_converged()
    time.sleep(0.6)  # three flush periods
    with cluster.reader(1) as reader:
        served = reader.fetch_order(maker["id"])
        trade = reader.fetch_trades("ETH/USD", None, 1)[0]
    for peer in cluster.peers:
        with sqlite3.connect(peer.data_dir / "audit.sqlite3") as db:
            row = db.execute("select owner, client_order_id, price, filled, remaining, state "
                             "from orders where id = ?", (int(maker["id"]),)).fetchone()  # fmt: skip
            assert row == ("p1", "au", "1500.25", served["filled"], served["remaining"],
                           "partially_filled")  # fmt: skip
            stored = db.execute("select price, amount, taker_order, maker_order from trades "
                                "where id = ?", (int(trade["id"]),)).fetchone()  # fmt: skip
            assert stored == ("1500.25", "0.2", int(taker["id"]), int(maker["id"]))


def test_the_api_over_websocket(cluster: Cluster) -> None:
    from peerbook.grenache import WsRpcClient

    async def ask() -> tuple[Json, str]:
        client = WsRpcClient(Link(cluster.grape))
        try:
            status = await client.request(
                "peerbook:main:peer:p3:ws", {"action": "fetchStatus", "args": []}
            )
            # The contract's names answer WebSocket clients too (on the HTTP API's port).
            same = await client.request(
                "peerbook:main:peer:p3", {"action": "fetchStatus", "args": []}
            )
            assert isinstance(same, dict) and same["info"]["peer"] == "p3"
            try:
                await client.request(
                    "peerbook:main:rpc:ws", {"action": "fetchOrderBook", "args": ["X/Y"]}
                )
            except RpcError as exc:
                return status, str(exc)
            return status, ""
        finally:
            await client.close()

    status, error = asyncio.run(ask())
    assert isinstance(status, dict) and status["info"]["peer"] == "p3"
    assert error == "BadSymbol: unknown market X/Y"


def test_non_ascii_auth_is_refused_not_crashed(cluster: Cluster) -> None:
    args = ["BTC/USD", "limit", "buy", "0.01", "20"]
    for spoil in ({"key": "\ud800"}, {"nonce": "²"}, {"signature": "é" * 96}):
        payload = signed(cluster, 1, "createOrder", args)
        payload["auth"].update(spoil)
        with pytest.raises(RpcError, match=r"^AuthenticationError: "):
            raw(cluster, 1, payload)


def test_a_request_for_another_peer_is_refused(cluster: Cluster) -> None:
    async def send() -> Json:
        client = RpcClient(Link(cluster.grape))
        try:
            address = cluster.peers[0].ready["rpc"]  # p1, asked as if it were p2
            return await client.send(address, "peerbook:main:peer:p2",
                                     {"action": "fetchOpenOrders", "args": []}, timeout_s=15)  # fmt: skip
        finally:
            await client.close()

    with pytest.raises(RpcError, match=r"^ExchangeNotAvailable: this is peer p1"):
        asyncio.run(send())


def test_a_second_bootstrap_of_a_live_network_is_refused(cluster: Cluster, tmp_path: Any) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "peerbook", "node", "--grape", cluster.grape,
         "--data-dir", str(tmp_path / "rogue"), "--bootstrap"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "network main already exists" in done.stderr
