"""Python Grenache against the real Node.js packages, in both directions.

Every test runs the Python side with ``asyncio.run`` (bounded by ``asyncio.wait_for``) and
the Node side as subprocesses of interop/node, started and stopped by PID by the harness:

1. our Link against two real Node grapes;
2. the Node Link against our EmbeddedGrape, differentially against a real Node grape;
3. Node PeerRPCClient (HTTP) -> our RpcServer;
4. our RpcClient -> Node PeerRPCServer (HTTP), with a dead announced peer;
5. WebSocket RPC both ways;
6. pub/sub both ways, including our Subscriber reconnecting to a restarted Node publisher.

Node scripts that must run while the Python side serves are run in a worker thread
(``asyncio.to_thread``), so the event loop keeps serving them.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Coroutine, MutableSequence
from types import TracebackType
from typing import Any, TypeVar, cast

import aiohttp
import pytest

from peerbook.errors import (
    AnnounceError,
    ConnectFailedError,
    GrapeError,
    LookupEmptyError,
    RpcError,
)
from peerbook.grenache import (
    EmbeddedGrape,
    Link,
    Publisher,
    RpcClient,
    RpcServer,
    Subscriber,
    WsRpcClient,
    WsRpcServer,
)
from peerbook.grenache.protocol import Json, immutable_key
from tests.interop.node_harness import (
    JsonLine,
    NodeProcess,
    free_port,
    run_node_script,
    start_node_script,
    unique,
)

pytestmark = pytest.mark.interop

T = TypeVar("T")

LOCAL = "127.0.0.1"


# ------------------------------------------------------------------ fixtures and helpers


def run(main: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run the Python side of a test on a fresh event loop, within ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(main, timeout))


async def node_script(name: str, *args: str, timeout: float = 20.0) -> list[JsonLine]:
    """Run a Node script to completion in a worker thread (so this loop keeps serving) and
    return its JSON lines, whatever its exit code (failed calls print ``error`` lines)."""
    return await asyncio.to_thread(run_node_script, name, *args, timeout=timeout, check=False)


class NodeProcesses:
    """Long-running Node scripts started from async code, all stopped by PID on exit.

    A process is recorded by the worker thread that starts it, so it is stopped even if
    the awaiting coroutine was cancelled by a timeout meanwhile.
    """

    def __init__(self) -> None:
        self._started: list[NodeProcess] = []

    async def start(self, name: str, *args: str) -> NodeProcess:
        def start() -> NodeProcess:
            process = start_node_script(name, *args)
            self._started.append(process)
            return process

        return await asyncio.to_thread(start)

    async def stop(self, process: NodeProcess) -> int | None:
        return await asyncio.to_thread(process.stop)

    def __enter__(self) -> NodeProcesses:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process in self._started:
            process.stop()


async def raw_post(
    url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """POST raw bytes (no Grenache framing at all); status and body."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        asyncio.timeout(timeout),
        session.post(url, data=body, headers=headers or {}) as response,
    ):
        return response.status, await response.read()


async def wait_for_peers(link: Link, name: str, count: int, timeout: float = 5.0) -> list[str]:
    """Poll ``link`` until ``name`` has at least ``count`` peers; they, sorted."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                peers = await link.lookup(name, fresh=True)
            except LookupEmptyError:
                peers = []
            if len(peers) >= count:
                return sorted(peers)
            await asyncio.sleep(0.05)


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"{what}: not within {timeout} s")


Seen = list[tuple[str, str, Json]]


def echo_handler(ident: str, seen: Seen) -> Callable[[str, Json], Awaitable[Json]]:
    """The Python twin of the Node scripts' handler: echo, and ``"boom"`` fails."""

    async def handler(key: str, payload: Json) -> Json:
        seen.append((ident, key, payload))
        if payload == "boom":
            raise RpcError("py-boom")
        return {"echo": payload, "from": ident}

    return handler


