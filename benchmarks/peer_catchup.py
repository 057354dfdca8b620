"""Catch-up of whole peers behind a long history: ``peerbook node`` processes with their API,
audit trail and feed, loaded through the public API (issue: prove it, "Goal").

Run: ``python benchmarks/peer_catchup.py [--orders 1000000] [--runs 3]``.

`benchmarks/catchup.py` measures the replication layer alone (member processes that carry the
peer's state machine). This one measures what an operator sees:

1. one bootstrap peer takes ``--orders`` signed crossing limit orders through its Grenache
   HTTP API from ``--clients`` concurrent clients (one peer, so that the load is as fast as
   the API allows; it compacts its log every 20,000 entries, the default);
2. two peers join it, one after the other: each is sent the leader's snapshot and the log's
   tail (*empty joiner*); as soon as the second has caught up, it is stopped, ``--missed``
   orders are placed, and it is started again (*restart before settling*: until session 13
   its audit trail had not written the history it was sent by then, so the restart took it
   from its snapshot again; now the joiner's audit trail adopts the snapshot's copy of the
   leader's at once). Only the second: with two voters, stopping either leaves no majority
   to commit the orders it misses;
3. ``--runs`` times: once the first joiner has settled (its audit trail has written the
   history it was sent, so it retired as many closed orders as the leader: a peer that has
   been running a while), it is stopped (SIGTERM), ``--missed`` more orders are placed while
   it is down, and it is started again from its data directory (*restart*: its own snapshot,
   its journal's tail, then what it missed).

Each catch-up is timed from the process start until the peer's ``fetchStatus`` reports the
leader's applied sequence and digest; settling, from then until its
``peerbook_orders_retired`` metric equals the leader's. The empty joiner is the baseline the
restart is compared with (ratio). On a 2-core machine the peers and this load generator
share both cores.
"""

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator

import aiohttp

from peerbook.client import AsyncClient, NetworkError
from peerbook.demo.network import LocalNetwork, PeerProcess
from peerbook.testing.local import local_network, peer_metric
from peerbook.testing.orders import crossing_command

_ATTEMPTS = 10
_CATCH_UP_TIMEOUT_S = 600
_SETTLE_TIMEOUT_S = 900
_RETIRED = "peerbook_orders_retired"


async def _place(client: AsyncClient, indices: Iterator[int]) -> None:
    """Place the orders of ``indices``; one whose outcome is unknown (a timeout) is sent again
    with the same clientOrderId, which makes the retry exactly-once."""
    for index in indices:
        args = crossing_command(index)["args"]
        for _attempt in range(_ATTEMPTS):
            try:
                await client.create_order(*args)
                break
            except NetworkError:
                await asyncio.sleep(0.5)
        else:
            raise RuntimeError(f"order {index} not acknowledged after {_ATTEMPTS} attempts")


async def _load(writers: list[AsyncClient], first: int, count: int) -> float:
    """Orders ``first`` to ``first + count`` from every writer at once; orders/s."""
    indices = iter(range(first, first + count))
    started = time.perf_counter()
    await asyncio.gather(*(_place(w, indices) for w in writers))
    return count / (time.perf_counter() - started)


async def _state(reader: AsyncClient) -> tuple[int, str] | None:
    try:
        info = (await reader.fetch_status())["info"]
    except NetworkError:  # starting, or not announced yet
        return None
    return int(info["applied"]), str(info["digest"])


async def _timed_catch_up(
    network: LocalNetwork, start: Callable[[], Awaitable[PeerProcess]], leader: AsyncClient
) -> float:
    """Seconds from ``start`` (a joiner's first start, or a restart) until the peer it started
    reports the leader's applied sequence and digest (nothing is placed meanwhile)."""
    target = await _state(leader)
    started = time.perf_counter()
    peer = await start()
    reader = AsyncClient(network.grape, peer=peer.peer)
    try:
        async with asyncio.timeout(_CATCH_UP_TIMEOUT_S):
            while await _state(reader) != target:
                await asyncio.sleep(0.05)
    finally:
        await reader.close()
    return time.perf_counter() - started


async def _settle(peer: PeerProcess, leader: PeerProcess) -> float:
    """Seconds until ``peer`` has retired as many closed orders as ``leader`` (nothing is
    placed meanwhile): its audit trail holds what the leader's does."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session, asyncio.timeout(_SETTLE_TIMEOUT_S):
        while await peer_metric(session, peer, _RETIRED) != await peer_metric(
            session, leader, _RETIRED
        ):
            await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def _restart(network: LocalNetwork, peer: PeerProcess) -> PeerProcess:
    await network.restart(peer)
    return peer


async def _timed_restart(
    network: LocalNetwork, peer: PeerProcess, writers: list[AsyncClient], first: int,
    missed: int, leader: AsyncClient,
) -> float:  # fmt: skip
    """Stop ``peer``, place orders ``first`` to ``first + missed`` while it is down, start it
    again from its data directory: seconds until it has caught up."""
    async with aiohttp.ClientSession() as session:
        retired = await peer_metric(session, peer, _RETIRED)
    await network.stop(peer)
    await _load(writers, first, missed)
    seconds = await _timed_catch_up(network, functools.partial(_restart, network, peer), leader)
    print(f"restart of {peer.peer} ({retired:,.0f} orders retired at its stop): "
          f"{seconds:.2f} s", flush=True)  # fmt: skip
    return seconds


async def _run(args: argparse.Namespace) -> None:
    async with local_network(1, "peerbook-peer-catchup-", ("--metrics-port", "0")) as (
        network,
        clients,
    ):
        bootstrap = network.peers[0]
        writers = [AsyncClient.from_data_dir(network.grape, bootstrap.data_dir)
                   for _ in range(args.clients)]  # fmt: skip
        leader = AsyncClient(network.grape, peer=bootstrap.peer)
        clients.extend([*writers, leader])
        done = 0
        while done < args.orders:
            step = min(100_000, args.orders - done)
            rate = await _load(writers, done, step)
            done += step
            print(f"loaded {done:,} orders ({rate:,.0f} orders/s)", flush=True)
        joins, restarts = [], []
        for _ in range(2):
            joins.append(await _timed_catch_up(network, network.add_peer, leader))
            print(f"empty joiner: {joins[-1]:.2f} s", flush=True)
        early = await _timed_restart(network, network.peers[-1], writers, done, args.missed, leader)
        done += args.missed
        follower = network.peers[1]
        for _ in range(args.runs):
            settled = await _settle(follower, bootstrap)
            print(f"settled {settled:.1f} s after catching up", flush=True)
            restarts.append(
                await _timed_restart(network, follower, writers, done, args.missed, leader)
            )
            done += args.missed
        applied = (await _state(leader) or (0, ""))[0]
        snapshot = bootstrap.data_dir / "raft.snapshot"
        size = snapshot.stat().st_size / 2**20 if snapshot.exists() else float("nan")
        join, restart = statistics.median(joins), statistics.median(restarts)
        print(f"{done:,} orders, applied sequence {applied:,}, leader snapshot {size:,.1f} MiB")
        print(f"{'catch-up (median)':<44}{'seconds':>9}")
        print(f"{'empty joiner (snapshot sent), baseline':<44}{join:>9.2f}")
        print(f"{'restart before settling':<44}{early:>9.2f}")
        print(f"{'restart from its data dir, ' + str(args.missed) + ' missed':<44}{restart:>9.2f}")
        print(f"ratio restart / joiner: {restart / join:.2f}")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=16, help="concurrent writers")
    parser.add_argument("--missed", type=int, default=1_000,
                        help="orders placed while the restarted peer is down")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
