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

History is a `SnapshotPart`: a snapshot carries the trades not yet archived and a copy of
the archive itself (made in the forked child that writes snapshots), so a peer that installs
it holds and serves the same history as the peer that wrote it. A peer that restarts from
its own data directory leaves the copy unread when its archive lacks nothing (`Archive.
lacking`); otherwise the copy becomes its archive (`AuditTrail.adopt`), page for page.
Before, the snapshot carried every retired order's record as JSON, which a joiner decoded,
checked, put back in its engine and wrote to its audit trail again: most of a join behind a
million orders (a minute and more), and of a restart that came before that backlog was
written (35 s). The fills that the orders in memory had before the snapshot are read from
disk when asked for (reading them all at the start, one query per order, was a sixth of such
a restart). A peer without an archive (tests, tools) takes everything from the copy back
into memory.
"""

import base64
import binascii
import bisect
import heapq
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

from peerbook.engine import Engine, Order, OrderAccepted, OrderState, Side, TradeExecuted
from peerbook.engine.snapshot import decode_order
from peerbook.errors import InvalidCommand, SnapshotError
from peerbook.node.archive import Archive, Fill, decode_trade, encode_trade, image
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry

__all__ = ["Fill", "History", "Restored", "window"]

_T = TypeVar("_T")
_new = tuple.__new__  # a named tuple without its generated __new__'s frame (hot on restore)
_OPEN = (OrderState.OPEN, OrderState.PARTIALLY_FILLED)


class Restored(NamedTuple):
    """What a snapshot's history part gives this peer (`History.parse`)."""

    archive: Archive | None
    """A copy of the writer's archive, to become this peer's (None: this peer's archive
    lacks nothing, or it keeps none)."""
    orders: list[Order]
    """Full records of retired orders, to put back in the engine (a peer without an
    archive, or a snapshot of the older format that carried them)."""
    trades: list[TradeExecuted]
    """The trades after ``archived_trade_id``, to hold in memory."""
    archived_trade_id: int
    """Every trade up to this id is in the archive."""


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
        self._adopt: Callable[[Archive], None] | None = None
        self.archived_trade_id = 0
        # The orders held in memory at the last `load`, up to this id, had their fills up to
        # this trade id on disk only.
        self._loaded_upto: tuple[int, int] = (0, 0)
        self._trades: dict[str, list[TradeExecuted]] = {s: [] for s in engine.markets}
        self._order_fills: dict[int, list[Fill]] = {}
        self._owner_fills: dict[str, list[Fill]] = {}
        self._owner_orders: dict[str, dict[int, None]] = {}

    def attach(self, archive: Archive, adopt: Callable[[Archive], None]) -> None:
        """Serve what leaves memory from ``archive`` (the audit trail's database), where the
        engine also finds the client order ids of the orders it retires from now on;
        ``adopt`` makes that database a copy of another (a snapshot's, at an install:
        `AuditTrail.adopt`)."""
        self._archive, self._adopt = archive, adopt
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
        archived = self.archived_trade_id
        for order_id in closed:
            order = engine.order(order_id)
            latest = self._order_fills.get(order_id)
            if latest and latest[-1].trade.trade_id > archived:
                # Its row was built after a trade that this write did not carry (the row is
                # built from the order as it is then); that trade queued the order again,
                # so the next write reports it. Retired now, a snapshot could hold the
                # order retired and that trade only in memory (a smoke run's did).
                continue
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

    def dump(self) -> dict[str, Any]:
        """The trades not yet archived, as JSON arrays of their fields, and a compressed copy
        of the archive (`peerbook.node.archive.image`, base64), which holds every retired
        order and every trade up to ``archived_trade_id``. Reads the archive in a fresh
        interpreter (this runs in the forked child that writes a snapshot).

        Raises:
            SnapshotError: the archive could not be read.
        """
        archived = self.archived_trade_id
        recent = [encode_trade(t) for t in self.every_trade() if t.trade_id > archived]
        copy = None if self._archive is None else image(self._archive.path)
        return {
            "archive": None if copy is None else base64.b64encode(copy).decode(),
            "archived_trade_id": archived,
            "trades": recent,
        }

    def parse(self, read: Callable[[], Any], engine: Engine) -> Restored:
        """What of the `dump` ``read`` returns this peer needs, checked against the restored
        ``engine``; ``read`` is not called when this peer's archive lacks nothing.

        Raises:
            SnapshotError: not a dump of this engine's retired orders, markets and trades.
        """
        archive = self._archive
        if archive is not None and archive.lacking(engine.trade_count, engine.retired_ids()) == []:
            return Restored(None, [], [], engine.trade_count)
        try:
            copy, archived, order_rows, trade_rows = _section(read())
        except MemoryError as exc:
            raise SnapshotError("the history does not fit in memory") from exc
        try:
            if copy is not None and archive is not None:
                # The copy becomes this peer's archive: it must hold what the engine retired.
                if copy.page_bytes() != archive.page_bytes():
                    raise SnapshotError(
                        f"the archive copy has pages of {copy.page_bytes()} bytes, this peer's "
                        f"database {archive.page_bytes()}: it cannot be adopted"
                    )
                if copy.lacking(archived, engine.retired_ids()) != []:
                    raise SnapshotError("the archive copy lacks retired orders or old trades")
                orders = []
            else:
                if copy is not None:  # no archive here: everything comes back into memory
                    order_rows = list(copy.order_records(engine.retired_ids()))
                    trade_rows = [*copy.trade_records(archived), *trade_rows]
                    archived = 0
                orders = [decode_order(row) for row in order_rows]
                self._check_records(orders, engine)
            trades = _checked_trades(trade_rows, archived, engine, reinstating=bool(orders))
        except BaseException as exc:
            if copy is not None:
                copy.close()
            if isinstance(exc, sqlite3.Error | MemoryError):
                # A damaged page past the first: said to be the snapshot's fault, not the
                # peer's own database's (either stops the peer; `SnapshotStore.load`).
                raise SnapshotError(f"the history's archive copy cannot be read: {exc!r}") from exc
            raise
        if copy is not None and archive is None:  # everything was taken from it
            copy.close()
            copy = None
        return Restored(copy, orders, trades, archived)

    @staticmethod
    def _check_records(orders: list[Order], engine: Engine) -> None:
        """The records are every retired order's, once, in id order, with a client order id
        that maps to no other order (so that `Engine.reinstate` cannot fail half way), and
        their fills add up to the engine's."""
        if len(orders) != engine.retired_count:
            raise SnapshotError(
                f"the history holds {len(orders)} retired orders, the engine {engine.retired_count}"
            )
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
        if filled != {key: lots for key, lots in engine.retired_fills.items() if lots}:
            raise SnapshotError("the retired orders' fills disagree with the engine's")

    def load(self, restored: Restored) -> None:
        """Start over from the (already restored) engine: with the archive copy of
        ``restored`` as this peer's archive, or its retired orders' records back in the
        engine; holding its trades, those after ``archived_trade_id`` (read from the archive
        from then on, as are the fills up to it of the orders the engine holds)."""
        engine = self._engine
        if restored.archive is not None:
            assert self._adopt is not None  # set with the archive that `parse` found
            try:
                self._adopt(restored.archive)
            except sqlite3.Error as exc:
                raise SnapshotError(f"cannot copy the snapshot's archive: {exc}") from exc
            finally:
                restored.archive.close()
        if restored.orders:
            try:
                engine.reinstate(restored.orders)
            except InvalidCommand as exc:  # `parse` checked every record: not expected
                raise SnapshotError(str(exc)) from exc
        self._trades = {s: [] for s in engine.markets}
        self._order_fills, self._owner_fills, self._owner_orders = {}, {}, {}
        self.archived_trade_id = restored.archived_trade_id
        # Only fills up to the snapshot: those of the journal's tail are recorded as applied.
        self._loaded_upto = (engine.sequence, restored.archived_trade_id)
        for order in engine.orders():
            self._owner_orders.setdefault(order.owner, {})[order.order_id] = None
        for trade in restored.trades:
            self._record(trade)


