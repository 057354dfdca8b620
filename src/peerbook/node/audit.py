"""The audit trail: every order and trade this peer applied, in an SQLite database in its data
directory (``audit.sqlite3``), for an operator's ordinary SQL::

    sqlite3 DIR/audit.sqlite3 "select id, side, price, amount, filled, state from orders
                               where owner = 'p1' order by id desc limit 10"

Rows are derived from the applied event stream: after each applied entry the orders it
touched (in their new state) and its trades are queued, and a background task writes what is
queued every `FLUSH_S` in one transaction, on a worker thread so the event loop never waits
for the disk. Writes are idempotent (``INSERT OR REPLACE`` by id), so re-applying the journal
after a restart rewrites the same rows. Prices, amounts and costs are the API's exact decimal
strings (TEXT), never floating point.

What it is not yet: the engine still keeps every order in memory; serving closed orders from
here so that they can leave memory is the next step (docs/engine.md, "bounding memory").
"""

import asyncio
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from peerbook.engine import Engine, Order, TradeExecuted
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry
from peerbook.wire.views import order_view

__all__ = ["FLUSH_S", "AuditTrail"]

FLUSH_S = 0.2

_SCHEMA = """
create table if not exists orders (
    id integer primary key, owner text not null, client_order_id text, symbol text not null,
    side text not null, type text not null, time_in_force text not null, post_only integer,
    price text, amount text not null, filled text not null, remaining text not null,
    cost text not null, average text, state text not null, status text not null,
    timestamp integer not null, last_trade_timestamp integer
);
create index if not exists orders_owner on orders (owner, id);
create table if not exists trades (
    id integer primary key, symbol text not null, price text not null, amount text not null,
    cost text not null, taker_side text not null, taker_order integer not null,
    maker_order integer not null, timestamp integer not null
);
create index if not exists trades_symbol on trades (symbol, id);
"""


class AuditTrail:
    """Writes applied orders and trades to ``path``."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self._engine = engine
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript("pragma journal_mode=wal; pragma synchronous=normal;" + _SCHEMA)
        self._orders: dict[int, tuple[Any, ...]] = {}
        self._trades: list[tuple[Any, ...]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def on_applied(self, entry: LogEntry, outcomes: list[Outcome]) -> None:
        """Queue the rows of one applied entry (a state machine listener)."""
        for outcome in outcomes:
            for event in outcome.events:
                order_id = getattr(event, "order_id", None)
                if type(event) is TradeExecuted:
                    self._queue_trade(event)
                    self._queue_order(event.taker_order_id)
                    self._queue_order(event.maker_order_id)
                elif isinstance(order_id, int):
                    self._queue_order(order_id)

    def on_installed(self, trades: Iterable[TradeExecuted]) -> None:
        """Queue every order of the engine's new state and ``trades`` (after a snapshot was
        installed, when the entries that made them never passed through `on_applied`)."""
        for order in self._engine.orders():
            self._orders[order.order_id] = self._row(order)
        for trade in trades:
            self._queue_trade(trade)

    def _queue_trade(self, event: TradeExecuted) -> None:
        market = self._engine.markets[event.symbol]
        self._trades.append((
            event.trade_id, event.symbol, market.format_price(event.price),
            market.format_amount(event.quantity),
            market.format_cost(event.price * event.quantity),
            event.taker_side.name.lower(), event.taker_order_id,
            event.maker_order_id, event.timestamp,
        ))  # fmt: skip

    def _queue_order(self, order_id: int) -> None:
        order = self._engine.order(order_id)
        if order is not None:
            self._orders[order_id] = self._row(order)

    def _row(self, order: Order) -> tuple[Any, ...]:
        view = order_view(order, self._engine.markets[order.symbol])
        return (
            order.order_id, order.owner, order.client_order_id, order.symbol, view["side"],
            view["type"], view["timeInForce"], int(order.post_only), view["price"],
            view["amount"], view["filled"], view["remaining"], view["cost"], view["average"],
            view["info"]["state"], view["status"], order.timestamp, order.last_trade_timestamp,
        )  # fmt: skip

    def start(self) -> None:
        """Start flushing in the background."""
        self._task = asyncio.create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        # Never cancelled half way through a write: `close` sets `_stopping` and waits for
        # this loop's last flush, so two writes never share the connection at once.
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(FLUSH_S):
                    await self._stopping.wait()
            except TimeoutError:
                pass
            await self._flush()

    async def _flush(self) -> None:
        """Write everything queued, in one transaction, on a worker thread."""
        orders, trades = list(self._orders.values()), self._trades
        self._orders, self._trades = {}, []
        if orders or trades:
            await asyncio.to_thread(self._write, orders, trades)

    def _write(self, orders: list[tuple[Any, ...]], trades: list[tuple[Any, ...]]) -> None:
        with self._db:
            self._db.execute("begin")
            self._db.executemany(f"insert or replace into orders values ({_marks(18)})", orders)
            self._db.executemany(f"insert or replace into trades values ({_marks(9)})", trades)

    async def close(self) -> None:
        """Write what is left and close the database."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        else:
            await self._flush()
        self._db.close()


def _marks(count: int) -> str:
    return ",".join("?" * count)
