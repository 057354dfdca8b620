"""``peerbook`` with its Python heap traced: ``python -m peerbook.testing.traced node ...``.

For finding what holds memory in a real peer process (`benchmarks/heap_growth.py`).
`tracemalloc` records where every live block was allocated (``PEERBOOK_TRACE_FRAMES``
frames deep, default 12); each SIGUSR1 runs a full garbage collection (so that what is
left is reachable, not cyclic garbage waiting for the collector) and writes a snapshot of
the live blocks to
``PEERBOOK_TRACE_DIR/heap-N.snapshot`` (N counting from 1; renamed into place once
written), which
`tracemalloc.Snapshot.load` reads back. Tracing slows the process several times over: a
diagnostic, never a way to run a peer.
"""

import gc
import itertools
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from peerbook.cli import main as peerbook_main

_numbers = itertools.count(1)


def _dump(_signal: int, _frame: FrameType | None) -> None:
    path = Path(os.environ["PEERBOOK_TRACE_DIR"]) / f"heap-{next(_numbers)}.snapshot"
    partial = path.with_suffix(".partial")
    gc.collect()
    tracemalloc.take_snapshot().dump(str(partial))
    partial.replace(path)  # complete once it has its name


def main() -> int:
    """Trace, then run the ``peerbook`` command line with this process's arguments."""
    tracemalloc.start(int(os.environ.get("PEERBOOK_TRACE_FRAMES", "12")))
    signal.signal(signal.SIGUSR1, _dump)
    return peerbook_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
