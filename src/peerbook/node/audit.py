"""The audit trail: every order and trade this peer applied, in an SQLite database in its data
directory (``audit.sqlite3``), for an operator's ordinary SQL::

    sqlite3 DIR/audit.sqlite3 "select id, side, price, amount, filled, state from orders
                               where owner = 'p1' order by id desc limit 10"

Rows are derived from the applied event stream: after each applied entry the orders it
touched and its trades are queued, and a background task writes what is queued every
`FLUSH_S` in one transaction, on a worker thread so the event loop never waits for the disk.
An order's row is built when it is written, from its state then: an order touched by several
events or entries in one interval (accepted, traded, rested; a maker filled again and again)
costs one row, not one per event (building rows was a third of a follower's apply time).
Writes are idempotent (``INSERT OR REPLACE`` by id). Re-applying the journal after a restart
(or installing a snapshot whose history this database already holds) would rewrite the same
rows, so what was on disk when the trail opened is not written again: trades up to the
highest id under which every trade is on disk, and closed orders whose closed row is there
(a closed order never changes again, and the log gives every peer the same orders under the
same ids). Building those rows again was a tenth of a restart's time (py-spy, 300,000
orders), and writing them held the worker thread and the GIL meanwhile. The schema, and
reading rows back, are in `peerbook.node.archive`.

After each write, ``on_written`` is told the highest trade id and the closed orders now on
disk: the peer's history then lets them leave memory (`History.archived`), and serves them
from here from then on.

A snapshot install usually brings a copy of the writer's database, which this one becomes
(`adopt`); the install then queues every order the engine holds in its new state at once.
Without such a copy (a snapshot of the older format) that is a whole history: hundreds of
thousands of rows, tens of seconds of writing on a busy machine. That backlog is written
`ORDERS_PER_WRITE` orders per transaction, and a stopping peer writes it for at most
`CLOSE_S` more: what is left is written at its next start, which installs its snapshot and
re-applies its journal again (a soak found peers that left right after joining and took over
20 s to stop, writing the backlog of the snapshot they had just installed).
"""

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from peerbook.engine import Engine, Order, OrderState, TradeExecuted
from peerbook.engine.snapshot import encode_order
from peerbook.node.archive import Archive, connect, encode_trade, extent
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry
from peerbook.wire.views import order_view

__all__ = ["CLOSE_S", "FLUSH_S", "ORDERS_PER_WRITE", "AuditTrail"]

FLUSH_S = 0.2
ORDERS_PER_WRITE = 10_000
CLOSE_S = 3.0
_log = logging.getLogger(__name__)
_FINAL = ("filled", "canceled", "expired")
_STATE_COLUMN = 14
_ROWS_PER_TURN = 1000
_IDS_PER_QUERY = 500  # well under SQLite's oldest limit on a statement's parameters (999)
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default


