"""Members as separate processes on 127.0.0.1: convergence, kill -9 of the leader, restart."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from peerbook.errors import GrenacheError
from peerbook.grenache import Link, WsRpcClient
from peerbook.testing.member import MemberProcesses


@contextmanager
def members(tmp_path: Path, count: int = 3) -> Iterator[MemberProcesses]:
    group = MemberProcesses(tmp_path, count)
    try:
        for index in range(count):
            group.start(index)
        yield group
    finally:
        group.stop_all()


def command(owner: str, index: int) -> dict[str, Any]:
    side = "buy" if index % 2 else "sell"
    price = f"{30_000 + index % 7 - 3}"
    return {
        "op": "createOrder",
        "owner": owner,
        "args": ["BTC/USD", "limit", side, "0.0010", price, {"clientOrderId": f"{owner}-{index}"}],
    }


def test_three_member_processes_converge(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = WsRpcClient(Link("http://127.0.0.1:9"))
        try:
            with members(tmp_path) as group:
                await group.wait_ready(client)
                batches = [
                    (i % 3, [command(f"p{i % 3}", i * 20 + k) for k in range(20)])
                    for i in range(15)
                ]
                batches += [  # and a burst at one member, the load that used to cause truncation
                    (0, [command(f"b{k}", j) for j in range(100)]) for k in range(10)
                ]
                for _ in range(20):  # a leader change leaves outcomes unknown: send them again
                    replies = await asyncio.gather(
                        *(group.control(client, at, "submit", batch) for at, batch in batches)
                    )
                    batches = [
                        (at, [c for c, r in zip(batch, reply, strict=True) if "ok" not in r])
                        for (at, batch), reply in zip(batches, replies, strict=True)
                    ]
                    batches = [(at, batch) for at, batch in batches if batch]
                    if not batches:
                        break
                assert not batches, batches[:1]
                await group.wait_converged(client)
                held = await group.control(client, 0, "client_ids")
                assert len(held) == len({tuple(h) for h in held}) == 1300  # none twice
                # The §5.3 probe: no follower ever cut entries it had already applied.
                assert "truncating already-applied" not in group.logs()
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_kill_9_of_the_leader_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = WsRpcClient(Link("http://127.0.0.1:9"))
        try:
            with members(tmp_path) as group:
                leader = await group.wait_ready(client)
                acknowledged: set[str] = set()

                async def load(at: int, owner: str, count: int) -> None:
                    for index in range(count):
                        for _ in range(100):  # retry the same clientOrderId until acknowledged
                            target = at if at in group.processes else next(iter(group.processes))
                            try:
                                reply = await group.control(
                                    client, target, "submit", [command(owner, index)]
                                )
                            except GrenacheError:
                                await asyncio.sleep(0.05)
                                continue
                            if "ok" in reply[0]:
                                acknowledged.add(f"{owner}-{index}")
                                break
                            await asyncio.sleep(0.05)

                followers = [i for i in range(3) if i != leader]
                loads = [asyncio.create_task(load(f, f"p{f}", 150)) for f in followers]
                await asyncio.sleep(1.0)
                group.kill(leader)  # kill -9, mid-load
                await asyncio.gather(*loads)
                group.start(leader)  # restart from its data dir
                found = await group.wait_converged(client)
                ids = await group.control(client, leader, "client_ids")
                on_record = [cid for _, cid in ids]
                assert len(on_record) == len(set(on_record)), "an order was executed twice"
                assert acknowledged <= set(on_record), "an acknowledged order was lost"
                assert len(acknowledged) == 300 and len({s["digest"] for s in found.values()}) == 1
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))
