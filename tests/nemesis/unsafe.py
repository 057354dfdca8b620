"""Deliberately broken peers, for the checker's negative controls.

``python -m tests.nemesis.unsafe MODE node ARGS...`` runs ``peerbook node ARGS...`` with one
safety removed, by patching this process only (the shipped code is untouched):

- ``no-dedup``: the engine forgets clientOrderIds, so a client's retry after an unknown
  outcome creates a second order (the checker must report duplicates);
- ``nondeterministic``: each peer stamps orders with its own clock when it applies them,
  as an apply that reads the clock would (the checker must report divergence);
- ``memory-journal``: the Raft log is kept in memory only, so killing every peer at once
  loses acknowledged orders (the checker must report them lost).

A fault run with a broken peer must fail; if it passes, the checker cannot see that failure.
"""

import sys
import time
from typing import Any

from peerbook.cli import main
from peerbook.engine import Engine, PlaceOrder
from peerbook.node import peer as peer_module
from peerbook.replication.raft_adapter import RaftLog

MODES = ("no-dedup", "nondeterministic", "memory-journal")


class _Forgetful(dict[Any, Any]):
    def get(self, key: Any, default: Any = None) -> Any:
        return default


class _NoDedupEngine(Engine):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_client_id = _Forgetful()

    def assume(self, other: Engine) -> None:  # a snapshot must not bring the memory back
        super().assume(other)
        self._by_client_id = _Forgetful()


class _ClockReadingEngine(Engine):
    def apply(self, command: Any) -> Any:
        if type(command) is PlaceOrder:
            command = command._replace(timestamp=time.time_ns() // 1_000_000)
        return super().apply(command)


class _MemoryJournalLog(RaftLog):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["data_dir"] = None
        super().__init__(*args, **kwargs)


def _break(mode: str) -> None:
    replacements: dict[str, tuple[str, type]] = {
        "no-dedup": ("Engine", _NoDedupEngine),
        "nondeterministic": ("Engine", _ClockReadingEngine),
        "memory-journal": ("RaftLog", _MemoryJournalLog),
    }
    if mode not in replacements:
        raise SystemExit(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
    name, broken = replacements[mode]
    setattr(peer_module, name, broken)  # the composition root builds it from here


if __name__ == "__main__":
    _break(sys.argv[1])
    raise SystemExit(main(sys.argv[2:]))
