"""Three members in one process replicating orders over Grenache HTTP with pysyncobj."""

import asyncio
import json
import os
import random
from typing import Any

import pytest

from peerbook.engine import Engine
from peerbook.errors import ReplicationError, RpcError, UnknownOutcomeError
from peerbook.grenache import Link, RpcClient, RpcServer
from peerbook.grenache.protocol import Json
from peerbook.replay import replay
from peerbook.replication import Batcher, OrderStateMachine, encode_entry
from peerbook.replication.raft_adapter import RaftLog
from peerbook.replication.raft_transport import RAFT_BODY_BYTES_MAX, RAFT_SERVICE_KEY, RaftEndpoint

SECRET = os.urandom(32)


def raft_handler(endpoint: RaftEndpoint) -> Any:
    async def handle(key: str, payload: Json) -> Json:
        if key != RAFT_SERVICE_KEY:
            raise RpcError(f"unknown service {key}")
        return endpoint.receive(payload)

    return handle


class RecordingMachine(OrderStateMachine):
    """Keeps the entries it applied, to replay them offline afterwards."""

    def __init__(self) -> None:
        super().__init__(Engine())
        self.entries: list[str] = []

    def apply(self, index: int, text: str) -> Any:
        if index > self.applied_index:
            self.entries.append(text)
        return super().apply(index, text)


async def wait_for(condition: Any, what: str, seconds: float = 15) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


def order(rng: random.Random, index: int) -> list[Any]:
    side = rng.choice(["buy", "sell"])
    price = f"{30_000 + rng.randint(-5, 5)}"
    return [
        "BTC/USD",
        "limit",
        side,
        f"0.{rng.randint(1, 9):04d}",
        price,
        {"clientOrderId": f"c{index}"},
    ]


def test_three_members_apply_the_same_orders_and_match_replay() -> None:
    async def scenario() -> None:
        endpoints = [RaftEndpoint(SECRET) for _ in range(3)]
        servers = [
            RpcServer(raft_handler(e), body_bytes_max=RAFT_BODY_BYTES_MAX) for e in endpoints
        ]
        for server in servers:
            await server.start()
        addresses = [f"127.0.0.1:{s.port}" for s in servers]
        clients = [RpcClient(Link("http://127.0.0.1:9")) for _ in range(3)]
        machines = [RecordingMachine() for _ in range(3)]
        logs = [
            RaftLog(
                address,
                [a for a in addresses if a != address],
                machine,
                endpoint=endpoint,
                client=client,
                secret=SECRET,
            )
            for address, machine, endpoint, client in zip(
                addresses, machines, endpoints, clients, strict=True
            )
        ]
        try:
            await wait_for(lambda: any(log.role == "leader" for log in logs), "a leader")
            batchers = [Batcher(f"p{i}", log.propose) for i, log in enumerate(logs)]
            rng = random.Random(5)
            submissions = [
                batchers[i % 3].submit("createOrder", f"p{i % 3}", order(rng, i))
                for i in range(600)
            ]
            outcomes = await asyncio.wait_for(asyncio.gather(*submissions), 30)
            assert all(o.error is None and o.events for o in outcomes)
            target = max(m.applied_index for m in machines)
            await wait_for(lambda: all(m.applied_index >= target for m in machines), "convergence")
            digests = {(m.engine.sequence, m.engine.digest()) for m in machines}
            assert len(digests) == 1
            assert machines[0].engine.sequence == 600
            commands = [c for text in machines[0].entries for c in json.loads(text)["commands"]]
            lines: list[str] = []
            replay((json.dumps(c) for c in commands), Engine().markets.values(), lines.append)
            last = json.loads(lines[-1])
            assert {(last["applied"], last["digest"])} == digests
        finally:
            for log in logs:
                log.close()
            for client in clients:
                await client.close()
            for server in servers:
                await server.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def signed_batch(secret: bytes, counter: int, body: str = "[]") -> dict[str, Any]:
    from peerbook.replication.raft_transport import _mac

    return {
        "from": "127.0.0.1:1",
        "boot": "b",
        "n": counter,
        "messages": body,
        "mac": _mac(secret, "127.0.0.1:1", "b", counter, body),
    }


def test_raft_endpoint_refuses_unsigned_forged_and_replayed_batches() -> None:
    endpoint = RaftEndpoint(SECRET)
    delivered: list[Any] = []
    endpoint.deliver = lambda sender, messages: delivered.append((sender, messages))
    assert endpoint.receive(signed_batch(SECRET, 1, '[{"d":{"type":"request_vote"}}]')) == {
        "ok": True
    }
    assert delivered == [("127.0.0.1:1", [{"type": "request_vote"}])]
    for payload, reason in [
        (signed_batch(os.urandom(32), 2), "bad signature"),
        ({**signed_batch(SECRET, 3), "messages": '[{"d":{"type":"forged"}}]'}, "bad signature"),
        (signed_batch(SECRET, 1), "replayed"),
        ({"from": "x"}, "malformed"),
        ("not an object", "not an object"),
        (signed_batch(SECRET, 4, "\x80\x03cos\nsystem\n"), "not a Raft message"),
    ]:
        try:
            endpoint.receive(payload)
        except RpcError as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(f"accepted {payload!r:.80}")
    assert len(delivered) == 1


