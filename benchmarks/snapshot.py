"""Snapshots of the state machine: size, time to write, time to install, against replaying.

Run: ``python benchmarks/snapshot.py [--orders 1000000] [--runs 3]``.

A state machine with the trade history registered (as a peer has it) applies ``--orders``
crossing limit orders, 500 per entry. Then, medians of ``--runs``:

* **snapshot**: `OrderStateMachine.snapshot` (what the forked child encodes), and its size;
* **install**: `OrderStateMachine.install` of those bytes into a fresh machine (what a joiner
  or a restarted peer does: parse, check every order and trade, rebuild the books and the
  history);
* **replay** (the baseline, run in the same invocation): applying the same entries to a fresh
  machine, which is what catching up from the log alone costs.

The ratio replay / install says how much a snapshot saves over the log at this size.
"""

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

from peerbook.engine import Engine
from peerbook.node.history import History
from peerbook.replication import OrderStateMachine, encode_entry
from peerbook.testing.orders import crossing_command

_PER_ENTRY = 500


def _machine() -> OrderStateMachine:
    machine = OrderStateMachine(Engine())
    history = History(machine.engine)
    machine.parts["history"] = history
    machine.listeners.append(history.on_applied)
    return machine


def _entries(orders: int) -> list[str]:
    def command(index: int) -> dict[str, Any]:
        return {**crossing_command(index), "timestamp": 1_764_000_000_000}

    return [
        encode_entry("bench", [command(i) for i in range(start, min(orders, start + _PER_ENTRY))])
        for start in range(0, orders, _PER_ENTRY)
    ]


def _replay(entries: list[str]) -> tuple[float, OrderStateMachine]:
    machine = _machine()
    started = time.perf_counter()
    for index, text in enumerate(entries, start=1):
        machine.apply(index, text)
    return time.perf_counter() - started, machine


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    entries = _entries(args.orders)
    replays, writes, installs = [], [], []
    size = trades = 0
    for _ in range(args.runs):
        seconds, machine = _replay(entries)
        replays.append(seconds)
        started = time.perf_counter()
        data = machine.snapshot()
        writes.append(time.perf_counter() - started)
        size, trades = len(data), machine.engine.trade_count
        copy = _machine()
        started = time.perf_counter()
        copy.install(data)
        installs.append(time.perf_counter() - started)
        assert copy.engine.digest() == machine.engine.digest()
    replay, write, install = (statistics.median(x) for x in (replays, writes, installs))
    print(f"{args.orders:,} orders, {trades:,} trades; snapshot {size / 2**20:,.1f} MiB "
          f"({size / args.orders:,.0f} bytes per order); median of {args.runs}")  # fmt: skip
    print(f"{'replay of the log (baseline)':<32}{replay:>8.2f} s")
    print(f"{'snapshot (encode)':<32}{write:>8.2f} s")
    print(f"{'install (parse, check, rebuild)':<32}{install:>8.2f} s")
    print(f"ratio replay / install: {replay / install:.2f}")


if __name__ == "__main__":
    main()
