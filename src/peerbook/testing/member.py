"""One replicated-log member in its own process, driven over RPC: the multi-process test rig.

``python -m peerbook.testing.member --address H:P --partners H:P,H:P --secret HEX
[--data-dir DIR [--snapshot-every ENTRIES]]`` runs a `RaftLog` member (its state machine
carrying the peer's history, in memory, as a snapshot part) whose RPC server (on
``--address``) answers the Raft transport and a small control service for tests and benchmarks:

- ``["submit", [COMMAND, ...]]``: batch and propose section-7 commands (``op``, ``owner``,
  ``args``); the reply is one ``{"ok": [event type names]}`` or ``{"error": "..."}`` per
  command, in order;
- ``["status"]``: ``{"role", "leader", "quorum", "applied", "sequence", "digest"}``;
- ``["client_ids"]``: ``[[owner, clientOrderId], ...]`` of every order on record, in id order.

It prints ``{"ready": true}`` once serving and stops on SIGTERM. This is test equipment, not
the peer: the peer (`peerbook node`) adds discovery, authentication and the contract's API.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peerbook.engine import Engine
from peerbook.errors import GrenacheError, PeerbookError, RpcError
from peerbook.grenache import Link, WsRpcClient
from peerbook.grenache.protocol import Json
from peerbook.node.history import History
from peerbook.replication import Batcher, OrderStateMachine
from peerbook.replication.raft_adapter import RaftLog
from peerbook.replication.raft_transport import (
    RAFT_SERVICE_KEY,
    RaftEndpoint,
    raft_server,
)
from peerbook.testing.processes import stop_process

__all__ = ["CONTROL_KEY", "MemberProcesses", "main"]

CONTROL_KEY = "peerbook:test-control"


class MemberProcesses:
    """Member processes on 127.0.0.1 with journals under ``root``; stopped by PID only.
    Each member's log (its standard error) goes to ``member.log`` in its directory.

    Use `start` for each index, `kill` for a kill -9, `stop_all` (SIGTERM, then SIGKILL after
    10 s) when done; `control` sends a control request to one member.
    """

    def __init__(self, root: Path, count: int, extra_args: Sequence[str] = ()) -> None:
        ports = []
        for _ in range(count):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                ports.append(probe.getsockname()[1])
        self.addresses = [f"127.0.0.1:{port}" for port in ports]
        self.secret = os.urandom(32).hex()
        self.dirs = [root / f"member{i}" for i in range(count)]
        for directory in self.dirs:
            directory.mkdir(parents=True, exist_ok=True)
        self.processes: dict[int, subprocess.Popen[str]] = {}
        self._extra = tuple(extra_args)

    def start(self, index: int) -> None:
        """Start (or restart, from its journal) member ``index``; returns once it serves."""
        partners = ",".join(a for a in self.addresses if a != self.addresses[index])
        process = subprocess.Popen(
            [sys.executable, "-m", "peerbook.testing.member", "--address", self.addresses[index],
             "--partners", partners, "--secret", self.secret, "--data-dir", str(self.dirs[index]),
             *self._extra],
            stdout=subprocess.PIPE,
            stderr=(self.dirs[index] / "member.log").open("a"),
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        if json.loads(process.stdout.readline() or "null") != {"ready": True}:
            process.kill()
            process.wait(timeout=10)
            raise RuntimeError(f"member {index} did not start")
        self.processes[index] = process

    def kill(self, index: int) -> None:
        """kill -9 member ``index``."""
        process = self.processes.pop(index)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, index: int) -> None:
        """SIGTERM member ``index``, then SIGKILL after 10 s."""
        stop_process(self.processes.pop(index))

    def stop_all(self) -> None:
        """Stop every member this object started."""
        for index in list(self.processes):
            self.stop(index)

    async def control(self, client: WsRpcClient, index: int, *request: Json) -> Json:
        """Send one control request to member ``index``."""
        return await client.send(self.addresses[index], CONTROL_KEY, list(request), timeout_s=15)

    async def statuses(self, client: WsRpcClient) -> dict[int, Json]:
        """The status of every running member that answers."""
        found = {}
        for index in self.processes:
            try:
                found[index] = await self.control(client, index, "status")
            except GrenacheError:
                continue
        return found

    async def wait_ready(self, client: WsRpcClient, timeout_s: float = 20) -> int:
        """Wait until one member leads and every running one reaches a majority; the leader."""
        async with asyncio.timeout(timeout_s):
            while True:
                found = await self.statuses(client)
                leaders = [i for i, s in found.items() if s["role"] == "leader"]
                complete = len(found) == len(self.processes)
                if leaders and complete and all(s["quorum"] for s in found.values()):
                    return leaders[0]
                await asyncio.sleep(0.1)

    def logs(self) -> str:
        """Every member's log so far, concatenated."""
        return "".join(
            (d / "member.log").read_text() for d in self.dirs if (d / "member.log").exists()
        )

    async def wait_converged(self, client: WsRpcClient, timeout_s: float = 30) -> dict[int, Json]:
        """Wait until every running member reports the same sequence and digest."""
        async with asyncio.timeout(timeout_s):
            while True:
                found = await self.statuses(client)
                states = {(s["sequence"], s["digest"]) for s in found.values()}
                if len(found) == len(self.processes) and len(states) == 1:
                    return found
                await asyncio.sleep(0.1)


