"""What the API serves besides the books: orders in any state, trades, and whose are whose.

The engine holds books and the orders it still needs; trades are events that pass through
it. `History` listens to the state machine's applied outcomes (every entry, on every peer,
in log order) and answers the API's history reads from two places:

- memory: trades not yet on disk, the fills of every order the engine still holds, and each
  owner's orders the engine still holds;
- the archive (`peerbook.node.archive`, the audit trail's SQLite database): everything the
  audit trail has committed. Once it has, `archived` lets those trades and closed orders leave
  memory (closed orders through `Engine.retire`), so memory is bounded by the open orders and
  the last moments of trading, not by the exchange's age.

Every read merges the two, so a client reads its own writes: nothing leaves memory before
it is on disk. Without an archive (tests, tools) everything simply stays in memory.

History is a `SnapshotPart`: a snapshot carries every trade and the full records of the
retired orders (read from the archive, in the forked child that writes snapshots), so a peer
that installs it holds and serves the same history as the peer that wrote it. A peer takes
from that copy only what its own archive lacks (`Restored`): nothing when it restarts from
its own data directory (the copy is left unread), the orders its audit trail had not written
yet when it restarts soon after an install (their trades went to disk with its first write),
everything when it installs a snapshot sent by another peer. Orders the archive holds stay
retired (loading the whole copy was the bulk of a restart behind a long history, and put
every trade back in memory until the audit trail had rewritten it), and the fills that the
orders in memory had before the snapshot are read from disk when asked for (reading them
all at the start, one query per order, was a sixth of a restart that came right after a
join, where nearly every order is in memory).
"""

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

from peerbook.engine import Engine, Order, OrderAccepted, OrderState, Side, TradeExecuted
from peerbook.engine.snapshot import decode_order
from peerbook.errors import InvalidCommand, SnapshotError
from peerbook.node.archive import Archive, Fill, decode_trade, encode_trade, export
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry

__all__ = ["Fill", "History", "Restored", "window"]

_T = TypeVar("_T")
_new = tuple.__new__  # a named tuple without its generated __new__'s frame (hot on restore)
_OPEN = (OrderState.OPEN, OrderState.PARTIALLY_FILLED)


class Restored(NamedTuple):
    """What a snapshot's history part adds to this peer's own archive (`History.parse`)."""

    orders: list[Order]
    """Full records of retired orders the archive lacks, to put back in the engine."""
    trades: list[TradeExecuted] | None
    """Every trade, to hold in memory; None when the archive holds every one of them."""


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


def _order_time(order: Order) -> int:
    return order.timestamp


def _trade_time(trade: TradeExecuted) -> int:
    return trade.timestamp


def _fill_time(fill: Fill) -> int:
    return fill.trade.timestamp


def _fill_key(fill: Fill) -> int:
    return fill.trade.trade_id


def _first(row: object) -> object:
    """The first field of a record (an order's id), or None when it is not a list."""
    return row[0] if type(row) is list and row and type(row[0]) is int else None


