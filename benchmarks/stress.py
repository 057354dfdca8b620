"""Sustained load on peer processes, watching memory and latency over time (issue: prove it,
"Stress and scale").

Run: ``python benchmarks/stress.py [--peers 3] [--minutes 10] [--rate 200]``.

Starts an embedded grape and fresh ``peerbook node`` processes, then places crossing limit
orders through the public API at ``--rate`` orders/s in total (spread over every peer, each
with a client order id, as a careful trader sends them), for ``--minutes``. Like a market
maker, each trader keeps at most ``--open-per-trader`` resting orders and cancels its oldest
when it holds more, so the book stays bounded: memory that still grows is retained history,
not a deeper book (with random prices and cancels of random ids, as before session 6, about
one order in ten stayed open for good). Every minute it prints the acknowledged orders, the
p50 and p99 latency of that minute, and each peer's resident memory (VmRSS from /proc) and
Python heap (``peerbook_python_heap_blocks`` from its metrics: what objects hold, apart from
freed memory the allocator keeps and SQLite's caches), in thousands of blocks, and the
entries its Raft log holds (``peerbook_raft_log_entries``: in memory until a compaction), and
where its resident memory lies (malloc heap, other anonymous mappings, file mappings). A
first minute of the same load is the baseline the later minutes are compared with (latency
ratio, memory growth). Closed orders and trades leave memory once the audit trail holds them
(docs/engine.md, "Memory"); what still grows is four bytes per order.
"""

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path

import aiohttp

from peerbook.client import AsyncClient
from peerbook.testing.local import local_network, peer_metric
from peerbook.testing.orders import market_maker


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_split(pid: int) -> str:
    """Resident MiB of the process's malloc heap (``[heap]``, grown with brk), of its other
    anonymous mappings (CPython's object arenas, large allocations) and of its file mappings
    (libraries, the mapped Raft journal), as ``heap/anon/file``: which of them grows."""
    resident = {"heap": 0, "anon": 0, "file": 0}
    kind = "anon"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields[0] == "Rss:":
            resident[kind] += int(fields[1])
        elif not fields[0].endswith(":"):  # a mapping's header: range, perms, offset, ...
            name = fields[5] if len(fields) > 5 else ""
            kind = "heap" if name == "[heap]" else "anon" if not name.startswith("/") else "file"
    return "/".join(f"{resident[k] / 1024:.0f}" for k in ("heap", "anon", "file"))


async def _main(args: argparse.Namespace) -> None:
    async with (
        local_network(args.peers, "peerbook-stress-", ("--metrics-port", "0")) as (
            network,
            clients,
        ),
        aiohttp.ClientSession() as session,
    ):
        per_client = args.rate / (args.peers * args.clients)
        clients.extend(AsyncClient.from_data_dir(network.grape, p.data_dir)
                       for p in network.peers for _ in range(args.clients))  # fmt: skip
        samples: list[tuple[float, float]] = []
        begin = time.monotonic()
        stop = begin + args.minutes * 60
        rng = random.Random(args.seed)
        traders = [asyncio.create_task(market_maker(c, 1 / per_client, stop,
                                               random.Random(rng.random()), samples,
                                               args.open_per_trader))
                   for c in clients]  # fmt: skip
        print(f"{args.peers} peers, {args.rate:g} orders/s offered, {args.minutes} min")
        print("minute  acked  p50_ms  p99_ms  rss_mib_per_peer  heap_kblocks_per_peer"
              "  log_entries_per_peer  rss_heap/anon/file_per_peer")  # fmt: skip
        base: tuple[float, list[float]] | None = None
        for minute in range(1, args.minutes + 1):
            await asyncio.sleep(max(0.0, begin + minute * 60 - time.monotonic()))
            window = sorted(d for t, d in samples if begin + (minute - 1) * 60 <= t)
            samples[:] = [(t, d) for t, d in samples if t >= begin + minute * 60]
            rss = [_rss_mib(p.process.pid) for p in network.peers if p.process]
            split = [_rss_split(p.process.pid) for p in network.peers if p.process]
            heap = [
                await peer_metric(session, p, "peerbook_python_heap_blocks") / 1000
                for p in network.peers
            ]
            log = [
                await peer_metric(session, p, "peerbook_raft_log_entries") for p in network.peers
            ]
            p50 = statistics.median(window) * 1000 if window else float("nan")
            p99 = window[int(0.99 * (len(window) - 1))] * 1000 if window else float("nan")
            base = base or (p99, rss)
            print(f"{minute:6d} {len(window):6d} {p50:7.1f} {p99:7.1f}  "
                  + " ".join(f"{r:6.0f}" for r in rss) + "  "
                  + " ".join(f"{h:6.0f}" for h in heap) + "  "
                  + " ".join(f"{n:6.0f}" for n in log) + "  "
                  + " ".join(split), flush=True)  # fmt: skip
        await asyncio.gather(*traders)
        assert base is not None
        growth = " ".join(f"+{b - a:.0f} MiB" for a, b in zip(base[1], rss, strict=True))
        print(f"last minute / first minute: p99 {p99 / base[0]:.2f}, memory {growth}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="clients per peer")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=200.0, help="orders/s offered in total")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--open-per-trader",
        type=int,
        default=20,
        help="resting orders a trader keeps before cancelling its oldest",
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
