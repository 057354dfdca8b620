"""Faults against real peer processes: kill -9 of the leader under load, kill all and restart
all, a minority that must refuse writes, and a late joiner. After each: no acknowledged order
lost, none doubled, every peer identical, and the command log replays to the same digest."""

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peerbook.client import AsyncClient, ExchangeNotAvailable, NetworkError
from peerbook.testing.processes import stop_process
from tests.conftest import grape_process
from tests.node.conftest import Cluster, assert_log_replays, own_network, start_cluster


@pytest.fixture
def fresh(grape_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Three new peers on a network of their own (the grape still lists earlier ones)."""
    yield from own_network(grape_url, tmp_path, request, 3)


async def place_until(
    cluster: Cluster, index: int, prefix: str, count: int, acked: set[str]
) -> None:
    """Place ``count`` crossing orders at peer ``index``, retrying each with the same
    clientOrderId after an unknown outcome or an unavailable peer (bounded)."""
    peer = cluster.peers[index - 1]
    client = AsyncClient.from_data_dir(cluster.grape, peer.data_dir, timeout_s=5)
    try:
        for i in range(count):
            client_id = f"{prefix}-{i}"
            side = "buy" if i % 2 else "sell"
            deadline = time.monotonic() + 60
            while True:
                try:
                    await client.create_order("BTC/USD", "limit", side, "0.001",
                                              f"{30000 + i % 5}", {"clientOrderId": client_id})  # fmt: skip
                    acked.add(f"{peer.peer}/{client_id}")
                    break
                except NetworkError:
                    if time.monotonic() > deadline or not peer.running:
                        return
                    await asyncio.sleep(0.1)
    finally:
        await client.close()


def load_everywhere(cluster: Cluster, prefix: str, count: int, acked: set[str]) -> None:
    """``count`` orders at each of peers 1-3 at the same time."""

    async def everywhere() -> None:
        await asyncio.gather(*(place_until(cluster, i, prefix, count, acked) for i in (1, 2, 3)))

    cluster.run(everywhere())


def check_everything_there(cluster: Cluster, acked: set[str]) -> None:
    cluster.wait_converged(60)
    for index, peer in enumerate(cluster.peers, start=1):
        with cluster.reader(index) as reader:
            mine = reader.fetch_open_orders() + reader.fetch_closed_orders()
        ids = [o["clientOrderId"] for o in mine]
        assert len(ids) == len(set(ids)), "an order was created twice"
        expected = {a.split("/", 1)[1] for a in acked if a.startswith(f"{peer.peer}/")}
        assert expected <= set(ids), f"acknowledged orders lost at {peer.peer}"
    assert_log_replays(cluster, cluster.peers[0].data_dir)


def leader_index(cluster: Cluster) -> int:
    leader = cluster.statuses()[0]["leader"]
    return next(i for i, p in enumerate(cluster.peers, start=1) if p.peer == leader)


def test_kill_9_of_the_leader_under_load(fresh: Cluster) -> None:
    cluster = fresh
    acked: set[str] = set()
    victim = leader_index(cluster)

    async def scenario() -> None:
        load = [asyncio.create_task(place_until(cluster, i, "k", 60, acked)) for i in (1, 2, 3)]
        await asyncio.sleep(1.0)
        await cluster.network.kill(cluster.peers[victim - 1])
        await asyncio.gather(*load)
        await cluster.network.restart(cluster.peers[victim - 1])

    cluster.run(scenario())
    assert len(acked) >= 120  # the two survivors' orders, at least
    check_everything_there(cluster, acked)


def test_kill_all_and_restart_all_loses_nothing(fresh: Cluster) -> None:
    cluster = fresh
    acked: set[str] = set()
    load_everywhere(cluster, "a", 20, acked)
    assert len(acked) == 60
    for peer in cluster.peers:
        cluster.run(cluster.network.kill(peer))
    for peer in cluster.peers:
        cluster.run(cluster.network.restart(peer))
    check_everything_there(cluster, acked)


def test_a_minority_refuses_writes_and_recovers(fresh: Cluster) -> None:
    cluster = fresh
    alone = 1
    paused = [p for i, p in enumerate(cluster.peers, start=1) if i != alone]
    for peer in paused:
        assert peer.process is not None
        peer.process.send_signal(signal.SIGSTOP)
    try:
        time.sleep(3.5)  # beyond the 2 s leader fallback
        with cluster.writer(alone) as client:
            started = time.monotonic()
            with pytest.raises(ExchangeNotAvailable):
                client.create_order("BTC/USD", "limit", "buy", "0.01", "100")
            assert time.monotonic() - started < 5
            assert client.fetch_status()["status"] == "maintenance"
    finally:
        for peer in paused:
            assert peer.process is not None
            peer.process.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 30
    with cluster.writer(alone) as client:
        while True:
            try:
                client.create_order("BTC/USD", "limit", "buy", "0.01", "100")
                break
            except NetworkError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
    cluster.wait_converged()


def test_a_late_joiner_catches_up(fresh: Cluster) -> None:
    cluster = fresh
    acked: set[str] = set()
    load_everywhere(cluster, "j", 100, acked)
    cluster.run(cluster.network.add_peer())
    info = cluster.wait_converged(60)
    assert info["members"] == ["p1", "p2", "p3", "p4"]
    check_everything_there(cluster, acked)


def test_a_paused_leader_catches_up_and_commits_again(fresh: Cluster) -> None:
    """Regression: a leader paused under load came back with an uncommitted tail of its old
    term and never caught up (pipelined answers kept resetting its next index past the
    conflict); its writes timed out forever. Two rounds, since the race did not always hit."""
    cluster = fresh
    for round_ in range(2):
        victim = cluster.peers[leader_index(cluster) - 1]
        assert victim.process is not None
        acked: set[str] = set()

        async def scenario(victim: Any = victim, acked: set[str] = acked,
                           prefix: str = f"z{round_}") -> None:  # fmt: skip
            load = [asyncio.create_task(place_until(cluster, i, f"{prefix}{k}", 150, acked))
                    for i in (1, 2, 3) for k in range(3)]  # fmt: skip
            await asyncio.sleep(1.5)
            victim.process.send_signal(signal.SIGSTOP)
            await asyncio.sleep(5)
            victim.process.send_signal(signal.SIGCONT)
            await asyncio.gather(*load)

        cluster.run(scenario())
        with cluster.writer(victim.index) as client:
            # Right after SIGCONT the old leader may briefly know no leader (refusing with
            # ExchangeNotAvailable); with the bug it never caught up and every write failed.
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.create_order("BTC/USD", "limit", "buy", "0.001", "1")
                    break
                except NetworkError:
                    assert time.monotonic() < deadline, "the old leader cannot commit"
                    time.sleep(0.2)
        check_everything_there(cluster, acked)


def test_beyond_the_voters_a_peer_follows_as_a_replica(three_voters: Cluster) -> None:
    cluster = three_voters
    infos = {i["peer"]: i for i in cluster.statuses()}
    assert infos["p4"]["role"] == "replica"
    assert all(i["members"] == ["p1", "p2", "p3"] for i in infos.values())
    acked: set[str] = set()
    load_everywhere(cluster, "r", 20, acked)
    cluster.run(place_until(cluster, 4, "at-replica", 20, acked))  # forwarded to the leader
    assert len(acked) == 80
    replica = cluster.peers[3]
    cluster.run(cluster.network.kill(replica))
    load_everywhere(cluster, "r2", 10, acked)
    cluster.run(cluster.network.restart(replica))
    assert cluster.statuses()[3]["role"] == "replica"
    check_everything_there(cluster, acked)


def test_a_peer_restarted_while_its_grape_is_down_serves_and_is_found_again(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A restart must not depend on the grape: the peer knows its members from its data dir.
    (Found by the soak: a restart whose first announce got no reply exited.)"""
    with grape_process() as (grape, url):
        cluster = start_cluster(tmp_path, url, 3, network=request.node.name[:40])
        try:
            peer = cluster.peers[2]
            cluster.run(cluster.network.stop(peer))
            stop_process(grape)
            cluster.run(cluster.network.restart(peer))  # ready without a grape
            with grape_process(int(url.rsplit(":", 1)[1])):
                deadline = time.monotonic() + 60
                while True:  # every peer is found again, and they agree
                    with contextlib.suppress(NetworkError):
                        if len({(i["applied"], i["digest"]) for i in cluster.statuses()}) == 1:
                            break
                    assert time.monotonic() < deadline, "the peers were not found again"
                    time.sleep(0.5)
                assert len(cluster.statuses()) == 3
        finally:
            cluster.close()