class History:
    """Trades by market, fills by order and by owner, and each owner's orders.

    Attributes:
        legacy_names: the part's name in older snapshots (it held only the trades then).
        archived_trade_id: every trade up to this id is in the archive (0: none known).
    """

    legacy_names: tuple[str, ...] = ("trades",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._archive: Archive | None = None
        self.archived_trade_id = 0
        # The orders held in memory at the last `load`, up to this id, had their fills up to
        # this trade id on disk only.
        self._loaded_upto: tuple[int, int] = (0, 0)
        self._trades: dict[str, list[TradeExecuted]] = {s: [] for s in engine.markets}
        self._order_fills: dict[int, list[Fill]] = {}
        self._owner_fills: dict[str, list[Fill]] = {}
        self._owner_orders: dict[str, dict[int, None]] = {}

    def attach(self, archive: Archive) -> None:
        """Serve what leaves memory from ``archive`` (the audit trail's database), where the
        engine also finds the client order ids of the orders it retires from now on."""
        self._archive = archive
        self._engine.keep_client_ids_in(archive)

    # -- following the log ----------------------------------------------------------------

    def on_applied(self, entry: LogEntry, outcomes: list[Outcome]) -> None:
        """Record the trades and new orders of one applied entry."""
        for outcome in outcomes:
            for event in outcome.events:
                if type(event) is TradeExecuted:
                    self._record(event)
                elif type(event) is OrderAccepted:
                    self._owner_orders.setdefault(event.owner, {})[event.order_id] = None

    def _record(self, trade: TradeExecuted) -> None:
        self._trades[trade.symbol].append(trade)
        orders, order_fills, owner_fills = self._engine.order, self._order_fills, self._owner_fills
        for order_id in (trade.taker_order_id, trade.maker_order_id):
            order = orders(order_id)
            assert order is not None  # both orders of a trade are on record as it executes
            fill = _new(Fill, (trade, order.side))
            fills = order_fills.get(order_id)
            if fills is None:
                order_fills[order_id] = [fill]
            else:
                fills.append(fill)
            owner_fills.setdefault(order.owner, []).append(fill)

    def archived(self, trade_id: int, closed: Iterable[int]) -> None:
        """The archive now holds every trade up to ``trade_id`` and the final records of the
        ``closed`` orders: let them leave memory (the engine retires the orders)."""
        if self._archive is None:
            return
        if trade_id > self.archived_trade_id:
            self.archived_trade_id = trade_id
            for trades in self._trades.values():
                del trades[: bisect.bisect_right(trades, trade_id, key=lambda t: t.trade_id)]
            for fills in self._owner_fills.values():
                del fills[: bisect.bisect_right(fills, trade_id, key=_fill_key)]
        engine = self._engine
        for order_id in closed:
            order = engine.order(order_id)
            if order is not None and engine.retire(order_id):
                self._order_fills.pop(order_id, None)
                owned = self._owner_orders.get(order.owner)
                if owned is not None:
                    owned.pop(order_id, None)

    # -- reads --------------------------------------------------------------------------

    def order(self, order_id: int) -> Order | None:
        """The order with this id, in whatever state, or None."""
        order = self._engine.order(order_id)
        if order is None and self._archive is not None and self._engine.retired(order_id):
            order = self._archive.order(order_id)
        return order

    def order_by_client_id(self, owner: str, client_order_id: str) -> Order | None:
        """The owner's order with this client order id, in whatever state, or None."""
        order_id = self._engine.order_id_by_client_id(owner, client_order_id)
        return None if order_id is None else self.order(order_id)

    def fills_of_order(self, order_id: int) -> list[Fill]:
        """The order's fills, in execution order."""
        order = self._engine.order(order_id)
        fills = self._order_fills.get(order_id, [])
        archive = self._archive
        if archive is None:
            return fills
        if order is None:
            return archive.fills_of_order(order_id)
        last_order, last_trade = self._loaded_upto
        if order.filled and order_id <= last_order:
            return [*archive.fills_of_order(order_id, last_trade), *fills]
        return fills

    def orders_of_owner(
        self, owner: str, open_orders: bool, symbol: str | None, since: int | None, limit: int
    ) -> list[Order]:
        """The owner's open (or closed) orders, optionally of one market, in the window."""
        order = self._engine.order
        kept = [o for i in self._owner_orders.get(owner, ()) if (o := order(i)) is not None]
        chosen = [
            o for o in kept if (o.state in _OPEN) == open_orders and symbol in (None, o.symbol)
        ]
        if not open_orders and self._archive is not None:
            # The archive may hold rows from before a restart that the engine has not applied
            # again yet (ids above its sequence), and rows of orders still in memory, which
            # must not crowd archived ones out of the window.
            ids = {o.order_id for o in kept}
            archived = self._archive.closed_orders(
                owner, symbol, since, limit + len(ids), self._engine.sequence
            )
            chosen = sorted(
                [*(o for o in archived if o.order_id not in ids), *chosen],
                key=lambda o: o.order_id,
            )
        return window(chosen, _order_time, since, limit)

    def trades(self, symbol: str, since: int | None, limit: int) -> list[TradeExecuted]:
        """The market's trades in the window."""
        archived = self.archived_trade_id
        recent = [t for t in self._trades[symbol] if t.trade_id > archived]
        if self._archive is not None and archived:
            recent = [*self._archive.trades(symbol, since, limit, archived), *recent]
        return window(recent, _trade_time, since, limit)

    def fills_of_owner(
        self, owner: str, symbol: str | None, since: int | None, limit: int
    ) -> list[Fill]:
        """The fills of the owner's orders, optionally in one market, in the window."""
        archived = self.archived_trade_id
        recent = [
            f for f in self._owner_fills.get(owner, ())
            if f.trade.trade_id > archived and symbol in (None, f.trade.symbol)
        ]  # fmt: skip
        if self._archive is not None and archived:
            older = self._archive.fills_of_owner(owner, symbol, since, limit, archived)
            recent = [*older, *recent]
        return window(recent, _fill_time, since, limit)

    def every_trade(self) -> Iterator[TradeExecuted]:
        """Every trade in memory, in execution (id) order (after an install: every trade)."""
        return heapq.merge(*self._trades.values(), key=lambda t: t.trade_id)

    # -- the snapshot part ----------------------------------------------------------------

    def dump(self) -> dict[str, list[list[Any]]]:
        """Every trade, and the full records of the engine's retired orders, as JSON arrays
        of their fields. Reads the archive with `peerbook.node.archive.export` (this runs in
        the forked child that writes a snapshot).

        Raises:
            SnapshotError: the archive lacks a record the engine relies on.
        """
        archived = self.archived_trade_id
        recent = [encode_trade(t) for t in self.every_trade() if t.trade_id > archived]
        if self._archive is None:
            return {"orders": [], "trades": recent}
        retired = self._engine.retired_ids()
        orders, trades = export(self._archive.path, retired, archived)
        return {"orders": orders, "trades": [*trades, *recent]}

    def parse(self, read: Callable[[], Any], engine: Engine) -> Restored:
        """What of the `dump` ``read`` returns this peer's archive lacks, checked against the
        restored ``engine``; ``read`` is not called when the archive lacks nothing.

        Raises:
            SnapshotError: not a dump of this engine's retired orders, markets and trades.
        """
        lacking = None
        if self._archive is not None:
            lacking = self._archive.lacking(engine.trade_count, engine.retired_ids())
            if lacking == []:
                return Restored([], None)
        document = read()
        if isinstance(document, list):  # the "trades" part of snapshot format before 2026-11-26
            document = {"orders": [], "trades": document}
        if not isinstance(document, dict) or set(document) != {"orders", "trades"}:
            raise SnapshotError("the history is not an object of orders and trades")
        rows, trade_rows = document["orders"], document["trades"]
        if not isinstance(rows, list) or not isinstance(trade_rows, list):
            raise SnapshotError("the history's orders and trades are not lists")
        if lacking is not None:
            # A snapshot this peer installed (and checked whole) or wrote before, whose trades
            # its archive holds: only the orders its audit trail had not written come back.
            wanted = set(lacking)
            orders = [decode_order(row) for row in rows if _first(row) in wanted]
            if [order.order_id for order in orders] != lacking:
                raise SnapshotError("the history lacks retired orders the audit trail lacks")
            self._check_records(orders, engine)
            return Restored(orders, None)
        orders = [decode_order(row) for row in rows]
        if len(orders) != engine.retired_count:
            raise SnapshotError(
                f"the history holds {len(orders)} retired orders, the engine {engine.retired_count}"
            )
        filled = self._check_records(orders, engine)
        if filled != {key: lots for key, lots in engine.retired_fills.items() if lots}:
            raise SnapshotError("the retired orders' fills disagree with the engine's")
        trades: list[TradeExecuted] = []
        last = 0
        for row in trade_rows:
            trade = decode_trade(row)
            if trade.symbol not in engine.markets or trade.trade_id != last + 1:
                raise SnapshotError(f"not the next trade of this engine: {row!r:.80}")
            for order_id in (trade.taker_order_id, trade.maker_order_id):
                if engine.order(order_id) is None and engine.retired(order_id) is None:
                    raise SnapshotError(f"trade {trade.trade_id} names an unknown order")
            last = trade.trade_id
            trades.append(trade)
        if last != engine.trade_count:
            raise SnapshotError(f"the history holds {last} trades, the engine {engine.trade_count}")
        return Restored(orders, trades)

    @staticmethod
    def _check_records(orders: list[Order], engine: Engine) -> dict[tuple[str, Side], int]:
        """Each record is a retired order's, once, in id order, with a client order id that
        maps to no other order (so that `Engine.reinstate` cannot fail half way); the lots
        they filled, by market and side."""
        filled: dict[tuple[str, Side], int] = {}
        client_ids: set[tuple[str, str]] = set()
        last = 0
        for order in orders:
            if order.order_id <= last or engine.retired(order.order_id) != (
                order.order_id, order.owner, order.symbol, order.state
            ):  # fmt: skip
                raise SnapshotError(f"order {order.order_id} is not retired as the history says")
            if order.client_order_id is not None:
                # Absent from the engine when the writer's engine kept it on disk only.
                client_id = (order.owner, order.client_order_id)
                if client_id in client_ids or engine.order_id_by_client_id(*client_id) not in (
                    None, order.order_id,
                ):  # fmt: skip
                    raise SnapshotError(f"order {order.order_id}'s client order id maps elsewhere")
                client_ids.add(client_id)
            last = order.order_id
            if order.filled:
                key = (order.symbol, order.side)
                filled[key] = filled.get(key, 0) + order.filled
        return filled

    def load(self, restored: Restored) -> None:
        """Start over from the (already restored) engine, with the retired orders' records
        of ``restored`` back in it until the audit trail holds them here, and its trades; or,
        when the archive holds every trade, with the fills so far of the orders the engine
        holds left there (`fills_of_order` reads them)."""
        engine = self._engine
        if restored.orders:
            try:
                engine.reinstate(restored.orders)
            except InvalidCommand as exc:  # `parse` checked every record: not expected
                raise SnapshotError(str(exc)) from exc
        self._trades = {s: [] for s in engine.markets}
        self._order_fills, self._owner_fills, self._owner_orders = {}, {}, {}
        on_disk = self._archive is not None and restored.trades is None
        self.archived_trade_id = engine.trade_count if on_disk else 0
        # Only fills up to the snapshot: those of the journal's tail are recorded as applied.
        self._loaded_upto = (engine.sequence, engine.trade_count) if on_disk else (0, 0)
        for order in engine.orders():
            self._owner_orders.setdefault(order.owner, {})[order.order_id] = None
        for trade in restored.trades or ():
            self._record(trade)