def replies(lines: list[JsonLine]) -> list[Json]:
    """The replies of rpc_client.js / ws_client.js, failing on any error line."""
    assert all("reply" in line for line in lines), lines
    return [line["reply"] for line in lines]


def error_message(lines: list[JsonLine]) -> str:
    """The error message of a failed single call of rpc_client.js / ws_client.js."""
    assert len(lines) == 1 and "error" in lines[0], lines
    return str(lines[0]["error"]["message"])


class DeadFirst(random.Random):
    """Peer choice that always tries ``dead`` first (PeerClient shuffles with its rng)."""

    def __init__(self, dead: str) -> None:
        super().__init__(0)
        self.dead = dead
        self.dead_tried_first = 0

    def shuffle(self, x: MutableSequence[Any]) -> None:
        self.dead_tried_first += self.dead in x
        ordered = sorted(x, key=lambda peer: peer != self.dead)
        x[:] = ordered


PAYLOAD: Json = {"ünï": "cödé", "n": [1, 2.5, None, True], "nested": {"s": "x y"}}


# ------------------------------------------------------------------ 1. Link <-> Node grapes


def test_python_link_against_two_node_grapes(grapes: list[str]) -> None:
    async def main() -> None:
        first, second = Link(grapes[0], timeout_s=5.0), Link(grapes[1], timeout_s=5.0)
        dead_grape = Link(f"http://{LOCAL}:{free_port()}", timeout_s=2.0)
        # A port out of range: every DHT node ignores it and the grape answers "All queries
        # failed" after its 2 s UDP timeout, so this runs alongside the rest.
        out_of_range = asyncio.create_task(first.announce(unique("py-link-range"), 70000))
        try:
            name = unique("py-link")
            stored = await first.announce(name, 5101)
            assert stored >= 1
            assert await wait_for_peers(second, name, 1) == [f"{LOCAL}:5101"]

            value = f"héllo wörld {name}"
            target = await first.put(value)
            assert target == immutable_key(value)
            assert await second.get(target) == value
            assert await first.get(target) == value
            assert await second.get(immutable_key(f"never stored {name}")) is None

            # Node Link <-> Python Link through the DHT: each sees what the other stored.
            node_value = f"from node {name}"
            lines = await node_script(
                "link_client.js",
                "--grape",
                grapes[1],
                json.dumps(
                    [
                        {"op": "lookup", "name": name, "wait_ms": 3000},
                        ["get", target],
                        ["put", {"v": node_value}],
                    ]
                ),
            )
            assert lines[0]["result"] == [f"{LOCAL}:5101"]
            assert lines[1]["result"]["v"] == value
            assert lines[2]["result"] == immutable_key(node_value)
            assert await first.get(immutable_key(node_value)) == node_value

            with pytest.raises(LookupEmptyError):
                await second.lookup(unique("py-link-nobody"))
            with pytest.raises(GrapeError, match="ERR_GRAPE_LOOKUP") as bad_lookup:
                await second.lookup("")
            assert not isinstance(bad_lookup.value, LookupEmptyError)
            with pytest.raises(AnnounceError, match="ERR_GRAPE_SERVICE_PORT"):
                await first.announce(name, cast(int, "5101"))  # what a careless caller sends
            with pytest.raises(GrapeError, match="v must be less than 1000 bytes"):
                await first.put("x" * 1000)
            with pytest.raises(ConnectFailedError):
                await dead_grape.lookup(name)
            with pytest.raises(AnnounceError, match="All queries failed"):
                await out_of_range
        finally:
            out_of_range.cancel()
            await asyncio.gather(out_of_range, return_exceptions=True)
            for link in (first, second, dead_grape):
                await link.close()

    run(main(), 20.0)


# ------------------------------------------------------------------ 2. Node Link <-> EmbeddedGrape


