"""Memory each order costs while it stays on record, measured with tracemalloc.

Places N orders that all fill (so none rests: the figure is the cost of the record alone,
without book structures), with and without client order ids, and prints bytes per order.
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


def bytes_per_order(count: int, with_client_ids: bool) -> float:
    """Traced bytes held by the engine per filled order on record."""
    commands = _commands(count, with_client_ids)
    tracemalloc.start()
    engine = Engine()
    baseline = tracemalloc.get_traced_memory()[0]
    for command in commands:
        engine.apply(command)
    held = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert all(not order.is_resting for order in engine.orders())
    return held / count


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"orders on record: {count}")
    for with_ids in (False, True):
        label = "with client order ids (24 chars)" if with_ids else "without client order ids"
        print(f"  {label}: {bytes_per_order(count, with_ids):.0f} bytes per order")


if __name__ == "__main__":
    main()
