"""Catch-up: how long a member takes to hold the whole state again, behind a long history.

Run: ``python benchmarks/catchup.py [--orders 1000000]``.

Three members, one per process (`MemberProcesses`), compact their logs every
``--snapshot-every`` entries. ``--orders`` orders are proposed at the leader in requests of
1,000 (the batcher packs them into entries), crossing often so that trades and closed orders
pile up as they would in a market. Then, each timed until the member reports the leader's
applied index and digest:

* **restart**: one follower is stopped (SIGTERM) and started again from its data directory:
  it loads its own snapshot and the journal's tail, then takes what it missed from the
  leader;
* **empty joiner** (the baseline run in the same invocation, the case the goal is about): the
  same follower is stopped, its data directory emptied, and started again; the leader's log
  before its snapshot is gone, so it is sent the snapshot file and then the log's tail.

Printed: the load rate, the snapshot size, and the median of ``--runs`` of each catch-up with
their ratio. On a 2-core machine the three members and the client share two cores.
"""

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from peerbook.grenache import Link, WsRpcClient
from peerbook.testing.member import MemberProcesses
from peerbook.testing.orders import crossing_command

_REQUEST = 1_000


async def _load(group: MemberProcesses, client: WsRpcClient, leader: int, orders: int) -> float:
    """Propose ``orders`` orders at the leader, 4 requests in flight; orders/s. A request
    with an unknown outcome (an election under this load) is sent again as it was: the
    clientOrderIds make the retry exactly-once."""
    starts = iter(range(0, orders, _REQUEST))

    async def worker() -> None:
        for start in starts:
            batch = [crossing_command(i) for i in range(start, min(orders, start + _REQUEST))]
            for _attempt in range(10):
                replies = await group.control(client, leader, "submit", batch)
                assert isinstance(replies, list)
                if all("ok" in r for r in replies):
                    break
                await asyncio.sleep(1)
            else:
                raise RuntimeError(f"orders from {start} not accepted: {replies[:2]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(4)))
    return orders / (time.perf_counter() - started)


async def _caught_up(group: MemberProcesses, client: WsRpcClient, index: int, leader: int) -> int:
    """Wait until member ``index`` reports the leader's applied index and digest; that index."""
    target = await group.control(client, leader, "status")
    assert isinstance(target, dict)
    async with asyncio.timeout(600):
        while True:
            try:
                status = await group.control(client, index, "status")
            except Exception:  # still starting
                status = None
            if isinstance(status, dict) and (status["applied"], status["digest"]) == (
                target["applied"],
                target["digest"],
            ):
                return int(target["applied"])
            await asyncio.sleep(0.05)


async def _timed_start(
    group: MemberProcesses, client: WsRpcClient, index: int, leader: int, wipe: bool
) -> float:
    """Stop member ``index`` (emptying its data directory if ``wipe``), start it again and
    time it until caught up; prints what its log says of the snapshot it installed."""
    group.stop(index)
    if wipe:
        shutil.rmtree(group.dirs[index])
        group.dirs[index].mkdir()
    log = group.dirs[index] / "member.log"
    seen = log.stat().st_size if log.exists() else 0
    started = time.perf_counter()
    await asyncio.to_thread(group.start, index)
    applied = await _caught_up(group, client, index, leader)
    elapsed = time.perf_counter() - started
    with log.open("rb") as file:
        file.seek(seen)
        lines = file.read().decode(errors="replace").splitlines()
    installs = [line.split(": ", 1)[-1] for line in lines if "installed the snapshot" in line]
    kind = "empty joiner" if wipe else "restart"
    print(f"  {kind}: {elapsed:.2f} s to applied index {applied:,}; {'; '.join(installs)}")
    return elapsed


async def _run(args: argparse.Namespace) -> None:
    client = WsRpcClient(Link("http://127.0.0.1:9"))
    root = Path(tempfile.mkdtemp(prefix="peerbook-catchup-"))
    group = MemberProcesses(root, 3, extra_args=("--snapshot-every", str(args.snapshot_every)))
    try:
        for index in range(3):
            group.start(index)
        leader = await group.wait_ready(client)
        rate = await _load(group, client, leader, args.orders)
        found = await group.wait_converged(client, timeout_s=600)
        follower = next(i for i in range(3) if i != leader)
        snapshot = group.dirs[follower] / "raft.snapshot"
        async with asyncio.timeout(300):
            while not snapshot.exists():
                await asyncio.sleep(0.5)
        print(f"{args.orders:,} orders loaded at {rate:,.0f} orders/s in "
              f"{found[leader]['applied']:,} log entries; "
              f"snapshot {snapshot.stat().st_size / 2**20:,.1f} MiB")  # fmt: skip
        restarts, joins = [], []
        for _ in range(args.runs):
            restarts.append(await _timed_start(group, client, follower, leader, wipe=False))
            joins.append(await _timed_start(group, client, follower, leader, wipe=True))
        restart, join = statistics.median(restarts), statistics.median(joins)
        print(f"{'catch-up (median of ' + str(args.runs) + ')':<34}{'seconds':>9}")
        print(f"{'restart from its own data dir':<34}{restart:>9.2f}")
        print(f"{'empty joiner (snapshot sent)':<34}{join:>9.2f}")
        print(f"ratio joiner / restart: {join / restart:.2f}")
    finally:
        group.stop_all()
        await client.close()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--snapshot-every", type=int, default=500, metavar="ENTRIES")
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
