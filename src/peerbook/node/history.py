"""What the engine does not keep but the API serves: trades, and whose orders are whose.

The engine holds books and orders; trades are events that pass through it. `TradeHistory`
listens to the state machine's applied outcomes (every entry, on every peer, in log order),
so after a restart that replays the journal it holds the same history again, and every peer
holds the same trades with the same ids.

It lives in memory. At the project's measured sizes (about 150 bytes per trade) that is
fine for a demo and for tests; an exchange that runs for months keeps this on disk (the audit
trail of the peer issue) and bounds it here.
"""

from collections.abc import Callable, Sequence
from typing import TypeVar

from peerbook.engine import Engine, OrderAccepted, Side, TradeExecuted
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry

__all__ = ["Fill", "TradeHistory", "window"]

_T = TypeVar("_T")


class Fill:
    """One side of a trade, seen by one order's owner."""

    __slots__ = ("side", "trade")

    def __init__(self, trade: TradeExecuted, side: Side) -> None:
        self.trade = trade
        self.side = side


def window(
    items: Sequence[_T], timestamp: Callable[[_T], int], since: int | None, limit: int
) -> list[_T]:
    """Items (in log order) from ``since`` on, the first ``limit`` of them; without
    ``since``, the most recent ``limit``.

    A linear scan, not a bisection: timestamps are stamped by the proposing peer, so two
    peers' entries can reach the log slightly out of timestamp order."""
    if since is None:
        return list(items[-limit:])
    chosen = []
    for item in items:
        if timestamp(item) >= since:
            chosen.append(item)
            if len(chosen) == limit:
                break
    return chosen


class TradeHistory:
    """Trades by market, fills by order and by owner, and each owner's orders."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.trades: dict[str, list[TradeExecuted]] = {s: [] for s in engine.markets}
        self._order_fills: dict[int, list[Fill]] = {}
        self._owner_fills: dict[str, list[Fill]] = {}
        self._owner_orders: dict[str, list[int]] = {}

    def on_applied(self, entry: LogEntry, outcomes: list[Outcome]) -> None:
        """Record the trades and new orders of one applied entry."""
        orders = self._engine.order
        for outcome in outcomes:
            for event in outcome.events:
                if type(event) is TradeExecuted:
                    self.trades[event.symbol].append(event)
                    taker, maker = orders(event.taker_order_id), orders(event.maker_order_id)
                    assert taker is not None and maker is not None
                    for order in (taker, maker):
                        fill = Fill(event, order.side)
                        self._order_fills.setdefault(order.order_id, []).append(fill)
                        self._owner_fills.setdefault(order.owner, []).append(fill)
                elif type(event) is OrderAccepted:
                    self._owner_orders.setdefault(event.owner, []).append(event.order_id)

    def fills_of_order(self, order_id: int) -> list[Fill]:
        """The order's fills, in execution order."""
        return self._order_fills.get(order_id, [])

    def fills_of_owner(self, owner: str) -> list[Fill]:
        """Every fill of the owner's orders, in execution order."""
        return self._owner_fills.get(owner, [])

    def orders_of_owner(self, owner: str) -> list[int]:
        """The ids of the owner's orders, in acceptance order."""
        return self._owner_orders.get(owner, [])
