"""Replicated-log members (real pysyncobj, real WebSocket RPC on 127.0.0.1) in one process."""

import asyncio
import json
import os
import random
import socket
from pathlib import Path
from typing import Any

import pytest

from peerbook.engine import Engine
from peerbook.errors import ReplicationError, RpcError, UnknownOutcomeError
from peerbook.replay import replay
from peerbook.replication import Batcher, OrderStateMachine, Outcome, encode_entry
from peerbook.replication.codec import decode_message
from peerbook.replication.raft_transport import RaftEndpoint, _mac
from peerbook.testing.cluster import InProcessCluster

SECRET = os.urandom(32)


class RecordingMachine(OrderStateMachine):
    """Keeps the entries it applied, to replay them offline afterwards."""

    def __init__(self) -> None:
        super().__init__(Engine())
        self.entries: list[str] = []

    def apply(self, index: int, text: str) -> Any:
        if index > self.applied_index:
            self.entries.append(text)
        return super().apply(index, text)


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


async def submit(batcher: Batcher, owner: str, args: list[Any]) -> Outcome:
    """Submit like a careful client: after an error that leaves the outcome unknown or says
    "not applied" (an election under load), retry with the same client order id, which the
    engine makes harmless."""
    for _ in range(50):
        try:
            return await batcher.submit("createOrder", owner, args)
        except ReplicationError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"never acknowledged: {args}")


def on_record(machine: OrderStateMachine) -> int:
    return sum(1 for _ in machine.engine.orders())


def run(scenario: Any, seconds: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(scenario, seconds))


def test_three_members_apply_the_same_orders_and_match_replay() -> None:
    async def scenario() -> None:
        cluster = InProcessCluster(3, machine=RecordingMachine)
        await cluster.start()
        try:
            batchers = [Batcher(f"p{i}", log.propose) for i, log in enumerate(cluster.logs)]
            rng = random.Random(5)
            submissions = [submit(batchers[i % 3], f"p{i % 3}", order(rng, i)) for i in range(600)]
            outcomes = await asyncio.wait_for(asyncio.gather(*submissions), 30)
            assert all(o.error is None and o.events for o in outcomes)
            await cluster.wait_converged()
            machines = cluster.machines
            digests = {(m.engine.sequence, m.engine.digest()) for m in machines}
            assert len(digests) == 1 and on_record(machines[0]) == 600  # retries add no order
            recorded = machines[0]
            assert isinstance(recorded, RecordingMachine)
            commands = [c for text in recorded.entries for c in json.loads(text)["commands"]]
            lines: list[str] = []
            replay((json.dumps(c) for c in commands), Engine().markets.values(), lines.append)
            last = json.loads(lines[-1])
            assert {(last["applied"], last["digest"])} == digests
        finally:
            await cluster.stop()

    run(scenario())


def signed_batch(secret: bytes, counter: int, body: str = "[]") -> dict[str, Any]:
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

    def deliver(
        sender: str, replica: bool, messages: list[Any], answerable: bool
    ) -> dict[str, Any] | None:
        delivered.append((sender, messages))
        return None

    endpoint.deliver = deliver
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
        with pytest.raises(RpcError, match=reason):
            endpoint.receive(payload)
    assert len(delivered) == 1


def test_followers_answer_the_leader_in_its_reply_not_in_requests_of_their_own() -> None:
    # A commit takes one request and its reply per follower: the answer to an
    # append_entries rides back in the reply. Followers still post keepalives, and an
    # answer goes as a request when a keepalive of theirs is on its way at that moment
    # (rare: one a second); before, every answer did, two per follower per commit.
    async def scenario() -> None:
        cluster = InProcessCluster(3)
        await cluster.start()
        try:
            leader = cluster.leader_index()
            posted: list[str] = []
            for index, log in enumerate(cluster.logs):
                if index == leader:
                    continue
                transport = log._member._SyncObj__transport
                post = transport._post

                async def spy(node_id: str, batch: list[str], post: Any = post) -> None:
                    posted.extend(m["type"] for m in decode_message("[" + ",".join(batch) + "]"))
                    await post(node_id, batch)

                transport._post = spy
            batcher = Batcher("p", cluster.leader.propose)
            rng = random.Random(2)
            for i in range(30):  # one at a time: each its own entry and commit
                outcome = await asyncio.wait_for(submit(batcher, "p", order(rng, i)), 5)
                assert outcome.error is None
            await cluster.wait_converged()
            assert cluster.machines[0].applied_index >= 30
            assert posted.count("next_node_idx") <= 4
        finally:
            await cluster.stop()

    run(scenario())


def test_answers_older_than_a_batch_already_taken_are_dropped_not_delivered() -> None:
    endpoint = RaftEndpoint(SECRET)
    member = "127.0.0.1:1"
    assert endpoint.accept_answers(member, signed_batch(SECRET, 5, '[{"d":{"type":"x"}}]')) == (
        False,
        [{"type": "x"}],
    )
    assert endpoint.accept_answers(member, signed_batch(SECRET, 4)) is None  # overtaken
    assert endpoint.accept_answers("127.0.0.1:2", signed_batch(SECRET, 6)) is None  # not its
    assert endpoint.accept_answers(member, signed_batch(os.urandom(32), 7)) is None  # forged
    # Neither refusal counted as heard from the member: its next batch is still taken.
    assert endpoint.accept_answers(member, signed_batch(SECRET, 6)) == (False, [])


