"""Log compaction against real peer processes: with a snapshot every 40 entries, a peer that
joins late gets the state from a snapshot (the log it would replay is gone), a restarted peer
loads its own snapshot and the journal's tail, and a snapshot that cannot be loaded stops the
peer instead of letting it serve a state it does not have."""

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from peerbook.demo.network import PeerProcess
from tests.node.conftest import Cluster, assert_log_replays, own_network
from tests.node.test_recovery import check_everything_there, load_everywhere

EVERY = 40


@pytest.fixture
def compacting(grape_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    options = ("--snapshot-every", str(EVERY), "--metrics-port", "0")
    yield from own_network(grape_url, tmp_path, request, 3, options)


def snapshot_index(data_dir: Path) -> int:
    """The log index the peer's snapshot file stands for (0 when there is none)."""
    path = data_dir / "raft.snapshot"
    if not path.exists():
        return 0
    with path.open("rb") as file:
        header = json.loads(file.readline())
    index: int = header["entries"][0][1]
    return index


def wait_for_snapshots(cluster: Cluster, past: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while min(snapshot_index(p.data_dir) for p in cluster.peers if p.running) <= past:
        assert time.monotonic() < deadline, "no snapshot was written"
        time.sleep(0.2)


def metric(peer: PeerProcess, name: str) -> float:
    """What the peer's Prometheus endpoint says ``name`` is."""
    with urllib.request.urlopen(f"http://{peer.ready['metrics']}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    line = next(x for x in text.splitlines() if x.startswith(f"{name} "))
    return float(line.split()[-1])


def trades_of(cluster: Cluster, index: int) -> list[dict[str, object]]:
    with cluster.reader(index) as reader:
        return list(reader.fetch_trades("BTC/USD", limit=10_000))


def test_a_late_joiner_is_sent_a_snapshot(compacting: Cluster) -> None:
    cluster = compacting
    acked: set[str] = set()
    load_everywhere(cluster, "s", 60, acked)
    wait_for_snapshots(cluster, past=2 * EVERY)
    for peer in cluster.peers:
        assert metric(peer, "peerbook_snapshots_written_total") >= 1
        assert metric(peer, "peerbook_snapshot_write_seconds") > 0
        # Compacted: the log holds what came since its snapshot, past entry 2 * EVERY. The
        # more entries the load took (the faster each commits, the fewer orders per entry),
        # the more may have come since; the log is compacted again once it holds EVERY.
        deadline = time.monotonic() + 30
        while not 0 < metric(peer, "peerbook_raft_log_entries") < 2 * EVERY:
            assert time.monotonic() < deadline, "the log was not compacted"
            time.sleep(0.2)
    cluster.run(cluster.network.add_peer())
    joiner = cluster.peers[3]
    check_everything_there(cluster, acked)
    # The joiner's state came from a snapshot: its command log starts from one, and the
    # replay of that snapshot plus the log gives the digest every peer reports.
    start = joiner.data_dir / "commands.snapshot"
    assert start.exists()
    assert_log_replays(cluster, joiner.data_dir)
    # What the snapshot carries besides the engine: the trade history, and through it the
    # fills of every order; the audit trail is filled from it.
    assert trades_of(cluster, 4) == trades_of(cluster, 1)
    assert len(trades_of(cluster, 1)) > 0
    time.sleep(0.5)  # one audit flush
    audit = joiner.data_dir / "audit.sqlite3"
    rows = subprocess.run(
        [sys.executable, "-c", "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); "
         "print(d.execute('select count(*) from orders').fetchone()[0], "
         "d.execute('select count(*) from trades').fetchone()[0])", str(audit)],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    with cluster.reader(1) as reader:
        closed = reader.fetch_closed_orders(limit=10_000)
    assert int(rows[0]) >= 180 and int(rows[1]) == len(trades_of(cluster, 1)) and closed


def stopped_after_snapshots(
    cluster: Cluster, prefix: str, count: int, acked: set[str], victim: int
) -> PeerProcess:
    """Load ``count`` orders at each peer, wait until every peer compacted its log at least
    once past the first interval, then stop peer ``victim`` (0-based) gracefully."""
    load_everywhere(cluster, prefix, count, acked)
    wait_for_snapshots(cluster, past=EVERY)
    stopped = cluster.peers[victim]
    cluster.run(cluster.network.stop(stopped))
    return stopped


def test_a_restarted_peer_loads_its_snapshot_and_the_journal_tail(compacting: Cluster) -> None:
    cluster = compacting
    acked: set[str] = set()
    victim = stopped_after_snapshots(cluster, "r", 50, acked, victim=1)
    journal = (victim.data_dir / "raft.journal").stat().st_size
    load_everywhere(cluster, "t", 10, acked)  # it misses these
    cluster.run(cluster.network.restart(victim))
    check_everything_there(cluster, acked)
    assert (victim.data_dir / "commands.snapshot").exists()
    assert_log_replays(cluster, victim.data_dir)
    assert journal < 400 * 1024, "the journal was compacted"


def test_a_corrupt_snapshot_stops_the_peer(compacting: Cluster) -> None:
    victim = stopped_after_snapshots(compacting, "c", 40, set(), victim=2)
    path = victim.data_dir / "raft.snapshot"
    data = bytearray(path.read_bytes())
    data[-10] ^= 1  # one flipped bit in the body
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="snapshot body does not match its header"):
        compacting.run(compacting.network.restart(victim))
    assert not victim.running
