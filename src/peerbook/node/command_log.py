"""The peer's command log: every command it applied, in log order, as `peerbook replay` input.

An auditor (or a test) runs ``peerbook replay DIR/commands.jsonl`` and must get the applied
sequence and digest the peer reports in ``fetchStatus``: the offline proof that the peer's
state is exactly what the log says. Each line is one command of contract section 7
(``op``, ``owner``, ``timestamp``, ``args``), written after its entry is applied and flushed
to the operating system per entry.

The file is rewritten from the start at every start of the peer, because the replicated log
re-applies its journal into a fresh engine. When the peer's state starts from a snapshot
instead (a restart after log compaction, or a follower sent a snapshot by the leader), that
state is kept next to it as ``commands.snapshot`` and the commands that follow start over;
then ``peerbook replay --snapshot DIR/commands.snapshot DIR/commands.jsonl`` is the proof.

``commands.snapshot`` is a second name (a hard link) for the Raft snapshot file the state
was loaded from: the state is on disk already, and encoding it again, with the client order
ids of every retired order read back from the audit trail, was a third of a restart behind a
long history. It stays after the next compaction replaces the Raft snapshot (one more
snapshot's worth of disk), until the next start. `start_engine` reads it: the engine
section, with the orders it had retired put back from the full records in the history
section's copy of the audit trail. Where there is no such file (a state installed from
bytes, a file system without hard links) the engine's own snapshot is written there instead,
and read as well; its retired orders are not printed by the replay.
"""

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from peerbook.engine import Engine
from peerbook.engine.snapshot import restore, restore_document, snapshot
from peerbook.errors import SnapshotError
from peerbook.node.history import History
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry
from peerbook.replication.snapshot_store import state_of
from peerbook.replication.state_machine import snapshot_document

__all__ = ["CommandLog", "replay_arguments", "start_engine"]

# One encoder for every line: `json.dumps` with options builds a new encoder per call.
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def replay_arguments(path: Path) -> list[str]:
    """The ``peerbook replay`` arguments that re-derive a peer's state from its command log
    at ``path``: the log, preceded by the snapshot it starts from when there is one."""
    start = path.with_name(path.stem + ".snapshot")
    return [*(["--snapshot", str(start)] if start.exists() else []), str(path)]


def start_engine(data: bytes) -> Engine:
    """The engine a command log starts from: ``data`` is a ``commands.snapshot`` (a peer's
    Raft snapshot file, or an engine snapshot). A Raft snapshot file's retired orders are
    put back in full (`Engine.reinstate`) from its history section (as a peer without an
    archive installs it: `History.parse`, which checks every record), so that a replay
    prints every order ever accepted, as contract section 7 asks, and a command repeating a
    retired order's client order id replays as it applied.

    Raises:
        SnapshotError: ``data`` is neither, or not whole.
    """
    if b"\n" not in data:  # an engine snapshot is one line of JSON; a snapshot file is not
        return restore(data)
    state = snapshot_document(state_of(data))
    engine = restore_document(state["engine"])
    part = state["parts"].get("history")
    if part is not None:
        history = History(engine)
        history.load(history.parse(lambda: part, engine))
    elif engine.retired_count:
        raise SnapshotError(f"the snapshot lacks the records of {engine.retired_count} orders")
    return engine


class CommandLog:
    """Appends applied commands to ``path`` (truncated when opened); ``start`` is the engine
    snapshot the commands apply to, absent while that is a fresh engine.

    Args:
        kept_client_ids: reads the store that keeps retired orders' client order ids out of
            the engine's memory (`Engine.keep_client_ids_in`), so that ``start`` holds them
            too: a command that repeats one must replay as it applied.
    """

    def __init__(
        self,
        path: Path,
        engine: Engine,
        kept_client_ids: Callable[[], Iterable[tuple[str, str, int]]] = lambda: (),
    ) -> None:
        self.path = path
        self.start = path.with_name(path.stem + ".snapshot")  # see `replay_arguments`
        self._engine = engine
        self._kept_client_ids = kept_client_ids
        self._temporary = self.start.with_suffix(".tmp")
        self.start.unlink(missing_ok=True)
        self._temporary.unlink(missing_ok=True)
        self._file = path.open("w", encoding="utf-8")

    def on_applied(self, entry: LogEntry, outcomes: list[Outcome]) -> None:
        """Write the commands of one applied entry (a state machine listener)."""
        self._file.write("".join(_encode(command) + "\n" for command in entry.commands))
        self._file.flush()

    def on_installed(self, source: Path | None) -> None:
        """Start over from the engine's new state (a state machine ``installed`` callback),
        which the snapshot file ``source`` holds, if given."""
        temporary = self._temporary
        temporary.unlink(missing_ok=True)
        if source is None or not _linked(source, temporary):
            temporary.write_bytes(snapshot(self._engine, self._kept_client_ids()))
        temporary.replace(self.start)
        # Renaming a link over another link to the same file (the same snapshot loaded
        # again) does nothing, and would leave this second name keeping the file alive.
        temporary.unlink(missing_ok=True)
        self._file.seek(0)
        self._file.truncate()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def _linked(source: Path, name: Path) -> bool:
    """Whether ``name`` could be made a hard link to ``source``."""
    try:
        os.link(source, name)
    except OSError:
        return False
    return True