def _normalise_link_lines(lines: list[JsonLine]) -> list[JsonLine]:
    """link_client.js output without timings and without what differs by design between
    grapes: the answering node's id and the DHT token of a get."""
    out = []
    for raw in lines:
        line = {k: v for k, v in raw.items() if k != "ms"}
        result = line.get("result")
        if line["op"] == "get" and isinstance(result, dict):
            assert len(result.pop("id")) == 40
            result.pop("token")
        out.append(line)
    return out


# Raw grape API calls (path, body) whose answers (status, body) must be byte-identical.
GRAPE_RAW_CASES: list[tuple[str, bytes]] = [
    ("/nope", b'{"rid":"r","data":1}'),
    ("/", b"{}"),
    ("/LOOKUP", b'{"data":"svc"}'),
    ("/lookup?x=1", b'{"data":"svc"}'),
    ("/lookup", b"garbage"),
    ("/lookup", b""),
    ("/lookup", b"null"),
    ("/lookup", b'"just a string"'),
    ("/lookup", b"5"),
    ("/lookup", b"{}"),
    ("/lookup", b'{"data":""}'),
    ("/lookup", b'{"data":["svc"]}'),
    ("/lookup", b'{"data":42}'),
    ("/announce", b"{}"),
    ("/announce", b'{"data":"svc"}'),
    ("/announce", b'{"data":["svc","5001"]}'),
    ("/announce", b'{"data":["svc",5001.5]}'),
    ("/announce", b'{"data":["svc",null]}'),
    ("/announce", b'{"data":["svc",true]}'),
    ("/announce", b'{"data":["svc",70000]}'),  # "All queries failed" (Node: after 2 s)
    ("/announce", b'{"data":["svc",-1]}'),
    ("/put", b'{"data":{"v":"' + b"x" * 1000 + b'"}}'),
    ("/put", b'{"data":{"v":""}}'),
    ("/put", '{"data":{"v":"é é"}}'.encode()),
    ("/put", b'{"data":{"v":"a","k":"' + b"00" * 32 + b'","seq":1,"sig":"' + b"00" * 64 + b'"}}'),
    ("/get", b'{"data":"zz"}'),
    ("/get", b'{"data":{"hash":"zz"}}'),
    ("/get", b'{"data":"' + b"0" * 40 + b'"}'),
    ("/announce", b'{"data":["svc"]}'),  # Node checks the array, then data[1]
    ("/announce", b'{"data":[]}'),
    ("/put", ('{"data":{"v":"' + "é" * 500 + '"}}').encode()),  # 500 chars, 1000 bytes: stored
    ("/put", b'{"data":"bare"}'),  # a bare string is the value
    ("/get", b'{"data":5}'),  # "ERR_GRAPE_GENERIC"
]


