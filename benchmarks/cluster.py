"""Orders through the public API into a network of peer processes (issue: the peer a person
runs, "Performance").

Run: ``python benchmarks/cluster.py [--peers 3] [--clients 8] [--orders 200] [--runs 3]``.

Each run starts an embedded grape (in this process) and fresh ``peerbook node`` processes on
127.0.0.1, then measures, through the Grenache HTTP API with signed writes exactly as any
client would send them:

* throughput: ``--clients`` concurrent clients at every peer, each placing ``--orders``
  crossing limit orders one after another; committed orders/s over the whole load, p50/p99
  from request to acknowledgement, and the time from the last acknowledgement until every
  peer reports the same applied sequence and digest;
* latency: one client placing ``--sequential`` orders one after another at one peer; p50.

The same load against a single peer (a one-member network: no replication) is the baseline
measured in the same invocation. The load generator is one Python process, and on a small
machine it shares the CPU with the peers: the figures are a floor for what the peers can do.
"""

import argparse
import asyncio
import statistics
import time

from peerbook.client import AsyncClient
from peerbook.testing.local import local_network


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _client_load(client: AsyncClient, tag: str, orders: int, latencies: list[float]) -> None:
    for i in range(orders):
        side = "buy" if i % 2 else "sell"
        started = time.perf_counter()
        await client.create_order("BTC/USD", "limit", side, "0.001", f"{30000 + i % 7 - 3}",
                                  {"clientOrderId": f"{tag}-{i}"})  # fmt: skip
        latencies.append(time.perf_counter() - started)


async def _converged(readers: list[AsyncClient]) -> None:
    async with asyncio.timeout(120):
        while True:
            infos = [(await r.fetch_status())["info"] for r in readers]
            if len({(i["applied"], i["digest"]) for i in infos}) == 1:
                return
            await asyncio.sleep(0.01)


async def _run(peers: int, args: argparse.Namespace) -> dict[str, float]:
    async with local_network(peers, "peerbook-bench-") as (network, clients):
        grape = network.grape
        writers = {p.peer: [AsyncClient.from_data_dir(grape, p.data_dir)
                            for _ in range(args.clients)] for p in network.peers}  # fmt: skip
        readers = [AsyncClient(grape, peer=p.peer) for p in network.peers]
        clients.extend([*(c for group in writers.values() for c in group), *readers])
        latencies: list[float] = []
        started = time.perf_counter()
        await asyncio.gather(*(
            _client_load(c, f"{peer}-{n}", args.orders, latencies)
            for peer, group in writers.items() for n, c in enumerate(group)
        ))  # fmt: skip
        acknowledged = time.perf_counter()
        await _converged(readers)
        converged = time.perf_counter()
        sequential: list[float] = []
        await _client_load(writers[network.peers[0].peer][0], "seq", args.sequential, sequential)
    return {
        "orders_per_s": len(latencies) / (acknowledged - started),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "converge_ms": (converged - acknowledged) * 1000,
        "sequential_p50_ms": statistics.median(sequential) * 1000,
    }


def _report(name: str, runs: list[dict[str, float]]) -> dict[str, float]:
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    spread = {k: (min(r[k] for r in runs), max(r[k] for r in runs)) for k in runs[0]}
    print(f"{name}:")
    for key, value in medians.items():
        low, high = spread[key]
        print(f"  {key:>18}: {value:10.1f}  (range {low:.1f}-{high:.1f})")
    return medians


async def _main(args: argparse.Namespace) -> None:
    print(f"{args.clients} clients per peer x {args.orders} orders; {args.runs} runs; medians")
    single = [await _run(1, args) for _ in range(args.runs)]
    cluster = [await _run(args.peers, args) for _ in range(args.runs)]
    base = _report("1 peer (baseline)", single)
    many = _report(f"{args.peers} peers", cluster)
    ratios = {k: many[k] / base[k] for k in ("orders_per_s", "p50_ms", "sequential_p50_ms")}
    print(
        f"ratio {args.peers} peers / 1 peer: "
        + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients per peer")
    parser.add_argument("--orders", type=int, default=200, help="orders per client")
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
