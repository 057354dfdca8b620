"""Fuzzing the RPC surface of a real peer: random and mutated payloads, signed and unsigned.
Every request is answered (data, or an error string with a contract class); none crashes the
peer or goes unanswered, and the peer's replicated state stays consistent."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerbook.errors import RpcError
from peerbook.grenache import Link, RpcClient
from peerbook.node.auth import sign
from peerbook.node.datadir import DataDir
from tests.node.conftest import Cluster, assert_log_replays, start_cluster

CLASSES = ("BadRequest", "BadSymbol", "InvalidOrder", "OrderNotFound", "OrderImmediatelyFillable",
           "OrderNotFillable", "AuthenticationError", "ExchangeNotAvailable", "RequestTimeout")  # fmt: skip
ACTIONS = ["fetchMarkets", "createOrder", "cancelOrder", "fetchOrder", "fetchOpenOrders",
           "fetchClosedOrders", "fetchOrderBook", "fetchTrades", "fetchMyTrades", "fetchStatus"]  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["BTC/USD", "ETH/USD", "limit", "market", "buy", "sell", "0.01", "30000",
                     "30000.05", "0", "-1", "1e3", "GTC", "IOC", "FOK", "PO", "1"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6)
    | st.dictionaries(st.sampled_from(["clientOrderId", "timeInForce", "postOnly", "x"]), inner,
                      max_size=3),
    max_leaves=12,
)  # fmt: skip
payloads = st.one_of(
    values,
    st.fixed_dictionaries(
        {"action": st.one_of(st.sampled_from(ACTIONS), st.text(max_size=12)),
         "args": st.one_of(st.lists(values, max_size=7), values)},
        optional={"auth": values, "junk": values},
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def peer(grape_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("fuzz"), grape_url, 1, network="fuzz")
    try:
        yield cluster
    finally:
        cluster.close()


def answer(peer: Cluster, client: RpcClient, payload: Any) -> str:
    async def send() -> Any:
        return await client.send(peer.peers[0].ready["rpc"], "peerbook:fuzz:rpc", payload,
                                 timeout_s=15)  # fmt: skip

    try:
        peer.run(send())
    except RpcError as exc:
        return str(exc)
    return "ok"


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads, signed=st.booleans())
def test_every_payload_is_answered(peer: Cluster, payload: Any, signed: bool) -> None:
    client = peer.run(_client(peer.grape))
    try:
        if signed and isinstance(payload, dict) and isinstance(payload.get("action"), str):
            credentials = DataDir(peer.peers[0].data_dir).credentials()
            nonce = str(time.time_ns() // 1000)
            args = payload.get("args")
            payload = {**payload, "auth": {"key": credentials.key, "nonce": nonce,
                       "signature": sign(credentials.secret, nonce, payload["action"], args)}}  # fmt: skip
        reply = answer(peer, client, payload)
    finally:
        peer.run(client.close())
    assert reply == "ok" or reply.split(":", 1)[0] in CLASSES, reply


def test_the_peer_still_serves_and_replays_after_fuzzing(peer: Cluster, tmp_path: Path) -> None:
    assert_log_replays(peer, peer.peers[0].data_dir)


async def _client(grape: str) -> RpcClient:
    return RpcClient(Link(grape))
