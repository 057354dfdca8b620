"""What the engine does not keep but the API serves: trades, and whose orders are whose.

The engine holds books and orders; trades are events that pass through it. `TradeHistory`
listens to the state machine's applied outcomes (every entry, on every peer, in log order)
and travels in the state machine's snapshots, so after a restart (snapshot plus journal) or
a join it holds the same history again, and every peer holds the same trades with the same
ids.

It lives in memory. At the project's measured sizes (about 150 bytes per trade) that is
fine for a demo and for tests; an exchange that runs for months keeps this on disk (the audit
trail of the peer issue) and bounds it here.
"""

import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

from peerbook.engine import Engine, OrderAccepted, Side, TradeExecuted
from peerbook.errors import SnapshotError
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry

__all__ = ["Fill", "TradeHistory", "window"]

_T = TypeVar("_T")


class Fill(NamedTuple):
    """One side of a trade, seen by one order's owner."""

    trade: TradeExecuted
    side: Side


_new = tuple.__new__  # a named tuple without its generated __new__'s frame (hot on restore)
_TRADE_FIELDS = len(TradeExecuted._fields)


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
    """Trades by market, fills by order and by owner, and each owner's orders.

    A `SnapshotPart` of the state machine: a snapshot carries every trade (the engine keeps
    orders, not trades), and the rest is rebuilt from the trades and the restored engine.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.trades: dict[str, list[TradeExecuted]] = {s: [] for s in engine.markets}
        self._order_fills: dict[int, list[Fill]] = {}
        self._owner_fills: dict[str, list[Fill]] = {}
        self._owner_orders: dict[str, list[int]] = {}

    def on_applied(self, entry: LogEntry, outcomes: list[Outcome]) -> None:
        """Record the trades and new orders of one applied entry."""
        for outcome in outcomes:
            for event in outcome.events:
                if type(event) is TradeExecuted:
                    self._record(event)
                elif type(event) is OrderAccepted:
                    self._owner_orders.setdefault(event.owner, []).append(event.order_id)

    def _record(self, trade: TradeExecuted) -> None:
        self.trades[trade.symbol].append(trade)
        orders, order_fills, owner_fills = self._engine.order, self._order_fills, self._owner_fills
        for order_id in (trade.taker_order_id, trade.maker_order_id):
            order = orders(order_id)
            assert order is not None
            fill = _new(Fill, (trade, order.side))
            fills = order_fills.get(order_id)
            if fills is None:
                order_fills[order_id] = [fill]
            else:
                fills.append(fill)
            owner_fills.setdefault(order.owner, []).append(fill)

    def every_trade(self) -> Iterator[TradeExecuted]:
        """Every trade of every market, in execution (id) order."""
        return heapq.merge(*self.trades.values(), key=lambda t: t.trade_id)

    def dump(self) -> list[list[Any]]:
        """Every trade in execution order, as JSON arrays of its fields."""
        return [[*trade[:5], int(trade.taker_side), *trade[6:]] for trade in self.every_trade()]

    def parse(self, document: Any, engine: Engine) -> list[TradeExecuted]:
        """The trades of a `dump`, checked against the restored ``engine``.

        Raises:
            SnapshotError: not a dump of trades of this engine's markets and orders.
        """
        if not isinstance(document, list):
            raise SnapshotError("the trade history is not a list")
        trades: list[TradeExecuted] = []
        markets, order, sides = engine.markets, engine.order, tuple(Side)
        last = 0
        for row in document:
            if type(row) is not list or len(row) != _TRADE_FIELDS:
                raise SnapshotError(f"not a trade: {row!r:.80}")
            (sequence, trade_id, symbol, price, quantity, side, taker, maker, taker_left,
             maker_left, timestamp) = row  # fmt: skip
            if not (
                type(sequence) is int and sequence >= 0 and type(trade_id) is int
                and trade_id > last and type(symbol) is str and symbol in markets
                and type(side) is int and side in (0, 1)
                and type(price) is int and price > 0 and type(quantity) is int and quantity > 0
                and type(taker) is int and type(maker) is int
                and type(taker_left) is int and taker_left >= 0
                and type(maker_left) is int and maker_left >= 0
                and type(timestamp) is int and timestamp >= 0
            ):  # fmt: skip
                raise SnapshotError(f"not a trade: {row!r:.80}")
            if order(taker) is None or order(maker) is None:
                raise SnapshotError(f"trade {trade_id} names an unknown order")
            trade = TradeExecuted(sequence, trade_id, symbol, price, quantity, sides[side], taker,
                                  maker, taker_left, maker_left, timestamp)  # fmt: skip
            last = trade_id
            trades.append(trade)
        return trades

    def load(self, parsed: list[TradeExecuted]) -> None:
        """Start over from these trades and the (already restored) engine's orders."""
        self.trades = {s: [] for s in self._engine.markets}
        self._order_fills, self._owner_fills, self._owner_orders = {}, {}, {}
        for order in self._engine.orders():
            self._owner_orders.setdefault(order.owner, []).append(order.order_id)
        for trade in parsed:
            self._record(trade)

    def fills_of_order(self, order_id: int) -> list[Fill]:
        """The order's fills, in execution order."""
        return self._order_fills.get(order_id, [])

    def fills_of_owner(self, owner: str) -> list[Fill]:
        """Every fill of the owner's orders, in execution order."""
        return self._owner_fills.get(owner, [])

    def orders_of_owner(self, owner: str) -> list[int]:
        """The ids of the owner's orders, in acceptance order."""
        return self._owner_orders.get(owner, [])
