"""Leaving and removal against real peer processes: the leader leaves (leadership is handed
over first), a dead peer is removed, and the rest keep committing with a smaller majority."""

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerbook.demo.network import PeerProcess
from tests.node.conftest import Cluster, assert_log_replays, own_network
from tests.node.test_recovery import leader_index


@pytest.fixture
def four(grape_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    yield from own_network(grape_url, tmp_path, request, 4)


def peerbook(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "peerbook", "--grape", cluster.grape, *args],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def wait_exit(cluster: Cluster, peer: PeerProcess, timeout_s: float = 20) -> int | None:
    """The peer's exit status once it exits by itself, or None after ``timeout_s``."""
    assert peer.process is not None
    try:
        return cluster.run(asyncio.wait_for(peer.process.wait(), timeout_s))  # type: ignore[no-any-return]
    except TimeoutError:
        return None


def place(cluster: Cluster, index: int, client_id: str) -> None:
    with cluster.writer(index) as client:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.create_order("BTC/USD", "limit", "buy", "0.001", "100",
                                    {"clientOrderId": client_id})  # fmt: skip
                return
            except Exception:
                assert time.monotonic() < deadline, "no write was committed"
                time.sleep(0.2)


def test_the_leader_leaves_then_a_dead_peer_is_removed(four: Cluster) -> None:
    cluster = four
    assert cluster.wait_converged()["members"] == ["p1", "p2", "p3", "p4"]
    leaving = cluster.peers[leader_index(cluster) - 1]
    done = peerbook(cluster, "--data-dir", str(leaving.data_dir), "leave", "--json")
    assert done.returncode == 0, done.stderr
    assert leaving.peer not in done.stdout
    assert wait_exit(cluster, leaving) == 0, "the peer that left did not stop by itself"
    rest = [p for p in cluster.peers if p is not leaving]
    first = cluster.peers.index(rest[0]) + 1
    place(cluster, first, "after-leave")
    info = cluster.wait_converged()
    assert info["members"] == sorted(p.peer for p in rest)
    assert info["leader"] != leaving.peer
    # A peer that left cannot come back from its data directory.
    with pytest.raises(RuntimeError, match="left network"):
        cluster.run(cluster.network.restart(leaving))

    # A follower dies for good; removing it leaves two members, both needed and enough.
    dead = next(p for p in rest if p.peer != info["leader"])
    cluster.run(cluster.network.kill(dead))
    done = peerbook(cluster, "--data-dir", str(rest[0].data_dir), "remove", dead.peer)
    assert done.returncode == 0, done.stderr
    alive = [p for p in rest if p is not dead]
    place(cluster, cluster.peers.index(alive[0]) + 1, "after-remove")
    info = assert_log_replays(cluster, alive[0].data_dir)
    assert info["members"] == sorted(p.peer for p in alive)
    # Removing a peer that is no member any more is a no-op, so an operator can retry.
    again = peerbook(cluster, "--data-dir", str(alive[0].data_dir), "remove", dead.peer)
    assert again.returncode == 0, again.stderr


def test_a_replica_takes_the_seat_a_voter_left(three_voters: Cluster) -> None:
    cluster = three_voters
    replica = cluster.peers[3]
    assert {i["peer"]: i["role"] for i in cluster.statuses()}[replica.peer] == "replica"
    leaving = cluster.peers[leader_index(cluster) % 3]  # a follower among the voters
    done = peerbook(cluster, "--data-dir", str(leaving.data_dir), "leave")
    assert done.returncode == 0, done.stderr
    assert wait_exit(cluster, leaving) == 0
    voters = [*sorted(p.peer for p in cluster.peers[:3] if p is not leaving), replica.peer]
    deadline = time.monotonic() + 30
    while True:
        infos = {i["peer"]: i for i in cluster.statuses()}
        if all(i["members"] == sorted(voters) for i in infos.values()) and infos[replica.peer][
            "role"
        ] in ("leader", "follower"):
            break
        assert time.monotonic() < deadline, f"the replica took no seat: {infos}"
        time.sleep(0.3)
    place(cluster, 4, "by-the-new-voter")
    # It stays a voter across a restart.
    cluster.run(cluster.network.stop(replica))
    cluster.run(cluster.network.restart(replica))
    info = assert_log_replays(cluster, replica.data_dir)
    assert info["members"] == sorted(voters)
    assert {i["peer"]: i["role"] for i in cluster.statuses()}[replica.peer] != "replica"


@pytest.mark.parametrize("command", [["leave"], ["remove", "p9"]])
def test_membership_commands_need_the_cluster_secret(command: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "peerbook", "--data-dir", str(tmp_path), *command],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "the cluster secret is needed" in done.stderr
