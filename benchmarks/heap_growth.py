"""What holds the memory a peer gains under sustained load: its Python heap traced across
log compactions (issue: prove it, "Stress and scale": no growth without bound).

Run: ``python benchmarks/heap_growth.py [--compactions 6] [--rate 100] [--snapshot-every 3000]``.

`benchmarks/stress.py` shows resident memory and the Python heap (``peerbook_python_heap_blocks``)
of peers under load. This finds *where* that heap grows: one peer process started under
`peerbook.testing.traced` (every live block's allocation site recorded), loaded by
market-making clients through the public API as in `stress.py`, compacting its log every
``--snapshot-every`` entries. Right after each compaction (when the in-memory Raft log is
smallest) it has the peer write a heap snapshot; then it compares the second with the last
(the first cycle warms caches up) and prints the total heap at each compaction, and the
allocation sites that grew most between the two, grouped by the innermost ``peerbook``
frame of each traceback, with bytes per order placed in between. At each compaction it
also prints how long the snapshot took to write and how many entries the log still holds:
those appended while the snapshot was written stay in memory until the next compaction.
The peer runs several times slower while traced: compare only figures from the same run.
"""

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import aiohttp

from peerbook.client import AsyncClient
from peerbook.demo.network import LocalNetwork
from peerbook.grenache import EmbeddedGrape
from peerbook.testing.local import peer_metric
from peerbook.testing.orders import market_maker

_SETTLE_S = 2.0
_TOP = 15


def _site(trace: tracemalloc.Statistic | tracemalloc.StatisticDiff) -> str:
    """The innermost frame in peerbook's own code (else the innermost frame at all)."""
    frames = list(reversed(trace.traceback))  # tracemalloc lists the oldest first
    chosen = next((f for f in frames if "/peerbook/" in f.filename), frames[0])
    return f"{chosen.filename.rsplit('/src/', 1)[-1]}:{chosen.lineno}"


def _report(paths: list[Path], placed: list[float]) -> None:
    snapshots = [tracemalloc.Snapshot.load(str(p)) for p in paths]
    print("compaction  orders_placed  traced_heap_mib")
    for number, (snapshot, orders) in enumerate(zip(snapshots, placed, strict=True), start=1):
        total = sum(s.size for s in snapshot.statistics("filename"))
        print(f"{number:10d} {orders:14,.0f} {total / 2**20:16.2f}")
    first, last = snapshots[1], snapshots[-1]
    orders = placed[-1] - placed[1]
    growth: Counter[str] = Counter()
    blocks: Counter[str] = Counter()
    for diff in last.compare_to(first, "traceback"):
        growth[_site(diff)] += diff.size_diff
        blocks[_site(diff)] += diff.count_diff
    print(f"\nfrom compaction 2 to {len(snapshots)} ({orders:,.0f} orders placed), "
          f"grown most (bytes per order, blocks):")  # fmt: skip
    for site, size in growth.most_common(_TOP):
        print(f"  {size / orders:8.1f} B/order {blocks[site]:+9,d}  {site}")
    total = sum(growth.values())
    print(f"  {total / orders:8.1f} B/order in all ({total / 2**20:+.2f} MiB)")


async def _run(args: argparse.Namespace) -> None:
    grape = EmbeddedGrape("127.0.0.1", 0)
    await grape.start()
    with tempfile.TemporaryDirectory(prefix="peerbook-heap-") as root:
        traces = Path(args.keep or root) / "traces"
        traces.mkdir(parents=True, exist_ok=True)
        os.environ["PEERBOOK_TRACE_DIR"] = str(traces)  # the peer inherits it
        network = LocalNetwork(
            Path(root), grape.url,
            extra_args=("--metrics-port", "0", "--snapshot-every", str(args.snapshot_every)),
            program=(sys.executable, "-m", "peerbook.testing.traced"),
        )  # fmt: skip
        clients: list[AsyncClient] = []
        try:
            peer = await network.add_peer()
            assert peer.process is not None
            clients += [AsyncClient.from_data_dir(grape.url, peer.data_dir) for _ in range(8)]
            samples: list[tuple[float, float]] = []
            stop = time.monotonic() + args.timeout
            rng = random.Random(args.seed)
            interval = len(clients) / args.rate
            traders = [
                asyncio.create_task(
                    market_maker(c, interval, stop, random.Random(rng.random()), samples, 20)
                )
                for c in clients
            ]
            placed: list[float] = []
            async with aiohttp.ClientSession() as session:
                seen = await peer_metric(session, peer, "peerbook_snapshots_written_total")
                while len(placed) < args.compactions and time.monotonic() < stop:
                    await asyncio.sleep(0.5)
                    written = await peer_metric(session, peer, "peerbook_snapshots_written_total")
                    if written > seen:
                        seen = written
                        await asyncio.sleep(_SETTLE_S)
                        peer.process.send_signal(signal.SIGUSR1)
                        placed.append(await peer_metric(
                            session, peer, 'peerbook_orders_total{outcome="accepted"}'
                        ))  # fmt: skip
                        took, kept = [
                            await peer_metric(session, peer, name)
                            for name in ("peerbook_snapshot_write_seconds",
                                         "peerbook_raft_log_entries")
                        ]  # fmt: skip
                        print(f"compaction {len(placed)}: {placed[-1]:,.0f} orders; the snapshot "
                              f"took {took:.1f} s to write; the log holds {kept:,.0f} entries",
                              flush=True)  # fmt: skip
            for task in traders:
                task.cancel()
            await asyncio.gather(*traders, return_exceptions=True)
            paths = [traces / f"heap-{n}.snapshot" for n in range(1, len(placed) + 1)]
            deadline = time.monotonic() + 60
            while not all(p.exists() for p in paths) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)  # a snapshot of a large heap takes a while to write
            await asyncio.sleep(_SETTLE_S)
            if len(placed) < 3:
                raise RuntimeError(f"only {len(placed)} compactions within --timeout")
            _report(paths, placed)
        finally:
            for client in clients:
                await client.close()
            await network.stop_all()
            await grape.stop()


def main() -> None:
    """Run the probe and print where the heap grew."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--compactions", type=int, default=6)
    parser.add_argument("--rate", type=float, default=100.0, help="orders/s offered")
    parser.add_argument("--snapshot-every", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="write the heap snapshots here, and keep them")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
