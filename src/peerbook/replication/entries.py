"""Log entries: what the replicated log orders, one batch of commands per entry.

Throughput comes from putting many client commands in one entry (issue: the replicated order
log), so an entry is a batch: ``{"v": 1, "proposer": PEER, "commands": [COMMAND, ...]}`` where
each command is exactly a line of contract section 7 (``op``, ``owner``, ``timestamp``,
``args``). Entries are canonical JSON text, never pickle: the text is what the Raft library
replicates and journals, and what an auditor replays (`peerbook replay` takes the commands).

Decoding is total: bytes that are not a valid entry decode to None, which the state machine
records as a rejected entry; it never raises, because an entry that raises when applied is
retried forever and stalls the cluster (research note on the Raft library, section 3.5).
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["ENTRY_BYTES_MAX", "ENTRY_VERSION", "LogEntry", "decode_entry", "encode_entry"]

ENTRY_VERSION = 1
ENTRY_BYTES_MAX = 1 << 20
"""Largest entry accepted; a proposer keeps its batches well below it."""

_FIELDS = frozenset({"v", "proposer", "commands"})


class LogEntry(NamedTuple):
    """A decoded entry: the proposing peer and its commands (section 7 objects), in order."""

    proposer: str
    commands: tuple[Mapping[str, Any], ...]


def encode_entry(proposer: str, commands: Sequence[Mapping[str, Any]]) -> str:
    """The canonical text of an entry (sorted keys, no whitespace, ASCII)."""
    document = {"v": ENTRY_VERSION, "proposer": proposer, "commands": list(commands)}
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def decode_entry(text: str) -> LogEntry | None:
    """The entry ``text`` holds, or None if it is not a valid entry of this version.

    Only the envelope is checked here; each command is checked when it is applied, exactly as
    `peerbook replay` checks a line, so that a bad command is refused alone, not its batch.
    """
    if len(text) > ENTRY_BYTES_MAX:
        return None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or set(document) != _FIELDS:
        return None
    proposer, commands = document["proposer"], document["commands"]
    if document["v"] != ENTRY_VERSION or not isinstance(proposer, str):
        return None
    if not isinstance(commands, list) or not all(isinstance(c, dict) for c in commands):
        return None
    return LogEntry(proposer, tuple(commands))