def test_node_link_against_embedded_grape_matches_node_grape(grapes: list[str]) -> None:
    node_grape = grapes[0]

    async def main() -> None:
        embedded = EmbeddedGrape(port=0)
        await embedded.start()
        python_link = Link(embedded.url, timeout_s=5.0)
        try:
            name = unique("node-link-embedded")
            value = f"stored by node {name}"
            ops = json.dumps(
                [
                    ["announce", name, 5201],
                    {"op": "lookup", "name": name, "wait_ms": 3000},
                    ["put", {"v": value}],
                    ["get", immutable_key(value)],
                    ["get", immutable_key(f"missing {name}")],
                    ["announce", unique("bad-port"), "5201"],
                    ["announce", unique("float-port"), 5201.5],
                    ["lookup", ["not", "a", "string"]],
                    ["lookup", unique("nobody")],
                    ["put", {"v": "x" * 1000}],
                ]
            )
            on_node, on_embedded = await asyncio.gather(
                node_script("link_client.js", "--grape", node_grape, ops),
                node_script("link_client.js", "--grape", embedded.url, ops),
            )
            results: list[Json] = [line.get("result", line.get("error")) for line in on_embedded]
            assert results[:3] == [1, [f"{LOCAL}:5201"], immutable_key(value)]
            assert results[3]["v"] == value
            assert results[4:] == [
                "",  # get of a missing hash: empty body, which the Node Link passes on as ""
                "ERR_GRAPE_SERVICE_PORT",  # the Node Link returns 200 error strings as results
                "ERR_GRAPE_SERVICE_PORT",
                {"message": "ERR_GRAPE_LOOKUP_EMPTY", "code": None},
                {"message": "ERR_GRAPE_LOOKUP_EMPTY", "code": None},
                "v must be less than 1000 bytes in put()",
            ]
            assert _normalise_link_lines(on_embedded) == _normalise_link_lines(on_node)

            # What the Node Link did is visible to our Link on the embedded grape.
            assert await python_link.lookup(name) == [f"{LOCAL}:5201"]
            assert await python_link.get(immutable_key(value)) == value

            # Raw grape API answers, byte for byte (every call at once: the Node grape
            # takes 2 s to give up on the out-of-range port).
            calls = [
                (url + path, body)
                for url in (node_grape, embedded.url)
                for path, body in GRAPE_RAW_CASES
            ]
            answers = await asyncio.gather(*(raw_post(url, body) for url, body in calls))
            count = len(GRAPE_RAW_CASES)
            mismatches = [
                (path, body[:60], node, ours)
                for (path, body), node, ours in zip(
                    GRAPE_RAW_CASES, answers[:count], answers[count:], strict=True
                )
                if node != ours
            ]
            assert mismatches == []
        finally:
            await python_link.close()
            await embedded.stop()

    run(main(), 25.0)


# ------------------------------------------------------------------ 3. Node client -> RpcServer


def test_node_rpc_client_calls_python_rpc_servers(grapes: list[str]) -> None:
    async def main() -> None:
        seen: Seen = []
        servers = [RpcServer(echo_handler(ident, seen)) for ident in ("P1", "P2")]
        link, observer = Link(grapes[0]), Link(grapes[1])
        name = unique("py-rpc")
        try:
            for server in servers:
                await server.start()
                assert server.host == LOCAL
                await link.start_announcing(name, server.port)
            assert await wait_for_peers(observer, name, 2) == sorted(
                f"{LOCAL}:{server.port}" for server in servers
            )
            client = ("rpc_client.js", "--grape", grapes[1], "--timeout", "5000")
            payload = json.dumps(PAYLOAD)
            plain, zipped, mapped, boom, map_boom, too_large = await asyncio.gather(
                node_script(*client, "--count", "6", "request", name, payload),
                node_script(*client, "--compress", "--count", "2", "request", name, '"zipped ü"'),
                node_script(*client, "--compress", "map", name, payload),
                node_script(*client, "request", name, '"boom"'),
                node_script(*client, "map", name, '"boom"'),
                # Over RpcServer's 64 KiB limit: answered 413 at once, not left hanging.
                node_script(*client, "request", name, json.dumps("x" * 70_000)),
            )
            assert len(plain) == 6
            for reply in replies(plain):
                assert reply["echo"] == PAYLOAD
                assert reply["from"] in {"P1", "P2"}
            assert [reply["echo"] for reply in replies(zipped)] == ["zipped ü"] * 2
            (mapped_reply,) = replies(mapped)
            assert sorted(r["from"] for r in mapped_reply) == ["P1", "P2"]
            assert all(r["echo"] == PAYLOAD for r in mapped_reply)
            assert error_message(boom) == "py-boom"
            assert error_message(map_boom) == "py-boom"
            message = error_message(too_large)
            assert message.startswith("ERR_REQUEST_GENERIC: ")
            assert "ERR_PAYLOAD_TOO_LARGE" in message
            assert too_large[0]["ms"] < 2000

            # Every request reached a handler under the looked-up name; the oversized never did.
            assert len(seen) == 6 + 2 + 2 + 1 + 2
            assert {key for _, key, _ in seen} == {name}

            # A body that is not a Grenache request gets 400 and a Grenache error at once
            # (a Node server stays silent: see the RpcClient test).
            status, body = await raw_post(f"http://{LOCAL}:{servers[0].port}/", b"not json")
            assert status == 400
            rid, error, data = json.loads(body)
            assert (rid, data) == (None, None)
            assert error.startswith("ERR_BAD_REQUEST")
        finally:
            await link.close()
            await observer.close()
            for server in servers:
                await server.stop()

    run(main(), 30.0)