def _section(document: Any) -> tuple[Archive | None, int, list[Any], list[Any]]:
    """The archive copy, archived trade id, retired order records and trades of a history
    part. Snapshots from before 2026-11-27 carry every retired order's record instead of a
    copy of the archive (and every trade); before 2026-11-26, only the trades.

    Raises:
        SnapshotError: not a history part.
    """
    if isinstance(document, list):
        document = {"orders": [], "trades": document}
    if isinstance(document, dict) and set(document) == {"orders", "trades"}:
        document = {**document, "archive": None, "archived_trade_id": 0}
    elif isinstance(document, dict) and set(document) == {"archive", "archived_trade_id", "trades"}:
        document = {**document, "orders": []}
    else:
        raise SnapshotError("the history is not an object of an archive and trades")
    encoded, archived = document["archive"], document["archived_trade_id"]
    orders, trades = document["orders"], document["trades"]
    if not isinstance(orders, list) or not isinstance(trades, list):
        raise SnapshotError("the history's orders and trades are not lists")
    if type(archived) is not int or archived < 0 or (encoded is None and archived):
        raise SnapshotError("the history's archived trade id is not one of its archive")
    if encoded is None:
        return None, 0, orders, trades
    if not isinstance(encoded, str):
        raise SnapshotError("the history's archive is not a string")
    try:  # not `base64.b64decode(validate=True)`: its regular expression took a second
        data = binascii.a2b_base64(encoded, strict_mode=True)
    except ValueError as exc:
        raise SnapshotError("the history's archive is not base64") from exc
    return Archive.of_image(data), archived, orders, trades


def _checked_trades(
    rows: list[Any], archived: int, engine: Engine, reinstating: bool
) -> list[TradeExecuted]:
    """The trades after id ``archived`` up to the engine's last, from ``rows``; each must
    name orders the engine holds (or, ``reinstating``, has retired)."""
    trades: list[TradeExecuted] = []
    last = archived
    for row in rows:
        trade = decode_trade(row)
        if trade.symbol not in engine.markets or trade.trade_id != last + 1:
            raise SnapshotError(f"not the next trade of this engine: {row!r:.80}")
        for order_id in (trade.taker_order_id, trade.maker_order_id):
            if engine.order(order_id) is None and not (
                reinstating and engine.retired(order_id) is not None
            ):
                raise SnapshotError(f"trade {trade.trade_id} names an order not held")
        last = trade.trade_id
        trades.append(trade)
    if last != engine.trade_count:
        raise SnapshotError(f"the history holds {last} trades, the engine {engine.trade_count}")
    return trades
