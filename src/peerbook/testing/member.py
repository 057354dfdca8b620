"""One replicated-log member in its own process, driven over RPC: the multi-process test rig.

``python -m peerbook.testing.member --address H:P --partners H:P,H:P --secret HEX
[--data-dir DIR]`` runs a `RaftLog` member whose RPC server (on ``--address``) answers the
Raft transport and a small control service for tests and benchmarks:

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
import signal
from pathlib import Path
from typing import Any

from peerbook.engine import Engine
from peerbook.errors import PeerbookError, RpcError
from peerbook.grenache import Link, RpcClient, RpcServer
from peerbook.grenache.protocol import Json
from peerbook.replication import Batcher, OrderStateMachine
from peerbook.replication.raft_adapter import RaftLog
from peerbook.replication.raft_transport import (
    RAFT_BODY_BYTES_MAX,
    RAFT_SERVICE_KEY,
    RaftEndpoint,
)

__all__ = ["CONTROL_KEY", "main"]

CONTROL_KEY = "peerbook:test-control"


async def _run(args: argparse.Namespace) -> None:
    endpoint = RaftEndpoint(bytes.fromhex(args.secret))
    machine = OrderStateMachine(Engine())
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
    server = RpcServer(handle, host=host, port=int(port), body_bytes_max=RAFT_BODY_BYTES_MAX)
    await server.start()
    client = RpcClient(Link("http://127.0.0.1:9"))
    raft = RaftLog(
        args.address,
        [p for p in args.partners.split(",") if p],
        machine,
        endpoint=endpoint,
        client=client,
        secret=bytes.fromhex(args.secret),
        data_dir=None if args.data_dir is None else Path(args.data_dir),
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
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