def test_node_compressed_request_too_large_gets_readable_error(grapes: list[str]) -> None:
    async def main() -> None:
        server = RpcServer(echo_handler("P", []))
        link = Link(grapes[0])
        name = unique("py-rpc-zip-large")
        try:
            await server.start()
            await link.announce(name, server.port)
            await wait_for_peers(link, name, 1)
            # 70 000 "x" gzip to ~100 bytes; inflated they exceed the 64 KiB limit: 413.
            lines = await node_script(
                "rpc_client.js",
                *("--grape", grapes[1], "--compress", "--timeout", "5000"),
                *("request", name, json.dumps("x" * 70_000)),
            )
            message = error_message(lines)
            assert message.startswith("ERR_REQUEST_GENERIC: ")
            assert "ERR_PAYLOAD_TOO_LARGE" in message
        finally:
            await link.close()
            await server.stop()

    run(main(), 20.0)


# ------------------------------------------------------------------ 4. RpcClient -> Node server


def test_python_rpc_client_calls_node_rpc_servers(grapes: list[str]) -> None:
    both, one = unique("node-rpc"), unique("node-rpc-one")
    with (
        start_node_script(
            "rpc_server.js",
            *("--grape", grapes[0], "--service", both, "--service", one, "--id", "N1"),
        ) as n1,
        start_node_script(
            "rpc_server.js", "--grape", grapes[1], "--service", both, "--id", "N2"
        ) as n2,
    ):

        async def main() -> None:
            link = Link(grapes[1], timeout_s=5.0)
            fresh_link = Link(grapes[1], timeout_s=5.0, lookup_cache_s=0.0)
            client = RpcClient(link, timeout_s=5.0)
            dead = f"{LOCAL}:{free_port()}"  # announced, nothing listens there
            dead_rng = DeadFirst(dead)
            dead_first = RpcClient(fresh_link, timeout_s=5.0, rng=dead_rng)
            try:
                await wait_for_peers(link, both, 2)
                froms = set()
                for _ in range(6):
                    reply = await client.request(both, PAYLOAD)
                    assert reply["echo"] == PAYLOAD
                    froms.add(reply["from"])
                assert froms <= {"N1", "N2"}
                zipped = await client.request(both, "zipped ü", compress=True)
                assert zipped["echo"] == "zipped ü"
                mapped = await client.map(both, [1, "two"])
                assert sorted(r["from"] for r in mapped) == ["N1", "N2"]
                mapped = await client.map(both, "m", compress=True)
                assert sorted(r["from"] for r in mapped) == ["N1", "N2"]
                with pytest.raises(RpcError) as boom:
                    await client.request(both, "boom")
                assert str(boom.value) == "boom: something failed"
                with pytest.raises(RpcError, match=r"^boom: something failed$"):
                    await client.map(both, "boom", compress=True)

                # One dead announced peer next to the live Node server.
                assert await link.announce(one, int(dead.rsplit(":", 1)[1])) >= 1
                peers = await wait_for_peers(link, one, 2)
                assert dead in peers
                settled = await client.map_settled(one, "settled")
                assert sorted(s.peer for s in settled) == peers
                by_peer = {s.peer: s for s in settled}
                assert isinstance(by_peer[dead].error, ConnectFailedError)
                assert by_peer[dead].result is None
                (live,) = (s for s in settled if s.peer != dead)
                assert live.error is None
                assert live.result == {"echo": "settled", "from": "N1"}
                with pytest.raises(ConnectFailedError):
                    await client.map(one, "all or nothing")
                for _ in range(3):  # the dead peer is tried first each time, then skipped
                    assert await dead_first.request(one, "retry") == {"echo": "retry", "from": "N1"}
                assert dead_rng.dead_tried_first == 3

                # A Node server never answers a body it cannot parse (ours answers 400).
                with pytest.raises(TimeoutError):
                    await raw_post(f"http://{LOCAL}:{n1.ready['port']}/", b"not json", timeout=0.5)
            finally:
                await client.close()
                await dead_first.close()
                await link.close()
                await fresh_link.close()

        run(main(), 25.0)

    requests = [line["request"] for line in n1.lines() + n2.lines() if "request" in line]
    assert {request["key"] for request in requests} == {both, one}
    assert [r["payload"] for r in requests].count(PAYLOAD) == 6
    assert [r["payload"] for r in requests].count("zipped ü") == 1
    assert [r["payload"] for r in requests].count("retry") == 3


