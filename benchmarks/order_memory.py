"""Memory each closed order costs the engine, kept in full or retired, measured with tracemalloc.

Places N orders that all fill (so none rests: the figure is the cost of the record alone,
without book structures), with and without client order ids, and prints bytes per order:
kept in full (the baseline, as `peerbook replay` keeps them), and retired (`Engine.retire`
after each fill, as a peer does once its audit trail holds them), with the ratio.
Run: ``python benchmarks/order_memory.py [N]``.
"""

import sys
import tracemalloc

from peerbook.engine import Command, Engine, OrderType, PlaceOrder, Side


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


def bytes_per_order(count: int, with_client_ids: bool, retire: bool) -> float:
    """Traced bytes held by the engine per filled order."""
    commands = _commands(count, with_client_ids)
    tracemalloc.start()
    engine = Engine()
    baseline = tracemalloc.get_traced_memory()[0]
    for command in commands:
        engine.apply(command)
        if retire and engine.sequence % 2 == 0:  # the buy filled the sell: both closed
            engine.retire(engine.sequence - 1)
            engine.retire(engine.sequence)
    held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert engine.retired_count == (count if retire else 0)
    assert all(not order.is_resting for order in engine.orders())
    return held / count


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"closed orders: {count}")
    for with_ids in (False, True):
        label = "with client order ids (24 chars)" if with_ids else "without client order ids"
        kept = bytes_per_order(count, with_ids, retire=False)
        retired = bytes_per_order(count, with_ids, retire=True)
        print(f"  {label}: kept {kept:.0f} B, retired {retired:.0f} B per order "
              f"(retired/kept {retired / kept:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