async def _run(args: argparse.Namespace) -> None:
    endpoint = RaftEndpoint(bytes.fromhex(args.secret))
    machine = OrderStateMachine(Engine())
    history = History(machine.engine)  # what a peer's snapshots carry besides the engine
    machine.parts["history"] = history
    machine.listeners.append(history.on_applied)
    batcher: Batcher | None = None
    raft: RaftLog | None = None

    async def submit(commands: list[Any]) -> list[Json]:
        assert batcher is not None
        results: list[Json] = []
        outcomes = await asyncio.gather(
            *(batcher.submit(c["op"], c["owner"], c["args"]) for c in commands),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, PeerbookError):
                results.append({"error": f"{type(outcome).__name__}: {outcome}"})
            elif isinstance(outcome, BaseException):
                raise outcome
            elif outcome.error is not None:
                results.append({"error": outcome.error})
            else:
                results.append({"ok": [type(e).__name__ for e in outcome.events]})
        return results

    async def handle(key: str, payload: Json) -> Json:
        if key == RAFT_SERVICE_KEY:
            return endpoint.receive(payload)
        if key != CONTROL_KEY or not isinstance(payload, list) or not payload:
            raise RpcError(f"unknown request for {key}")
        if payload[0] == "submit":
            return await submit(payload[1])
        if payload[0] == "status" and raft is not None:
            return {
                "role": raft.role,
                "leader": raft.leader,
                "quorum": raft.has_quorum,
                "applied": machine.applied_index,
                "sequence": machine.engine.sequence,
                "digest": machine.engine.digest(),
            }
        if payload[0] == "client_ids":
            orders = machine.engine.orders()
            return [[o.owner, o.client_order_id] for o in orders if o.client_order_id]
        raise RpcError(f"unknown control request {payload[0]!r}")

    host, port = args.address.rsplit(":", 1)
    server = raft_server(handle, host=host, port=int(port))
    await server.start()
    client = WsRpcClient(Link("http://127.0.0.1:9"))
    raft = RaftLog(
        args.address,
        [p for p in args.partners.split(",") if p],
        machine,
        endpoint=endpoint,
        client=client,
        secret=bytes.fromhex(args.secret),
        data_dir=None if args.data_dir is None else Path(args.data_dir),
        snapshot_entries=args.snapshot_every,
    )
    batcher = Batcher(args.address, raft.propose)
    print(json.dumps({"ready": True}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    raft.close()
    await client.close()
    await server.stop()


def main() -> None:
    """Run one member until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--partners", required=True)
    parser.add_argument("--secret", required=True, help="the cluster secret, hex")
    parser.add_argument("--data-dir")
    parser.add_argument("--snapshot-every", type=int, metavar="ENTRIES",
                        help="compact the log after this many entries")  # fmt: skip
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