def test_two_of_three_members_keep_committing_when_one_stops() -> None:
    async def scenario() -> None:
        cluster = InProcessCluster(3)
        await cluster.start()
        try:
            leader = cluster.leader_index()
            victim = next(i for i in range(3) if i != leader)
            await cluster.stop_member(victim)
            batcher = Batcher("p", cluster.leader.propose)
            rng = random.Random(1)
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(submit(batcher, "p", order(rng, i)) for i in range(50))),
                15,
            )
            assert all(o.error is None for o in outcomes)
            await cluster.wait_converged()
            live = [m for i, m in enumerate(cluster.machines) if i != victim]
            assert live[0].engine.digest() == live[1].engine.digest()
            assert cluster.machines[victim].engine.sequence == 0
        finally:
            await cluster.stop()

    run(scenario())


def free_ports(count: int) -> list[int]:
    ports = []
    for _ in range(count):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    return ports


def test_members_restarted_from_their_journals_recover_the_same_state(tmp_path: Path) -> None:
    ports, secret = free_ports(3), os.urandom(32)
    dirs = [tmp_path / f"m{i}" for i in range(3)]
    for directory in dirs:
        directory.mkdir()

    async def run_cluster(orders: int, expected: int) -> list[tuple[int, str, int]]:
        cluster = InProcessCluster(3, ports=ports, data_dirs=dirs, secret=secret)
        await cluster.start()
        try:
            if orders:
                batcher = Batcher("p", cluster.leader.propose)
                rng = random.Random(3)
                await asyncio.wait_for(
                    asyncio.gather(*(submit(batcher, "p", order(rng, i)) for i in range(orders))),
                    15,
                )
            async with asyncio.timeout(15):  # a restarted member replays its journal on its ticks
                while {on_record(m) for m in cluster.machines} != {expected} or (
                    len({m.engine.sequence for m in cluster.machines}) != 1
                ):
                    await asyncio.sleep(0.01)
            return [(m.engine.sequence, m.engine.digest(), on_record(m)) for m in cluster.machines]
        finally:
            await cluster.stop()

    before = run(run_cluster(200, 200))
    after = run(run_cluster(0, 200))  # nothing new: the state comes from the journals alone
    assert len(set(before)) == 1 and before[0][2] == 200
    assert after == before


def test_a_member_cut_off_from_the_majority_refuses_writes_within_seconds() -> None:
    async def scenario() -> None:
        cluster = InProcessCluster(3)
        await cluster.start()
        try:
            leader = cluster.leader_index()
            assert leader is not None
            for index in range(3):
                if index != leader:
                    await cluster.stop_member(index)
            await asyncio.sleep(3)  # beyond leader_fallback_s (2 s): the lone leader steps down
            started = asyncio.get_running_loop().time()
            with pytest.raises(ReplicationError) as refused:
                await cluster.logs[leader].propose(encode_entry("p", []))
            assert not isinstance(refused.value, UnknownOutcomeError)  # certainly not applied
            assert asyncio.get_running_loop().time() - started < 1
        finally:
            await cluster.stop()

    run(scenario())


def test_a_member_whose_apply_fails_partway_stops_instead_of_skipping_the_entry() -> None:
    """The state machine turns every bad command into an outcome; what still raises is the
    peer's own failure (its disk, its database) partway through an entry, with part of it
    applied. The library applies the entry again on the next tick, which the machine skips
    as done: the replica went on without the rest of it, its digest silently apart from the
    others'. It must stop instead, apply nothing more, and refuse proposals at once."""

    async def scenario() -> None:
        cluster = InProcessCluster(3)
        await cluster.start()
        try:
            leader = cluster.leader_index()
            assert leader is not None
            victim = next(i for i in range(3) if i != leader)
            broken, machine = cluster.logs[victim], cluster.machines[victim]
            failing_at = machine.applied_index + 5

            def broken_disk(entry: Any, outcomes: Any) -> None:
                if machine.applied_index == failing_at:
                    raise OSError(28, "No space left on device")

            machine.listeners.append(broken_disk)
            batcher = Batcher("p", cluster.logs[leader].propose)
            rng = random.Random(3)
            for i in range(15):  # one entry each
                await submit(batcher, "p", order(rng, i))
            async with asyncio.timeout(10):
                await broken.failed.wait()
            assert "No space left on device" in (broken.failure or "")
            with pytest.raises(ReplicationError, match="stopped"):
                await broken.propose("[]")
            await asyncio.sleep(0.5)  # more ticks: nothing more is applied there
            assert machine.applied_index == failing_at
            assert cluster.machines[leader].applied_index >= failing_at + 10
        finally:
            await cluster.stop()

    run(scenario())
