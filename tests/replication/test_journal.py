"""The Raft journal's compaction is all or nothing, and a compaction interrupted between the
snapshot's rename and the journal's rewrite is finished at the next start."""

import os
from pathlib import Path

import pytest
from pysyncobj.journal import FileJournal

from peerbook.replication.journal import AtomicJournal, complete_compaction


def entries(count: int) -> list[tuple[bytes, int, int]]:
    return [(f"command {i}".encode() * (i % 5 + 1), i, 1 + i // 4) for i in range(1, count + 1)]


def filled(path: Path, count: int) -> AtomicJournal:
    journal = AtomicJournal(str(path))
    for entry in entries(count):
        journal.add(*entry)
    return journal


def on_disk(path: Path) -> list[tuple[bytes, int, int]]:
    journal = FileJournal(str(path))
    try:
        return [journal[i] for i in range(len(journal))]
    finally:
        journal._destroy()


def test_compaction_keeps_the_tail_on_disk_and_the_metadata(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    journal = filled(path, 50)
    journal.setCurrentTerm(7, "p2")
    journal.setRaftCommitIndex(44)
    journal.deleteEntriesTo(20)
    assert [journal[i] for i in range(len(journal))] == entries(50)[20:]
    journal.add(b"after", 51, 13)
    journal._destroy()
    assert on_disk(path) == [*entries(50)[20:], (b"after", 51, 13)]
    reopened = AtomicJournal(str(path))
    assert (reopened.getCurrentTerm(), reopened.getVotedForNodeId()) == (7, "p2")
    assert reopened.getRaftCommitIndex() == 44
    reopened._destroy()
    assert sorted(os.listdir(tmp_path)) == ["raft.journal", "raft.journal.meta"]


def test_a_compaction_cut_short_leaves_the_journal_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "raft.journal"
    journal = filled(path, 30)
    journal.flush()

    def killed(*_: object) -> None:
        raise SystemExit("killed before the rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(SystemExit):
        journal.deleteEntriesTo(10)
    assert on_disk(path) == entries(30)


def test_an_interrupted_compaction_is_finished(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    filled(path, 40)._destroy()
    log = entries(40)
    assert complete_compaction(path, (log[24], log[25]))
    assert on_disk(path) == log[24:]
    # Already finished, or a boundary the journal does not hold: nothing to do.
    assert not complete_compaction(path, (log[24], log[25]))
    assert not complete_compaction(path, ((b"other", 30, 9), log[30]))
    assert on_disk(path) == log[24:]
    assert not complete_compaction(tmp_path / "missing.journal", (log[0], log[1]))