# ------------------------------------------------------------------ 5. WebSocket RPC


def test_node_http_and_websocket_clients_reach_one_server_under_one_name(
    grapes: list[str],
) -> None:
    """A peer's RPC names answer both transports on one port: the HTTP server hands
    WebSocket upgrades to a WebSocket server (a grenache-nodejs-ws client connects to
    ws://HOST:PORT/ws of whatever the name is announced on)."""
    name = unique("both")

    async def main() -> None:
        seen: Seen = []
        websocket = WsRpcServer(echo_handler("PB", seen))
        server = RpcServer(echo_handler("PB", seen), upgrade=websocket.upgrade)
        link, observer = Link(grapes[0]), Link(grapes[1])
        try:
            await server.start()
            await link.start_announcing(name, server.port)
            await wait_for_peers(observer, name, 1)
            over_http, over_ws = await asyncio.gather(
                node_script("rpc_client.js", "--grape", grapes[1], "--timeout", "5000",
                            "request", name, json.dumps(PAYLOAD)),
                node_script("ws_client.js", "--grape", grapes[1], "--timeout", "5000",
                            "--count", "2", "request", name, json.dumps(PAYLOAD)),
            )  # fmt: skip
            assert [r["echo"] for r in replies(over_http)] == [PAYLOAD]
            assert [r["echo"] for r in replies(over_ws)] == [PAYLOAD, PAYLOAD]
            assert len(seen) == 3
        finally:
            await link.close()
            await observer.close()
            await websocket.stop()
            await server.stop()

    run(main(), 30.0)


def test_ws_rpc_python_client_to_node_server_and_node_client_to_python_server(
    grapes: list[str],
) -> None:
    node_name, python_name = unique("node-ws"), unique("py-ws")
    with start_node_script(
        "ws_server.js", "--grape", grapes[0], "--service", node_name, "--id", "W1"
    ) as w1:

        async def main() -> None:
            seen: Seen = []
            servers = [WsRpcServer(echo_handler(ident, seen)) for ident in ("PW1", "PW2")]
            link, observer = Link(grapes[0]), Link(grapes[1])
            client = WsRpcClient(observer, timeout_s=5.0)
            try:
                for server in servers:
                    await server.start()
                    assert server.host == LOCAL
                    await link.start_announcing(python_name, server.port)
                await wait_for_peers(observer, python_name, 2)
                await wait_for_peers(observer, node_name, 1)

                # Python client -> Node server: many requests in flight on one socket.
                payloads = [PAYLOAD, "two", 3, None, [4, {"five": 5}]]
                answers = await asyncio.gather(*(client.request(node_name, p) for p in payloads))
                assert answers == [{"echo": p, "from": "W1"} for p in payloads]
                assert await client.map(node_name, "m") == [{"echo": "m", "from": "W1"}]
                with pytest.raises(RpcError) as boom:
                    await client.request(node_name, "boom")
                assert str(boom.value) == "boom: something failed"

                # Node client -> Python servers.
                ws_client = ("ws_client.js", "--grape", grapes[1], "--timeout", "5000")
                plain, mapped, failed = await asyncio.gather(
                    node_script(
                        *ws_client, "--count", "3", "request", python_name, json.dumps(PAYLOAD)
                    ),
                    node_script(*ws_client, "map", python_name, '"m"'),
                    node_script(*ws_client, "request", python_name, '"boom"'),
                )
                for reply in replies(plain):
                    assert reply["echo"] == PAYLOAD
                    assert reply["from"] in {"PW1", "PW2"}
                (mapped_reply,) = replies(mapped)
                assert sorted(r["from"] for r in mapped_reply) == ["PW1", "PW2"]
                assert error_message(failed) == "py-boom"
                assert len(seen) == 3 + 2 + 1
                assert {key for _, key, _ in seen} == {python_name}
            finally:
                await client.close()
                await link.close()
                await observer.close()
                for server in servers:
                    await server.stop()

        run(main(), 30.0)

    requests = [line["request"] for line in w1.lines() if "request" in line]
    assert len(requests) == 5 + 1 + 1
    assert {request["key"] for request in requests} == {node_name}


