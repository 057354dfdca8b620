"""Real peers for the node tests: a ``peerbook grape`` process and ``peerbook node`` processes
on 127.0.0.1, started once per module and stopped by PID when the module is done."""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peerbook.client import Client
from peerbook.demo.network import LocalNetwork, PeerProcess
from peerbook.node.command_log import replay_arguments
from tests.conftest import grape_process


class Cluster:
    """A running network and the loop its processes belong to."""

    def __init__(
        self, root: Path, grape: str, network: str = "main", extra_args: tuple[str, ...] = ()
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.network = LocalNetwork(root, grape, network=network, extra_args=extra_args)
        self.grape = grape

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    @property
    def peers(self) -> list[PeerProcess]:
        return self.network.peers

    def writer(self, index: int) -> Client:
        """A client acting as peer ``index`` (1-based), with its credentials."""
        return Client.from_data_dir(self.grape, self.peers[index - 1].data_dir)

    def reader(self, index: int) -> Client:
        """A read-only client of peer ``index``."""
        return Client(self.grape, network=self.network.network, peer=self.peers[index - 1].peer)

    def statuses(self) -> list[dict[str, Any]]:
        """fetchStatus of every running peer, asked by peer id."""
        found = []
        for index, peer in enumerate(self.peers, start=1):
            if peer.running:
                with self.reader(index) as client:
                    found.append(client.fetch_status()["info"])
        return found

    def wait_converged(self, timeout_s: float = 30) -> dict[str, Any]:
        """Wait until every running peer reports the same applied sequence and digest."""
        deadline = time.monotonic() + timeout_s
        while True:
            infos = self.statuses()
            if len({(i["applied"], i["digest"]) for i in infos}) == 1:
                return infos[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"peers did not converge: {infos}")
            time.sleep(0.1)

    def close(self) -> None:
        self.run(self.network.stop_all())
        self.loop.close()


def replay_lines(log: Path) -> list[dict[str, Any]]:
    """What an offline ``peerbook replay`` of a command log prints, from the snapshot the log
    starts from when there is one."""
    done = subprocess.run([sys.executable, "-m", "peerbook", "replay", *replay_arguments(log)],
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines()]


def replayed(log: Path) -> dict[str, Any]:
    """The applied sequence and digest of an offline ``peerbook replay`` of a command log."""
    return replay_lines(log)[-1]


@pytest.fixture(scope="module")
def grape_url() -> Iterator[str]:
    """A ``peerbook grape`` process on a free port."""
    with grape_process() as (_, url):
        yield url


def start_cluster(
    root: Path, grape: str, size: int, network: str = "main", extra_args: tuple[str, ...] = ()
) -> Cluster:
    cluster = Cluster(root, grape, network, extra_args)
    try:
        for _ in range(size):
            cluster.run(cluster.network.add_peer())
    except BaseException:
        cluster.close()
        raise
    return cluster


@pytest.fixture(scope="module")
def cluster(grape_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three peers: p1 bootstrapped the network, p2 and p3 joined it."""
    running = start_cluster(tmp_path_factory.mktemp("cluster"), grape_url, 3)
    try:
        yield running
    finally:
        running.close()


def own_network(
    grape: str,
    root: Path,
    request: pytest.FixtureRequest,
    size: int,
    extra_args: tuple[str, ...] = (),
) -> Iterator[Cluster]:
    """``size`` new peers on a network named for the test (the module's grape still lists
    earlier tests' peers); for fixtures, which ``yield from`` it."""
    running = start_cluster(root, grape, size, network=request.node.name[:40],
                            extra_args=extra_args)  # fmt: skip
    try:
        yield running
    finally:
        running.close()


def assert_log_replays(cluster: Cluster, data_dir: Path) -> dict[str, Any]:
    """Wait for the peers to agree, and check that the command log in ``data_dir`` replays
    offline to the applied sequence and digest they report; their common status."""
    info = cluster.wait_converged()
    log = data_dir / "commands.jsonl"
    assert replayed(log) == {"applied": info["applied"], "digest": info["digest"]}
    return info


@pytest.fixture
def three_voters(
    grape_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """Four peers on a network that takes three voters: the fourth follows as a replica."""
    yield from own_network(grape_url, tmp_path, request, 4, ("--voters", "3"))
