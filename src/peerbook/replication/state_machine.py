"""The replicated state machine: committed log entries applied to this peer's engine.

Every peer feeds the same entries, in log order, to its own `OrderStateMachine`, so every
engine goes through the same commands and reports the same (sequence, digest). This module
sees no socket, file or thread: the Raft adapter hands it committed entries.

Rules:
- *Exactly once*: an entry at an index at or below the last applied index is ignored (the
  Raft library may replay entries after a restart or a snapshot install).
- *Total*: nothing here raises on bad data. An entry that is not valid JSON of the entry
  format is recorded as rejected; a command that fails the request checks is refused alone,
  without a sequence number, exactly as `peerbook replay` refuses such a line; every other
  command goes to the engine, which answers bad ones with `OrderRejected`.
- Exactly-once for *orders* across client retries is the engine's: a repeated
  (owner, clientOrderId) returns the original order.
"""

import contextlib
import gc
import json
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

from peerbook.engine import Engine, Event
from peerbook.engine.snapshot import restore_document, snapshot
from peerbook.errors import SnapshotError
from peerbook.replication.entries import LogEntry, decode_entry
from peerbook.wire import RequestError
from peerbook.wire import decode_entry as decode_command

__all__ = ["OrderStateMachine", "Outcome", "SnapshotPart"]

_SNAPSHOT_FORMAT = "peerbook-state-machine-snapshot"


class Outcome(NamedTuple):
    """What one command of an entry did: the engine's events, or the request error that
    refused it before the engine (then ``events`` is empty and no sequence was used)."""

    events: tuple[Event, ...]
    error: str | None


class SnapshotPart(Protocol):
    """State derived from applied entries that the engine does not hold (the trade history)
    but that a snapshot must carry, because the entries it came from are compacted away."""

    legacy_names: tuple[str, ...]
    """Names the part had in older snapshots, still read."""

    def dump(self) -> Any:
        """The part's state as JSON-ready data: what a peer that installs it needs to hold
        the same state (not necessarily the same bytes on every peer: a peer's history part
        holds the orders it retired)."""

    def parse(self, document: Any, engine: Engine) -> Any:
        """Check ``document`` (a `dump`, maybe from another peer) against the restored
        ``engine`` and return what `load` needs; change nothing.

        Raises:
            SnapshotError: ``document`` is not a valid dump.
        """

    def load(self, parsed: Any) -> None:
        """Replace the part's state with what `parse` returned."""


class OrderStateMachine:
    """Applies committed entries to an engine, in order, exactly once.

    Attributes:
        engine: the peer's engine (read it; only this object applies commands to it).
        applied_index: the log index of the last entry applied (0 before any).
        rejected_entries: how many entries were not valid entries.
        listeners: called after each applied entry with the entry and its outcomes, in log
            order, on whatever thread applies entries; what the peer derives from the event
            stream (trade history, market-data feed, command log) hangs here. A listener must
            not raise.
        parts: derived state a snapshot carries besides the engine, by name.
        installed: called after a snapshot was installed (`install`), so that what listens
            to single entries (feed, audit trail, command log) can start over from the new
            state.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.applied_index = 0
        self.rejected_entries = 0
        self.listeners: list[Callable[[LogEntry, list[Outcome]], None]] = []
        self.parts: dict[str, SnapshotPart] = {}
        self.installed: list[Callable[[], None]] = []

    def apply(self, index: int, text: str) -> list[Outcome]:
        """Apply the entry at log ``index``; one outcome per command, in order.

        Returns an empty list for an entry already applied or not valid.
        """
        if index <= self.applied_index:
            return []
        self.applied_index = index
        entry = decode_entry(text)
        if entry is None:
            self.rejected_entries += 1
            return []
        outcomes = []
        markets = self.engine.markets
        for document in entry.commands:
            command = decode_command(document, markets)
            if isinstance(command, RequestError):
                outcomes.append(Outcome((), str(command)))
            else:
                outcomes.append(Outcome(self.engine.apply(command), None))
        for listener in self.listeners:
            listener(entry, outcomes)
        return outcomes

    def snapshot(self) -> bytes:
        """Canonical JSON of the whole state: the engine snapshot, the applied index and
        every registered part. Composed as text around the engine's own canonical bytes (the
        bulk of it) rather than parsed and encoded again."""
        parts = {name: part.dump() for name, part in sorted(self.parts.items())}
        return b"".join((
            b'{"applied_index":', str(self.applied_index).encode(),
            b',"engine":', snapshot(self.engine),
            b',"format":', json.dumps(_SNAPSHOT_FORMAT).encode(),
            b',"parts":', _canonical(parts),
            b',"rejected_entries":', str(self.rejected_entries).encode(),
            b"}",
        ))  # fmt: skip

    def install(self, data: bytes) -> None:
        """Replace the whole state with the one ``data`` describes (a `snapshot` of this or
        another peer's machine), then tell the ``installed`` callbacks.

        The engine is restored in place (`Engine.assume`), so whatever holds it keeps
        working. Everything is checked before anything changes.

        Raises:
            SnapshotError: ``data`` is not a valid state machine snapshot, or lacks a part
                this machine has registered.
        """
        with _no_cyclic_collection():
            self._install(data)
            for installed in self.installed:
                installed()

    def _install(self, data: bytes) -> None:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise SnapshotError(
                f"state machine snapshot is not JSON: {type(exc).__name__}"
            ) from exc
        if not isinstance(document, dict) or document.get("format") != _SNAPSHOT_FORMAT:
            raise SnapshotError("not a state machine snapshot")
        applied, rejected = document.get("applied_index"), document.get("rejected_entries")
        if type(applied) is not int or type(rejected) is not int or min(applied, rejected) < 0:
            raise SnapshotError("state machine snapshot counters are not natural numbers")
        parts = document.get("parts")
        if not isinstance(parts, dict):
            raise SnapshotError("state machine snapshot parts are not an object")
        found = {}
        for name, part in self.parts.items():
            names = [n for n in (name, *part.legacy_names) if n in parts]
            if not names:
                raise SnapshotError(f"state machine snapshot lacks the part {name}")
            found[name] = parts[names[0]]
        engine = restore_document(document.get("engine"))
        loaded = [(part, part.parse(found[name], engine)) for name, part in self.parts.items()]
        self.engine.assume(engine)
        self.applied_index, self.rejected_entries = applied, rejected
        for part, parsed in loaded:
            part.load(parsed)


@contextlib.contextmanager
def _no_cyclic_collection() -> Iterator[None]:
    """Millions of new objects in one go would set off the cyclic collector again and again,
    each time over the whole growing heap (measured: an install of 200,000 orders took about
    twice as long with it); none of them is garbage yet, so it is paused meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
