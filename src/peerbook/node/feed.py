"""The market-data feed (contract section 5): trades and book updates over Grenache pub/sub.

After every applied entry the feed publishes, per market the entry touched, one ``trades``
message with the entry's trades and one ``book`` message with the price levels whose amount
changed (amount ``"0"``: the level is gone) and the checksum of the top 25 levels. Messages
carry ``nonce``, the engine's sequence after the entry, and are derived only from the log, so
every peer publishes the same stream for the same sequence.

The checksum is ``zlib.crc32`` (unsigned) of the UTF-8 text
``BIDS|ASKS``, where each side is the top 25 levels, best first, as ``price:amount`` joined
by commas, with the same decimal strings as ``fetchOrderBook`` (docs/api.md). A subscriber
that misses messages (a gap in ``nonce``) or reconnects resynchronises with
``fetchOrderBook``.

Publishing runs in its own task from a bounded queue, so a slow subscriber never slows the
log; if the queue is full, messages are dropped and counted (subscribers see the gap). While
no subscriber is connected, no message is built at all: trade views, changed levels and the
checksum were a quarter of a peer's apply time under load, spent on nobody. A subscriber
that connects starts with the next entry, as one that reconnects does, and resynchronises
with ``fetchOrderBook``.
"""

import asyncio
import json
import logging
from typing import Any

from peerbook.engine import (
    Engine,
    OrderCancelled,
    OrderRested,
    Side,
    TradeExecuted,
)
from peerbook.engine.book import BookSide
from peerbook.grenache import Publisher
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry
from peerbook.wire import trade_view
from peerbook.wire.views import CHECKSUM_DEPTH, book_checksum

__all__ = ["Feed", "engine_checksum"]

_log = logging.getLogger(__name__)
_QUEUE_MAX = 100_000


def engine_checksum(engine: Engine, symbol: str) -> int:
    """The section 5 checksum of a market's book as the engine holds it now."""
    market, book = engine.markets[symbol], engine.book(symbol)

    def levels(side: BookSide) -> list[tuple[str, str]]:
        return [
            (market.format_price(level.price), market.format_amount(level.quantity))
            for level in side.depth(CHECKSUM_DEPTH)
        ]

    return book_checksum(levels(book.bids), levels(book.asks))


class Feed:
    """Publishes the applied event stream of one peer."""

    def __init__(self, engine: Engine, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._engine = engine
        self._publisher = Publisher(host=host, port=port)
        self._queue: asyncio.Queue[str] = asyncio.Queue(_QUEUE_MAX)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    @property
    def port(self) -> int:
        """The publisher's port (after `start`)."""
        return self._publisher.port

    @property
    def subscribers(self) -> int:
        """How many subscribers are connected now."""
        return self._publisher.subscribers

    async def start(self) -> None:
        """Listen for subscribers and start publishing."""
        await self._publisher.start()
        self._task = asyncio.create_task(self._publish_forever())

    async def stop(self) -> None:
        """Stop publishing and close every subscriber."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._publisher.stop()

    async def _publish_forever(self) -> None:
        while True:
            message = await self._queue.get()
            await self._publisher.publish(message)

    def on_applied(self, entry: LogEntry, outcomes: list[Outcome]) -> None:
        """Queue the messages of one applied entry (a state machine listener)."""
        if not self._publisher.subscribers:
            return
        engine = self._engine
        trades: dict[str, list[dict[str, Any]]] = {}
        touched: dict[str, set[tuple[Side, int]]] = {}
        for outcome in outcomes:
            for event in outcome.events:
                if type(event) is TradeExecuted:
                    market = engine.markets[event.symbol]
                    trades.setdefault(event.symbol, []).append(trade_view(event, market))
                    maker_side = event.taker_side.opposite
                    touched.setdefault(event.symbol, set()).add((maker_side, event.price))
                elif type(event) is OrderRested:
                    touched.setdefault(event.symbol, set()).add((event.side, event.price))
                elif type(event) is OrderCancelled:
                    order = engine.order(event.order_id)
                    if order is not None and order.price is not None:
                        touched.setdefault(order.symbol, set()).add((order.side, order.price))
        nonce = engine.sequence
        for symbol, data in trades.items():
            self._queue_message(
                {"channel": "trades", "symbol": symbol, "nonce": nonce, "data": data}
            )
        for symbol, levels in touched.items():
            self._queue_message(self._book_update(symbol, nonce, levels))

    def _book_update(
        self, symbol: str, nonce: int, levels: set[tuple[Side, int]]
    ) -> dict[str, Any]:
        market, book = self._engine.markets[symbol], self._engine.book(symbol)
        update: dict[str, Any] = {"channel": "book", "symbol": symbol, "nonce": nonce}
        for name, side in (("bids", Side.BUY), ("asks", Side.SELL)):
            own = book.own_side(side)
            prices = sorted((p for s, p in levels if s is side), reverse=side is Side.BUY)
            update[name] = [
                [market.format_price(p), market.format_amount(_amount(own, p))] for p in prices
            ]
        update["checksum"] = engine_checksum(self._engine, symbol)
        return update

    def _queue_message(self, message: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(json.dumps(message, separators=(",", ":")))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                _log.warning("feed queue full: %d messages dropped so far", self.dropped)


def _amount(side: BookSide, price: int) -> int:
    level = side.levels.get(price)
    return 0 if level is None else level.quantity