def test_two_of_three_members_keep_committing_when_one_stops() -> None:
    async def scenario() -> None:
        endpoints = [RaftEndpoint(SECRET) for _ in range(3)]
        servers = [
            RpcServer(raft_handler(e), body_bytes_max=RAFT_BODY_BYTES_MAX) for e in endpoints
        ]
        for server in servers:
            await server.start()
        addresses = [f"127.0.0.1:{s.port}" for s in servers]
        clients = [RpcClient(Link("http://127.0.0.1:9")) for _ in range(3)]
        machines = [RecordingMachine() for _ in range(3)]
        logs = [
            RaftLog(a, [x for x in addresses if x != a], m, endpoint=e, client=c, secret=SECRET)
            for a, m, e, c in zip(addresses, machines, endpoints, clients, strict=True)
        ]
        stopped: set[int] = set()
        try:
            await wait_for(lambda: any(log.role == "leader" for log in logs), "a leader")
            victim = next(i for i, log in enumerate(logs) if log.role == "follower")
            logs[victim].close()
            await servers[victim].stop()
            stopped.add(victim)
            survivor = next(i for i in range(3) if i != victim)
            batcher = Batcher("p", logs[survivor].propose)
            rng = random.Random(1)
            outcomes = await asyncio.wait_for(
                asyncio.gather(
                    *(batcher.submit("createOrder", "p", order(rng, i)) for i in range(50))
                ),
                15,
            )
            assert all(o.error is None for o in outcomes)
            live = [machines[i] for i in range(3) if i != victim]
            await wait_for(lambda: live[0].applied_index == live[1].applied_index, "convergence")
            assert live[0].engine.digest() == live[1].engine.digest()
            assert machines[victim].engine.sequence == 0
        finally:
            for index, log in enumerate(logs):
                if index not in stopped:
                    log.close()
            for client in clients:
                await client.close()
            for index, server in enumerate(servers):
                if index not in stopped:
                    await server.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_members_restarted_from_their_journals_recover_the_same_state(tmp_path: Any) -> None:
    async def run_cluster(orders: int, seed: int) -> list[tuple[int, str]]:
        endpoints = [RaftEndpoint(SECRET) for _ in range(3)]
        servers = [
            RpcServer(raft_handler(e), port=port, body_bytes_max=RAFT_BODY_BYTES_MAX)
            for e, port in zip(endpoints, ports, strict=True)
        ]
        for server in servers:
            await server.start()
        clients = [RpcClient(Link("http://127.0.0.1:9")) for _ in range(3)]
        machines = [RecordingMachine() for _ in range(3)]
        logs = [
            RaftLog(
                a,
                [x for x in addresses if x != a],
                m,
                endpoint=e,
                client=c,
                secret=SECRET,
                data_dir=d,
            )
            for a, m, e, c, d in zip(addresses, machines, endpoints, clients, dirs, strict=True)
        ]
        try:
            await wait_for(lambda: any(log.role == "leader" for log in logs), "a leader")
            if orders:
                batcher = Batcher("p", logs[0].propose)
                rng = random.Random(seed)
                await asyncio.wait_for(
                    asyncio.gather(
                        *(batcher.submit("createOrder", "p", order(rng, i)) for i in range(orders))
                    ),
                    15,
                )
            target = max(m.engine.sequence for m in machines)
            await wait_for(
                lambda: all(m.engine.sequence == target for m in machines), "convergence"
            )
            return [(m.engine.sequence, m.engine.digest()) for m in machines]
        finally:
            for log in logs:
                log.close()
            for client in clients:
                await client.close()
            for server in servers:
                await server.stop()

    import socket

    ports = []
    for _ in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    addresses = [f"127.0.0.1:{p}" for p in ports]
    dirs = [tmp_path / f"m{i}" for i in range(3)]
    for directory in dirs:
        directory.mkdir()
    before = asyncio.run(asyncio.wait_for(run_cluster(200, 3), 60))
    after = asyncio.run(asyncio.wait_for(run_cluster(0, 3), 60))  # nothing new: journals only
    assert len(set(before)) == 1 and before[0][0] == 200
    assert after == before


def test_a_member_cut_off_from_the_majority_refuses_writes_within_seconds() -> None:
    async def scenario() -> None:
        endpoints = [RaftEndpoint(SECRET) for _ in range(3)]
        servers = [
            RpcServer(raft_handler(e), body_bytes_max=RAFT_BODY_BYTES_MAX) for e in endpoints
        ]
        for server in servers:
            await server.start()
        addresses = [f"127.0.0.1:{s.port}" for s in servers]
        clients = [RpcClient(Link("http://127.0.0.1:9")) for _ in range(3)]
        logs = [
            RaftLog(
                a,
                [x for x in addresses if x != a],
                RecordingMachine(),
                endpoint=e,
                client=c,
                secret=SECRET,
            )
            for a, e, c in zip(addresses, endpoints, clients, strict=True)
        ]
        try:
            await wait_for(lambda: any(log.role == "leader" for log in logs), "a leader")
            leader = next(i for i, log in enumerate(logs) if log.role == "leader")
            for index in range(3):
                if index != leader:
                    logs[index].close()
                    await servers[index].stop()
            await asyncio.sleep(3)  # beyond leader_fallback_s (2 s): the lone leader steps down
            started = asyncio.get_running_loop().time()
            with pytest.raises(ReplicationError) as refused:
                await logs[leader].propose(encode_entry("p", []))
            assert not isinstance(refused.value, UnknownOutcomeError)  # certainly not applied
            assert asyncio.get_running_loop().time() - started < 1
        finally:
            logs[leader].close()
            for client in clients:
                await client.close()
            await servers[leader].stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
