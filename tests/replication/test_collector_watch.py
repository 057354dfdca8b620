"""A slow full collection of the cyclic collector makes the next Raft tick freeze what
survived it, so that later full collections no longer walk a member's whole state (they
held members' loops past the election timeout: `docs/replication.md`)."""

import asyncio
import gc
import time

import pytest

from peerbook.replication import raft_adapter
from peerbook.replication.raft_adapter import _CollectorWatch
from peerbook.testing.cluster import InProcessCluster


def test_only_a_slow_full_collection_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = _CollectorWatch()
    watch._watch("start", {"generation": 1})
    time.sleep(0.06)
    watch._watch("stop", {"generation": 1})
    assert not watch.slow_full_collection  # a young collection, however long
    monkeypatch.setattr(watch, "SLOW_S", 10.0)
    watch._watch("start", {"generation": 2})
    watch._watch("stop", {"generation": 2})
    assert not watch.slow_full_collection  # a full one, but quick
    monkeypatch.setattr(watch, "SLOW_S", 0.05)
    watch._watch("start", {"generation": 2})
    time.sleep(0.06)
    watch._watch("stop", {"generation": 2})
    assert watch.slow_full_collection


def test_the_tick_after_a_slow_full_collection_freezes_what_survived() -> None:
    async def scenario() -> None:
        cluster = InProcessCluster(1)
        await cluster.start()
        try:
            gc.unfreeze()
            assert gc.get_freeze_count() == 0
            raft_adapter._collector.slow_full_collection = True  # as the watch would set it
            async with asyncio.timeout(5):
                while raft_adapter._collector.slow_full_collection:
                    await asyncio.sleep(0.005)
            assert gc.get_freeze_count() > 0
        finally:
            await cluster.stop()
        assert gc.get_freeze_count() == 0  # a closed member gives it back

    asyncio.run(asyncio.wait_for(scenario(), 60))
