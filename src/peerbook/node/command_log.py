"""The peer's command log: every command it applied, in log order, as `peerbook replay` input.

An auditor (or a test) runs ``peerbook replay DIR/commands.jsonl`` and must get the applied
sequence and digest the peer reports in ``fetchStatus``: the offline proof that the peer's
state is exactly what the log says. Each line is one command of contract section 7
(``op``, ``owner``, ``timestamp``, ``args``), written after its entry is applied and flushed
to the operating system per entry.

The file is rewritten from the start at every start of the peer, because the replicated log
re-applies its journal into a fresh engine. When the peer's state starts from a snapshot
instead (a restart after log compaction, or a follower sent a snapshot by the leader), the
engine's snapshot is written next to it as ``commands.snapshot.json`` and the commands that
follow start over; then ``peerbook replay --snapshot DIR/commands.snapshot.json
DIR/commands.jsonl`` is the proof.
"""

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from peerbook.engine import Engine
from peerbook.engine.snapshot import snapshot
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry

__all__ = ["CommandLog", "replay_arguments"]


def replay_arguments(path: Path) -> list[str]:
    """The ``peerbook replay`` arguments that re-derive a peer's state from its command log
    at ``path``: the log, preceded by the snapshot it starts from when there is one."""
    start = path.with_name(path.stem + ".snapshot.json")
    return [*(["--snapshot", str(start)] if start.exists() else []), str(path)]


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
        self.start = path.with_name(path.stem + ".snapshot.json")  # see `replay_arguments`
        self._engine = engine
        self._kept_client_ids = kept_client_ids
        self.start.unlink(missing_ok=True)
        self._file = path.open("w", encoding="utf-8")

    def on_applied(self, entry: LogEntry, outcomes: list[Outcome]) -> None:
        """Write the commands of one applied entry (a state machine listener)."""
        for command in entry.commands:
            self._file.write(json.dumps(command, sort_keys=True, separators=(",", ":")) + "\n")
        self._file.flush()

    def on_installed(self) -> None:
        """Start over from the engine's new state (a state machine ``installed`` callback)."""
        temporary = self.start.with_suffix(".tmp")
        temporary.write_bytes(snapshot(self._engine, self._kept_client_ids()))
        temporary.replace(self.start)
        self._file.seek(0)
        self._file.truncate()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
