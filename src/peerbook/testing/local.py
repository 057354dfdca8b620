"""A whole network on this machine for benchmarks: an embedded grape and peer processes in a
temporary directory, and the clients a benchmark opens against them, all stopped at the end."""

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from peerbook.client import AsyncClient
from peerbook.demo.network import LocalNetwork, PeerProcess
from peerbook.grenache import EmbeddedGrape

__all__ = ["local_network", "peer_metric"]


@contextlib.asynccontextmanager
async def local_network(
    peers: int, prefix: str, extra_args: tuple[str, ...] = ()
) -> AsyncIterator[tuple[LocalNetwork, list[AsyncClient]]]:
    """``peers`` ready peers on an embedded grape (its URL is ``network.grape``), started
    with ``extra_args`` besides, and a list for the caller's clients: every client put in it
    is closed, then every peer stopped (by PID) and the grape, also when the body fails."""
    grape = EmbeddedGrape("127.0.0.1", 0)
    await grape.start()
    with tempfile.TemporaryDirectory(prefix=prefix) as root:
        network = LocalNetwork(Path(root), grape.url, extra_args=extra_args)
        clients: list[AsyncClient] = []
        try:
            for _ in range(peers):
                await network.add_peer()
            yield network, clients
        finally:
            for client in clients:
                await client.close()
            await network.stop_all()
            await grape.stop()


async def peer_metric(session: aiohttp.ClientSession, peer: PeerProcess, name: str) -> float:
    """The value of metric ``name`` (with its labels, as Prometheus prints them) that
    ``peer``, started with ``--metrics-port``, serves now.

    Raises:
        RuntimeError: the peer serves no such metric.
    """
    async with session.get(f"http://{peer.ready['metrics']}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise RuntimeError(f"{peer.peer} serves no metric {name}")