# ------------------------------------------------------------------ 6. pub/sub


def test_python_publisher_to_node_subscriber(grapes: list[str]) -> None:
    messages = [f"message {i}" for i in range(20)]
    messages += ['{"seq":20,"price":"30000.5"}', "ünïcödé ✓", "", "y" * 20_000, "last"]

    async def main() -> None:
        name = unique("py-pub")
        publisher = Publisher()
        link, observer = Link(grapes[0]), Link(grapes[1])
        try:
            await publisher.start()
            assert publisher.host == LOCAL
            await link.start_announcing(name, publisher.port)
            await wait_for_peers(observer, name, 1)
            subscriber = asyncio.create_task(
                node_script(
                    "sub.js",
                    *("--grape", grapes[1], "--service", name),
                    *("--count", str(len(messages)), "--timeout", "15000"),
                )
            )
            await wait_until(
                lambda: publisher.subscribers >= 1 or subscriber.done(), 10.0, "Node subscriber"
            )
            assert publisher.subscribers == 1, subscriber.result() if subscriber.done() else None
            for message in messages:
                await publisher.publish(message)
            lines = await subscriber
            assert [line["message"] for line in lines if "message" in line] == messages
            assert "error" not in lines[-1]
        finally:
            await link.close()
            await observer.close()
            await publisher.stop()

    run(main(), 25.0)


def test_node_publisher_to_python_subscriber_resumes_after_publisher_restart(
    grapes: list[str],
) -> None:
    first = ["one", {"seq": 2}, "three ✓"]
    second = ["after restart", {"seq": 5}, "six"]

    def as_text(messages: list[Json]) -> list[str]:
        return [m if isinstance(m, str) else json.dumps(m, separators=(",", ":")) for m in messages]

    async def main(nodes: NodeProcesses) -> None:
        name = unique("node-pub")
        pub = ("pub.js", "--grape", grapes[0], "--service", name, "--wait-subscribers", "1")
        link = Link(grapes[1])
        subscriber = Subscriber(link, name, backoff_s=(0.05, 0.5), connect_timeout_s=2.0)
        try:
            publisher = await nodes.start(*pub, "--interval", "20", json.dumps(first))
            subscriber.start()
            received = [await asyncio.wait_for(subscriber.receive(), 10.0) for _ in first]
            assert received == as_text(first)
            assert subscriber.connections == 1

            # Kill the publisher and start another under the same name (a new port; the old
            # one stays announced for a while): Node's PeerSub would stay disconnected.
            assert await nodes.stop(publisher) == 0
            await nodes.start(*pub, "--interval", "20", json.dumps(second))
            received = [await asyncio.wait_for(subscriber.receive(), 15.0) for _ in second]
            assert received == as_text(second)
            assert subscriber.connections == 2
            assert subscriber.dropped == 0
        finally:
            await subscriber.close()
            await link.close()

    with NodeProcesses() as nodes:
        run(main(nodes), 35.0)