class AuditTrail:
    """Writes applied orders and trades to ``path``."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self._engine = engine
        self._db = connect(path, create=True)
        # Held by whoever uses the connection: a write on a worker thread, or an `adopt` on
        # the event loop (a snapshot install), which waits for a write under way.
        self._db_lock = threading.Lock()
        self._trades_on_disk, self._orders_on_disk = extent(self._db)
        self._orders: dict[int, Order] = {}  # the orders to write, by id
        self._trades: list[tuple[Any, ...]] = []
        self._fills: list[tuple[Any, ...]] = []
        self._skipped_trade_id = 0  # the highest trade queued that was on disk already
        self.on_written: Callable[[int, list[int]], None] = lambda trade_id, closed: None
        """Called on the event loop after each write with the highest trade id written and
        the ids of the orders written in a final (closed) state."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._close_by: float | None = None  # loop time; set once closing
        self._installs = 0  # how many installs replaced the queue (a flush under way stops)

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

    def adopt(self, archive: Archive) -> None:
        """Make the database a copy of ``archive`` (a snapshot's, as it is installed): what
        is queued or being written belongs to the state the install replaces, and is
        dropped first, so that none of it reaches the copy, even if copying fails."""
        extent_of_copy = archive.extent()  # counted in memory, not through the long log
        with self._db_lock:
            self._installs += 1  # under the lock: `_write` checks it there
            self._drop_queue()
            # The copy goes through the write-ahead log. Checkpointing it into the database
            # at once (SQLite does so at a commit that leaves the log long) would hold the
            # event loop for seconds (a million orders: 2.3 s of a join); left to the next
            # write, it runs on the worker thread.
            self._db.execute("pragma wal_autocheckpoint=0")
            try:
                archive.copy_to(self._db)
            finally:
                self._db.execute(f"pragma wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
            self._trades_on_disk, self._orders_on_disk = extent_of_copy

    def on_installed(self, trades: Iterable[TradeExecuted]) -> None:
        """Queue every order the engine holds in its new state and ``trades`` (after a
        snapshot was installed, when the entries that made them never passed through
        `on_applied`). What was queued before is dropped: the old state's objects, and
        trades that may lie past the installed state (a member past a snapshot goes back to
        it): written, they would count as archived trades the engine does not hold."""
        self._installs += 1
        self._drop_queue()
        for order in self._engine.orders():
            self._orders[order.order_id] = order
        for trade in trades:
            self._queue_trade(trade)

    def _drop_queue(self) -> None:
        self._orders, self._trades, self._fills = {}, [], []
        self._skipped_trade_id = 0

    def _queue_trade(self, event: TradeExecuted) -> None:
        if event.trade_id <= self._trades_on_disk:
            self._skipped_trade_id = max(self._skipped_trade_id, event.trade_id)
            return
        engine = self._engine
        market = engine.markets[event.symbol]
        self._trades.append((
            event.trade_id, event.symbol, market.format_price(event.price),
            market.format_amount(event.quantity),
            market.format_cost(event.price * event.quantity),
            event.taker_side.name.lower(), event.taker_order_id,
            event.maker_order_id, event.timestamp, json.dumps(encode_trade(event)),
        ))  # fmt: skip
        for maker, order_id in enumerate((event.taker_order_id, event.maker_order_id)):
            order = engine.order(order_id)
            # Both orders of a trade are on record when it is queued: a trade is queued as it
            # executes, or after an install, whose orders are all on record (reinstated).
            assert order is not None, f"trade {event.trade_id} names order {order_id}"
            self._fills.append((event.trade_id, maker, order_id, order.owner))

    def _queue_order(self, order_id: int) -> None:
        order = self._engine.order(order_id)
        if order is not None:
            self._orders[order_id] = order

    def _row(self, order: Order) -> tuple[Any, ...]:
        view = order_view(order, self._engine.markets[order.symbol])
        return (
            order.order_id, order.owner, order.client_order_id, order.symbol, view["side"],
            view["type"], view["timeInForce"], int(order.post_only), view["price"],
            view["amount"], view["filled"], view["remaining"], view["cost"], view["average"],
            view["info"]["state"], view["status"], order.timestamp, order.last_trade_timestamp,
            json.dumps(encode_order(order)),
        )  # fmt: skip

    def start(self) -> None:
        """Start flushing in the background."""
        self._task = asyncio.create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        # Never cancelled half way through a write: `close` sets `_stopping` and waits for
        # this loop's last flush, so two writes never share the connection at once.
        # Once `_stopping` is set (also before the first turn: a trail closed as soon as it
        # started), it flushes until nothing is queued or `CLOSE_S` are spent: a flush that
        # an install cut short leaves the install's backlog queued.
        while True:
            try:
                async with asyncio.timeout(FLUSH_S):
                    await self._stopping.wait()
            except TimeoutError:
                pass
            written = await self.flush()
            if self._stopping.is_set():
                if not (self._orders or self._trades) or self._late():
                    return
                if not written:  # the database refuses: try again in a moment, not at once
                    await asyncio.sleep(FLUSH_S)

    async def flush(self) -> bool:
        """Write everything queued, on a worker thread, in transactions of at most
        `ORDERS_PER_WRITE` orders (the queued trades go with the first); False when a write
        failed (what it held stays queued). Once the trail is closing and its `CLOSE_S` are
        spent, the orders not yet written stay queued."""
        queued, trades, fills = self._orders, self._trades, self._fills
        self._orders, self._trades, self._fills = {}, [], []
        skipped_trade_id, self._skipped_trade_id = self._skipped_trade_id, 0
        pending = list(queued.values())
        installs = self._installs
        if skipped_trade_id and not (pending or trades):
            self.on_written(skipped_trade_id, [])
        while pending or trades:
            chunk, pending = pending[:ORDERS_PER_WRITE], pending[ORDERS_PER_WRITE:]
            try:
                on_disk = await self._closed_on_disk(chunk)
                orders = await self._rows([o for o in chunk if o.order_id not in on_disk])
                await asyncio.to_thread(self._write, installs, orders, trades, fills)
            except sqlite3.Error as exc:
                # Kept for the next flush (their rows are built again then), so nothing
                # leaves memory that is not on disk, and the peer keeps serving meanwhile.
                _log.error("writing the audit trail failed, retrying: %s", exc)
                self._requeue(installs, chunk + pending, trades, fills)
                self._skipped_trade_id = max(self._skipped_trade_id, skipped_trade_id)
                return False
            if installs != self._installs:
                # What was written, and what is left, is the old state's (and, after an
                # `adopt`, maybe not in the database any more); the install queued the new.
                return True
            closed = [row[0] for row in orders if row[_STATE_COLUMN] in _FINAL]
            written = max((row[0] for row in trades), default=skipped_trade_id)
            self.on_written(written, [*on_disk, *closed])
            trades, fills, skipped_trade_id = [], [], 0
            if pending and self._late():
                self._requeue(installs, pending, [], [])
                return True
        return True

    def _requeue(
        self,
        installs: int,
        orders: list[Order],
        trades: list[tuple[Any, ...]],
        fills: list[tuple[Any, ...]],
    ) -> None:
        """Put what a flush did not write back in front of what was queued meanwhile (unless
        an install replaced the whole queue since)."""
        if installs != self._installs:
            return
        self._orders = {**{order.order_id: order for order in orders}, **self._orders}
        self._trades, self._fills = trades + self._trades, fills + self._fills

    def _late(self) -> bool:
        """Whether the trail is closing and its `CLOSE_S` are spent."""
        return self._close_by is not None and self._loop_time() > self._close_by

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    async def _rows(self, queued: list[Order]) -> list[tuple[Any, ...]]:
        """The rows of ``queued``, built on the loop a chunk at a time: after a snapshot
        install every order is queued at once, and building all their rows in one go held
        the loop (and the Raft ticks) for as long."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(queued), _ROWS_PER_TURN):
            if start:
                await asyncio.sleep(0)
            rows.extend(self._row(order) for order in queued[start : start + _ROWS_PER_TURN])
        return rows

    async def _closed_on_disk(self, orders: list[Order]) -> set[int]:
        """The ids of the closed ``orders`` whose closed row was on disk when the trail
        opened (looked up on a worker thread, and only for ids that were in use then)."""
        ids = [
            order.order_id for order in orders
            if order.order_id <= self._orders_on_disk and order.state >= OrderState.FILLED
        ]  # fmt: skip
        return await asyncio.to_thread(self._closed_among, ids) if ids else set()

    def _closed_among(self, ids: list[int]) -> set[int]:
        found: set[int] = set()
        with self._db_lock:
            for start in range(0, len(ids), _IDS_PER_QUERY):
                batch = ids[start : start + _IDS_PER_QUERY]
                found.update(row[0] for row in self._db.execute(
                    f"select id from orders where id in ({_marks(len(batch))}) "
                    f"and state in ({_marks(len(_FINAL))})",
                    (*batch, *_FINAL),
                ).fetchall())  # fmt: skip
        return found

    def _write(
        self,
        installs: int,
        orders: list[tuple[Any, ...]],
        trades: list[tuple[Any, ...]],
        fills: list[tuple[Any, ...]],
    ) -> None:
        """Write the rows in one transaction, unless an install came since they were built
        (``installs``): old rows must not overwrite the database an install adopted."""
        with self._db_lock, self._db:
            if installs != self._installs:
                return
            self._db.execute("begin")
            self._db.executemany(f"insert or replace into orders values ({_marks(19)})", orders)
            self._db.executemany(f"insert or replace into trades values ({_marks(10)})", trades)
            self._db.executemany(f"insert or replace into fills values ({_marks(4)})", fills)

    async def close(self) -> None:
        """Write what is left, for at most `CLOSE_S`, and close the database."""
        self._close_by = self._loop_time() + CLOSE_S
        self._stopping.set()
        if self._task is not None:
            await self._task
        else:
            await self.flush()
        if self._orders:
            _log.warning(
                "%d orders are not in the audit trail yet: they are written at the next start",
                len(self._orders),
            )
        self._db.close()


def _marks(count: int) -> str:
    return ",".join("?" * count)
