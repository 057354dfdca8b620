"""The Raft journal on disk, with compaction that a kill -9 cannot cut in half.

pysyncobj's `FileJournal` drops the entries before a snapshot (``deleteEntriesTo``) by
marking the file empty and then writing the kept entries back one by one, in place. A
process killed in between restarts with only some of the entries it had acknowledged: what
Raft counts on a member never to do. `AtomicJournal` writes the kept entries to a new file,
syncs it and renames it over the journal, so a kill leaves either the old journal or the
new one, both whole. Everything else is the library's journal, in the library's format.

A snapshot is put in place (renamed) a moment before the journal is compacted to start at
it; a kill between the two leaves a journal that starts before the snapshot, which the
library would throw away whole on restart (it keeps a journal only if it starts exactly at
the snapshot's boundary). `complete_compaction` finishes that step before the library
loads: when the journal holds the snapshot's two boundary entries, the entries before them
are dropped, as the interrupted compaction would have done.

`install` makes the library create `AtomicJournal` for every journal file.
"""

import contextlib
import os
from pathlib import Path
from typing import Any

import pysyncobj.syncobj
from pysyncobj.journal import FileJournal, Journal, MemoryJournal

__all__ = ["AtomicJournal", "complete_compaction", "install"]

Entry = tuple[bytes, int, int]  # the library's log entry: (command, index, term)


class AtomicJournal(Journal):  # type: ignore[misc]
    """The library's file journal at ``path``, with an atomic ``deleteEntriesTo``."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._file = FileJournal(path)

    def deleteEntriesTo(self, entry_to: int) -> None:  # noqa: N802 - the library's name
        """Keep the entries from position ``entry_to`` on: written to a new file, synced,
        then renamed over the journal."""
        kept = [self._file[i] for i in range(entry_to, len(self._file))]
        fresh_path = f"{self._path}.compacting"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fresh_path)
        fresh = FileJournal(fresh_path)
        for entry in kept:
            fresh.add(*entry)
        fresh.flush()
        fresh._destroy()
        _fsync(fresh_path)
        with contextlib.suppress(FileNotFoundError):  # the fresh journal's (unused) metadata
            os.unlink(f"{fresh_path}.meta")
        self._file.onOneSecondTimer()  # the term, vote and commit index stay in DIR/*.meta
        # Renamed while the old file is still open: should the rename fail, the journal in
        # use is untouched; once it is done, the old mapping is closed and the new one read.
        os.replace(fresh_path, self._path)
        _fsync(os.path.dirname(os.path.abspath(self._path)))
        self._file._destroy()
        self._file = FileJournal(self._path)

    # Everything else is the library's journal.

    def add(self, command: bytes, idx: int, term: int) -> None:
        self._file.add(command, idx, term)

    def clear(self) -> None:
        self._file.clear()

    def deleteEntriesFrom(self, entry_from: int) -> None:  # noqa: N802 - the library's name
        self._file.deleteEntriesFrom(entry_from)

    def __getitem__(self, item: Any) -> Any:
        return self._file[item]

    def __len__(self) -> int:
        return len(self._file)

    def _destroy(self) -> None:
        self._file._destroy()

    def flush(self) -> None:
        self._file.flush()

    def setRaftCommitIndex(self, raft_commit_index: int) -> None:  # noqa: N802 - the library's name
        self._file.setRaftCommitIndex(raft_commit_index)

    def getRaftCommitIndex(self) -> int:  # noqa: N802 - the library's name
        return int(self._file.getRaftCommitIndex())

    def setCurrentTerm(self, term: int, voted_for: Any) -> None:  # noqa: N802 - the library's name
        self._file.setCurrentTerm(term, voted_for)

    def getCurrentTerm(self) -> int:  # noqa: N802 - the library's name
        return int(self._file.getCurrentTerm())

    def getVotedForNodeId(self) -> Any:  # noqa: N802 - the library's name
        return self._file.getVotedForNodeId()

    def onOneSecondTimer(self) -> None:  # noqa: N802 - the library's name
        self._file.onOneSecondTimer()


def complete_compaction(journal_path: Path, boundary: tuple[Entry, Entry]) -> bool:
    """Drop the journal's entries before the snapshot ``boundary`` (its first two entries
    after a compaction: the one before the snapshot's last, then the last), if the journal
    holds them further in; whether it did."""
    if not journal_path.exists():
        return False
    journal = AtomicJournal(str(journal_path))
    try:
        first, second = boundary
        for position in range(1, len(journal) - 1):
            if journal[position] == first and journal[position + 1] == second:
                journal.deleteEntriesTo(position)
                return True
        return False
    finally:
        journal._destroy()


def _create_journal(journal_file: str | None) -> Journal:
    return MemoryJournal() if journal_file is None else AtomicJournal(journal_file)


def install() -> None:
    """Make the library create `AtomicJournal` for its journal files."""
    pysyncobj.syncobj.createJournal = _create_journal


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
