"""Memory each closed order costs the engine, kept in full or retired, measured with tracemalloc.

Places N orders that all fill (so none rests: the figure is the cost of the record alone,
without book structures), with and without client order ids, and prints bytes per order:
kept in full (the baseline, as `peerbook replay` keeps them), retired (`Engine.retire`
after each fill, as a peer does once its audit trail holds them), and retired with the
client order ids found on disk (`Engine.keep_client_ids_in`, as a peer does: here an SQLite
file of (owner, client order id, id), whose memory is SQLite's page cache, not the engine's),
with the ratios to kept.
Run: ``python benchmarks/order_memory.py [N]``.
"""

import sqlite3
import sys
import tempfile
import tracemalloc
from pathlib import Path

from peerbook.engine import Command, Engine, OrderType, PlaceOrder, Side

_MODES = ("kept", "retired", "retired, ids on disk")


class _ClientIdsOnDisk:
    """The client order ids of every order, in an SQLite file (the peer's archive keeps them
    in its orders table)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("pragma synchronous=off")  # a measurement of memory, not durability
        self._db.execute("create table ids (owner text, client_order_id text, id integer)")
        self._db.execute("create index ids_client on ids (owner, client_order_id)")

    def add(self, rows: list[tuple[str, str, int]]) -> None:
        with self._db:
            self._db.executemany("insert into ids values (?, ?, ?)", rows)

    def order_id(self, owner: str, client_order_id: str) -> int | None:
        rows = self._db.execute(
            "select id from ids where owner = ? and client_order_id = ?", (owner, client_order_id)
        ).fetchall()
        return int(rows[0][0]) if rows else None


def _commands(count: int, with_client_ids: bool) -> list[Command]:
    commands: list[Command] = []
    for index in range(count):
        side = Side.SELL if index % 2 == 0 else Side.BUY
        pair = index // 2  # a sell, then a buy that fills it exactly
        client_order_id = f"peer-1-order-{index:012d}" if with_client_ids else None
        commands.append(
            PlaceOrder(
                "p1", 1_764_000_000_000 + index, "BTC/USD", side, OrderType.LIMIT,
                100 + pair % 400, 300_000 + pair % 1000, client_order_id=client_order_id,
            )
        )  # fmt: skip
    return commands


def bytes_per_order(count: int, with_client_ids: bool, mode: str, directory: Path) -> float:
    """Traced bytes held by the engine per filled order."""
    commands = _commands(count, with_client_ids)
    disk = _ClientIdsOnDisk(directory / f"{mode}-{with_client_ids}.sqlite3")
    tracemalloc.start()
    engine = Engine()
    if mode == "retired, ids on disk":
        engine.keep_client_ids_in(disk)
    baseline = tracemalloc.get_traced_memory()[0]
    for command in commands:
        engine.apply(command)
        if mode != "kept" and engine.sequence % 2 == 0:  # the buy filled the sell: closed
            pair = [engine.order(engine.sequence - 1), engine.order(engine.sequence)]
            disk.add([(o.owner, o.client_order_id, o.order_id) for o in pair
                      if o is not None and o.client_order_id is not None])  # fmt: skip
            engine.retire(engine.sequence - 1)
            engine.retire(engine.sequence)
    held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert engine.retired_count == (0 if mode == "kept" else count)
    assert all(not order.is_resting for order in engine.orders())
    return held / count


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"closed orders: {count}; bytes per order, and the ratio to kept")
    with tempfile.TemporaryDirectory(prefix="peerbook-order-memory-") as directory:
        for with_ids in (False, True):
            label = "with client order ids (24 chars)" if with_ids else "without client order ids"
            held = {m: bytes_per_order(count, with_ids, m, Path(directory)) for m in _MODES}
            print(f"  {label}: " + ", ".join(
                f"{mode} {b:.0f} B ({b / held['kept']:.3f})" for mode, b in held.items()
            ))  # fmt: skip


if __name__ == "__main__":
    main()
