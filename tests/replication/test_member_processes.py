"""Members as separate processes on 127.0.0.1: convergence, kill -9 of the leader, restart."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from peerbook.errors import GrenacheError
from peerbook.grenache import Link, RpcClient
from peerbook.testing.member import CONTROL_KEY


def free_ports(count: int) -> list[int]:
    ports = []
    for _ in range(count):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    return ports


class Members:
    """Member processes started by this test, stopped by PID."""

    def __init__(self, tmp_path: Path, count: int) -> None:
        self.addresses = [f"127.0.0.1:{p}" for p in free_ports(count)]
        self.secret = os.urandom(32).hex()
        self.dirs = [tmp_path / f"member{i}" for i in range(count)]
        for directory in self.dirs:
            directory.mkdir()
        self.processes: dict[int, subprocess.Popen[str]] = {}

    def start(self, index: int) -> None:
        partners = ",".join(a for a in self.addresses if a != self.addresses[index])
        process = subprocess.Popen(
            [sys.executable, "-m", "peerbook.testing.member", "--address", self.addresses[index],
             "--partners", partners, "--secret", self.secret, "--data-dir", str(self.dirs[index])],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        assert json.loads(process.stdout.readline()) == {"ready": True}
        self.processes[index] = process

    def kill(self, index: int) -> None:
        process = self.processes.pop(index)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for index in list(self.processes):
            process = self.processes.pop(index)
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextmanager
def members(tmp_path: Path, count: int = 3) -> Iterator[Members]:
    group = Members(tmp_path, count)
    try:
        for index in range(count):
            group.start(index)
        yield group
    finally:
        group.stop_all()


async def control(client: RpcClient, address: str, *request: Any) -> Any:
    return await client.send(address, CONTROL_KEY, list(request), timeout_s=15)


async def statuses(client: RpcClient, group: Members) -> dict[int, Any]:
    found = {}
    for index in group.processes:
        try:
            found[index] = await control(client, group.addresses[index], "status")
        except GrenacheError:
            continue
    return found


async def wait_leader(client: RpcClient, group: Members) -> int:
    """Wait until one member leads and every running member is in touch with a majority."""
    async with asyncio.timeout(20):
        while True:
            found = await statuses(client, group)
            leaders = [i for i, s in found.items() if s["role"] == "leader"]
            if (
                leaders
                and len(found) == len(group.processes)
                and all(s["quorum"] for s in found.values())
            ):
                return leaders[0]
            await asyncio.sleep(0.1)


async def wait_converged(client: RpcClient, group: Members, expected: set[int]) -> dict[int, Any]:
    async with asyncio.timeout(30):
        while True:
            found = await statuses(client, group)
            if (
                set(found) == expected
                and len({(s["sequence"], s["digest"]) for s in found.values()}) == 1
            ):
                return found
            await asyncio.sleep(0.1)


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
        client = RpcClient(Link("http://127.0.0.1:9"))
        with members(tmp_path) as group:
            await wait_leader(client, group)
            batches = [
                control(
                    client,
                    group.addresses[i % 3],
                    "submit",
                    [command(f"p{i % 3}", i * 20 + k) for k in range(20)],
                )
                for i in range(15)
            ]
            replies = await asyncio.gather(*batches)
            errors = [r for reply in replies for r in reply if "ok" not in r]
            assert not errors, errors[:3]
            found = await wait_converged(client, group, {0, 1, 2})
            assert {s["sequence"] for s in found.values()} == {300}
        await client.close()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_kill_9_of_the_leader_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = RpcClient(Link("http://127.0.0.1:9"))
        with members(tmp_path) as group:
            leader = await wait_leader(client, group)
            acknowledged: set[str] = set()
            attempts = 0

            async def load(at: int, owner: str, count: int) -> None:
                nonlocal attempts
                for index in range(count):
                    for _ in range(100):  # retry the same clientOrderId until acknowledged
                        attempts += 1
                        target = at if at in group.processes else next(iter(group.processes))
                        try:
                            reply = await control(
                                client, group.addresses[target], "submit", [command(owner, index)]
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
            found = await wait_converged(client, group, {0, 1, 2})
            ids = await control(client, group.addresses[leader], "client_ids")
            on_record = [f"{owner}-{cid.split('-')[1]}" for owner, cid in ids]
            assert len(on_record) == len(set(on_record)), "an order was executed twice"
            assert acknowledged <= set(on_record), "an acknowledged order was lost"
            assert len(acknowledged) == 300 and len({s["digest"] for s in found.values()}) == 1
        await client.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))
