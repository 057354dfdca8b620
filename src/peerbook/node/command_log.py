"""The peer's command log: every command it applied, in log order, as `peerbook replay` input.

An auditor (or a test) runs ``peerbook replay DIR/commands.jsonl`` and must get the applied
sequence and digest the peer reports in ``fetchStatus``: the offline proof that the peer's
state is exactly what the log says. Each line is one command of contract section 7
(``op``, ``owner``, ``timestamp``, ``args``), written after its entry is applied and flushed
to the operating system per entry.

The file is rewritten from the start at every start of the peer, because the replicated log
re-applies its journal from the first entry into a fresh engine.
"""

import json
from pathlib import Path

from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry

__all__ = ["CommandLog"]


class CommandLog:
    """Appends applied commands to ``path`` (truncated when opened)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("w", encoding="utf-8")

    def on_applied(self, entry: LogEntry, outcomes: list[Outcome]) -> None:
        """Write the commands of one applied entry (a state machine listener)."""
        for command in entry.commands:
            self._file.write(json.dumps(command, sort_keys=True, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()
