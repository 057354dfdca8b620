"""The replicated log: orders/s applied on every member, and single-order commit latency.

Run: ``python benchmarks/replication.py``.

Two setups are measured in one invocation:

* **in one process** (`InProcessCluster`: every member's Raft and its WebSocket traffic on
  one event loop), against a one-member "cluster" (no network, no majority) as the baseline.
  Orders are proposed directly to the replication layer through a `Batcher` at the leader:

* throughput: ``--orders`` orders, at most ``--in-flight`` outstanding, timed until every
  member has applied all of them;
* latency: ``--sequential`` orders one after another, each timed from submit to its outcome
  (committed and applied on the proposing member); the batcher's linger is 0 here.

* **one member per process** (`MemberProcesses`, the deployment shape), driven over the
  members' control RPC at the leader: the same sequential latency (plus that RPC hop) and the
  throughput of 10 clients each sending 20 requests of 100 orders, until all members agree.

On a 2-core machine three members and the client share two cores: every figure is CPU-bound.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peerbook.grenache import Link, WsRpcClient
from peerbook.replication import Batcher
from peerbook.testing.cluster import InProcessCluster
from peerbook.testing.member import MemberProcesses


def _order(index: int) -> list[Any]:
    side = "buy" if index % 2 else "sell"
    price = f"{30_000 + (index * 7919) % 11 - 5}"
    return ["BTC/USD", "limit", side, "0.0010", price, {"clientOrderId": f"b{index}"}]


async def _throughput(size: int, orders: int, in_flight: int) -> float:
    cluster = InProcessCluster(size)
    await cluster.start()
    try:
        batcher = Batcher("bench", cluster.leader.propose)
        remaining = iter(range(orders))

        async def worker() -> None:
            for index in remaining:
                await batcher.submit("createOrder", "bench", _order(index))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        async with asyncio.timeout(60):
            while min(m.engine.sequence for m in cluster.machines) < orders:
                await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        if len({m.engine.digest() for m in cluster.machines}) != 1:
            raise RuntimeError("members disagree")
        return orders / elapsed
    finally:
        await cluster.stop()


async def _latency(size: int, count: int) -> tuple[float, float]:
    cluster = InProcessCluster(size)
    await cluster.start()
    try:
        batcher = Batcher("bench", cluster.leader.propose, linger_s=0)
        times = []
        for index in range(count):
            started = time.perf_counter()
            await batcher.submit("createOrder", "bench", _order(index))
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return statistics.median(times), times[min(len(times) - 1, len(times) * 99 // 100)]
    finally:
        await cluster.stop()


def _process_command(owner: str, index: int) -> dict[str, Any]:
    return {"op": "createOrder", "owner": owner, "args": _order(index)}


async def _processes(sequential: int) -> tuple[float, float, float]:
    client = WsRpcClient(Link("http://127.0.0.1:9"))
    group = MemberProcesses(Path(tempfile.mkdtemp(prefix="peerbook-bench-")), 3)
    try:
        for index in range(3):
            group.start(index)
        leader = await group.wait_ready(client)
        times = []
        for index in range(sequential):
            started = time.perf_counter()
            await group.control(client, leader, "submit", [_process_command("s", index)])
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        sent = 0

        async def worker(k: int) -> None:
            nonlocal sent
            for j in range(20):
                batch = [_process_command(f"t{k}", j * 100 + m) for m in range(100)]
                await group.control(client, leader, "submit", batch)
                sent += len(batch)

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(10)))
        await group.wait_converged(client)
        rate = sent / (time.perf_counter() - started)
        return statistics.median(times), times[min(len(times) - 1, len(times) * 99 // 100)], rate
    finally:
        group.stop_all()
        await client.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=1_000)
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(
        f"throughput: {args.orders} orders, {args.in_flight} in flight, median of {args.runs}; "
        f"latency: {args.sequential} sequential orders"
    )
    print(f"{'members':<9}{'orders/s applied on all':>25}{'commit p50 ms':>15}{'p99 ms':>9}")
    results = {}
    for size in (1, 3):
        rates = [
            asyncio.run(_throughput(size, args.orders, args.in_flight)) for _ in range(args.runs)
        ]
        p50, p99 = asyncio.run(_latency(size, args.sequential))
        results[size] = statistics.median(rates)
        print(f"{size:<9}{results[size]:>25,.0f}{p50:>15.3f}{p99:>9.3f}")
    print(f"3 members / 1 member throughput: {results[3] / results[1]:.2f}")
    p50, p99, rate = asyncio.run(_processes(args.sequential))
    print(
        f"3 member processes: {rate:,.0f} orders/s applied on all; sequential commit via the "
        f"control RPC p50 {p50:.3f} ms, p99 {p99:.3f} ms"
    )


if __name__ == "__main__":
    main()
