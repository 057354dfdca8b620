"""A follower sent a snapshot older than its log (Raft §7): it keeps the entries after the
snapshot's last one, and its commit index, as Raft says; pysyncobj alone cleared them all."""

import asyncio
import random
from pathlib import Path

from peerbook.replication import Batcher
from peerbook.testing.cluster import InProcessCluster
from tests.replication.test_raft_cluster import order, run, submit

EVERY = 60  # compact every 60 entries


def test_a_follower_sent_an_older_snapshot_keeps_its_log_after_it(tmp_path: Path) -> None:
    dirs = [tmp_path / f"m{i}" for i in range(3)]
    for directory in dirs:
        directory.mkdir()

    async def scenario() -> None:
        cluster = InProcessCluster(3, data_dirs=dirs, snapshot_entries=EVERY)
        await cluster.start()
        try:
            leader = cluster.leader
            batcher = Batcher("p", leader.propose)
            rng = random.Random(7)
            for i in range(EVERY + 20):  # one entry each: past the first compaction
                await submit(batcher, "p", order(rng, i))
            await cluster.wait_converged()
            leader_log = leader._member._SyncObj__raftLog
            async with asyncio.timeout(15):
                while leader_log[0][1] <= 1:  # the leader has compacted
                    await asyncio.sleep(0.01)
            snapshot_last = leader_log[1][1]
            follower = next(log for log in cluster.logs if log is not leader)
            follower_log = follower._member._SyncObj__raftLog
            held = follower_log[len(follower_log) - 1][1]
            committed = follower._member.raftCommitIndex
            assert held > snapshot_last and committed > snapshot_last
            # As a stale "go back" answer would: the leader now sends the follower its snapshot.
            node = next(n for n in leader._member._SyncObj__otherNodes if n.id == follower.address)
            leader._member._SyncObj__raftNextIndex[node] = 1
            installs: list[bytes] = []
            machine, install = follower.machine, follower.machine.install

            def counting_install(body: bytes) -> None:
                installs.append(body)
                install(body)

            machine.install = counting_install  # type: ignore[method-assign,assignment]
            lowest_end, lowest_commit = held, committed
            async with asyncio.timeout(15):
                while not installs:
                    lowest_end = min(lowest_end, follower_log[len(follower_log) - 1][1])
                    lowest_commit = min(lowest_commit, follower._member.raftCommitIndex)
                    await asyncio.sleep(0.001)
            assert follower_log[len(follower_log) - 1][1] >= held
            assert follower._member.raftCommitIndex >= committed
            assert (lowest_end, lowest_commit) == (held, committed)
            await submit(batcher, "p", order(rng, 10_000))  # and the cluster goes on as one
            await cluster.wait_converged()
            assert len({m.engine.digest() for m in cluster.machines}) == 1
        finally:
            await cluster.stop()

    run(scenario(), 60)
