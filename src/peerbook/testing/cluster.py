"""InProcessCluster: replicated-log members in one process, for tests and benchmarks.

Each member is a real `RaftLog` (pysyncobj ticked from the loop) with its own Raft RPC
server on 127.0.0.1; they talk real WebSocket RPC through the real transport. Only the process is
shared, which makes it quick to start and easy to inspect, and CPU-bound on a small machine.
"""

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from peerbook.engine import Engine
from peerbook.errors import RpcError
from peerbook.grenache import Link, WsRpcClient, WsRpcServer
from peerbook.grenache.protocol import Json
from peerbook.grenache.service import Handler
from peerbook.replication import OrderStateMachine
from peerbook.replication.raft_adapter import RaftLog
from peerbook.replication.raft_transport import (
    RAFT_SERVICE_KEY,
    RaftEndpoint,
    raft_server,
)

__all__ = ["InProcessCluster"]

_UNUSED_GRAPE = "http://127.0.0.1:9"  # members address each other directly, never look up


def _raft_service(endpoint: RaftEndpoint) -> Handler:
    async def handle(key: str, payload: Json) -> Json:
        if key != RAFT_SERVICE_KEY:
            raise RpcError(f"unknown service {key}")
        return endpoint.receive(payload)

    return handle


class InProcessCluster:
    """``size`` members; `start` waits for a leader, `stop` stops what is still running.

    Args:
        size: how many voting members.
        machine: builds each member's state machine (a fresh engine by default).
        ports: fixed ports for the members' Raft servers (to restart on the same addresses),
            or None for free ones.
        data_dirs: one journal directory per member, or None to keep logs in memory.
        secret: the cluster secret (random by default).
    """

    def __init__(
        self,
        size: int,
        *,
        machine: Callable[[], OrderStateMachine] = lambda: OrderStateMachine(Engine()),
        ports: Sequence[int] | None = None,
        data_dirs: Sequence[Path] | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.size = size
        self.secret = secret or os.urandom(32)
        self.machines = [machine() for _ in range(size)]
        self._ports = list(ports) if ports is not None else [0] * size
        self._data_dirs = list(data_dirs) if data_dirs is not None else [None] * size
        self._endpoints = [RaftEndpoint(self.secret) for _ in range(size)]
        self._servers: list[WsRpcServer] = []
        self._clients = [WsRpcClient(Link(_UNUSED_GRAPE)) for _ in range(size)]
        self.logs: list[RaftLog] = []
        self._stopped: set[int] = set()

    async def start(self, leader_timeout_s: float = 20.0) -> None:
        """Start every member and wait until one is leader."""
        for endpoint, port in zip(self._endpoints, self._ports, strict=True):
            server = raft_server(_raft_service(endpoint), port=port)
            await server.start()
            self._servers.append(server)
        addresses = [f"127.0.0.1:{s.port}" for s in self._servers]
        for index, address in enumerate(addresses):
            self.logs.append(
                RaftLog(
                    address,
                    [a for a in addresses if a != address],
                    self.machines[index],
                    endpoint=self._endpoints[index],
                    client=self._clients[index],
                    secret=self.secret,
                    data_dir=self._data_dirs[index],
                )
            )
        async with asyncio.timeout(leader_timeout_s):
            while self.leader_index() is None:
                await asyncio.sleep(0.02)

    def leader_index(self) -> int | None:
        """The index of a running member that believes it leads, or None."""
        for index, log in enumerate(self.logs):
            if index not in self._stopped and log.role == "leader":
                return index
        return None

    @property
    def leader(self) -> RaftLog:
        """A running member that believes it leads (call after `start`)."""
        index = self.leader_index()
        if index is None:
            raise LookupError("no member leads")
        return self.logs[index]

    async def stop_member(self, index: int) -> None:
        """Stop one member: its Raft ticks and its server."""
        if index not in self._stopped:
            self._stopped.add(index)
            self.logs[index].close()
            await self._servers[index].stop()

    async def wait_converged(self, timeout_s: float = 15.0) -> None:
        """Wait until every running member has applied as much as the most advanced one."""
        running = [m for i, m in enumerate(self.machines) if i not in self._stopped]
        target = max(m.applied_index for m in running)
        async with asyncio.timeout(timeout_s):
            while min(m.applied_index for m in running) < target:
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop every member still running and release the clients."""
        for index in range(len(self.logs)):
            await self.stop_member(index)
        for index in range(len(self.logs), len(self._servers)):
            await self._servers[index].stop()
        for client in self._clients:
            await client.close()
