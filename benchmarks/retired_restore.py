"""Restoring a settled peer's engine: retired orders packed (snapshot version 3) against one
JSON array per retired order (version 2, the baseline, timed in the same invocation).

Run: ``python benchmarks/retired_restore.py [--orders 1000000] [--runs 3]``.

An engine applies ``--orders`` crossing limit orders (500 per entry) and retires every closed
one, keeping client order ids out of memory as a peer does (they are in its audit trail):
the engine a peer restarts from after running a while. Its snapshot is written in both
versions; each is then parsed and restored (`peerbook.engine.snapshot.restore`: every field
and invariant checked), median of ``--runs``.
"""

import argparse
import gc
import json
import statistics
import time
from collections.abc import Sequence

from peerbook.engine import Engine
from peerbook.engine.snapshot import restore, snapshot
from peerbook.replication import OrderStateMachine, encode_entry
from peerbook.testing.orders import crossing_command

_PER_ENTRY = 500


class _OnDisk:
    """Stands for the audit trail that holds retired orders' client order ids (never asked:
    every client order id here is new)."""

    def order_id(self, owner: str, client_order_id: str) -> int | None:
        return None


def _settled_engine(orders: int) -> Engine:
    machine = OrderStateMachine(Engine())
    machine.engine.keep_client_ids_in(_OnDisk())
    for start in range(0, orders, _PER_ENTRY):
        commands = [{**crossing_command(index), "timestamp": 1_764_000_000_000}
                    for index in range(start, min(orders, start + _PER_ENTRY))]  # fmt: skip
        machine.apply(start // _PER_ENTRY + 1, encode_entry("bench", commands))
    for order in list(machine.engine.orders()):
        machine.engine.retire(order.order_id)
    return machine.engine


def _as_version_2(data: bytes, engine: Engine) -> bytes:
    """The same snapshot with its retired orders listed one array each (version 2)."""
    document = json.loads(data)
    retired = document["retired"]
    del retired["owners"], retired["packed"]
    retired["orders"] = [
        [r.order_id, r.owner, r.symbol, int(r.state)] for r in engine.retired_orders()
    ]
    document["version"] = 2
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _timed_restore(data: bytes) -> float:
    """Seconds to restore ``data`` with the cyclic collector paused, as a peer's install
    does (`OrderStateMachine.install`)."""
    gc.disable()
    try:
        started = time.perf_counter()
        restore(data)
        return time.perf_counter() - started
    finally:
        gc.enable()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    engine = _settled_engine(args.orders)
    packed = snapshot(engine)
    listed = _as_version_2(packed, engine)
    assert snapshot(restore(listed)) == packed
    old = statistics.median(_timed_restore(listed) for _ in range(args.runs))
    new = statistics.median(_timed_restore(packed) for _ in range(args.runs))
    print(f"{args.orders:,} orders: {engine.retired_count:,} retired, "
          f"{engine.order_count:,} held in full; median of {args.runs}")  # fmt: skip
    print(f"{'version 2, one array each (baseline)':<40}{len(listed) / 2**20:>7.1f} MiB"
          f"{old:>8.2f} s")  # fmt: skip
    print(f"{'version 3, packed':<40}{len(packed) / 2**20:>7.1f} MiB{new:>8.2f} s")
    print(f"ratio baseline / packed: {old / new:.2f}")


if __name__ == "__main__":
    main()
