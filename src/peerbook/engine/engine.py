"""Engine: the deterministic matching state machine every replica runs.

`Engine.apply` is the one mutating verb: a command goes in, its events come out, and the
sequence and digest advance by one. The engine is total: a command it cannot carry out is
answered with `OrderRejected` (class and sentence of the contract's section 4) and changes
nothing else. It reads no clock, draws no random number and does no I/O, so the same commands
give the same events, state and digest on every machine.
"""

import heapq
import operator
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from peerbook.engine import digest as records
from peerbook.engine.book import HEAP_SLACK, BookSide, OrderBook
from peerbook.engine.commands import CancelOrder, Command, PlaceOrder
from peerbook.engine.digest import BLOCK, DigestChain, genesis
from peerbook.engine.events import (
    DuplicateOrderIgnored,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    OrderRested,
    TradeExecuted,
)
from peerbook.engine.level import COMPACT_SLACK, PriceLevel
from peerbook.engine.markets import DEFAULT_MARKETS, Market
from peerbook.engine.matching import match
from peerbook.engine.order import Order
from peerbook.engine.retired import Retired, RetiredClientIds, RetiredOrders
from peerbook.engine.types import ErrorClass, OrderState, OrderType, Side, TimeInForce
from peerbook.errors import EngineInvariantError, InvalidCommand

__all__ = [
    "CLIENT_ORDER_ID_MAX",
    "COMPILED",
    "QUANTITY_MAX",
    "TIMESTAMP_MAX",
    "Engine",
    "PurePythonEngine",
]

CLIENT_ORDER_ID_MAX = 64  # characters; longer client order ids are refused
QUANTITY_MAX = 10**15
"""The largest amount (lots) and price (ticks) accepted: bounds every cost the engine sums, so
no number it formats can approach CPython's 4300-digit int-to-str limit."""
TIMESTAMP_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last ISO-8601 millisecond

_Rejection = tuple[ErrorClass, str]


RetiredState = tuple[
    RetiredOrders | None, Iterable[tuple[str, str, int]], Iterable[tuple[str, Side, int]]
]
_GTC = TimeInForce.GTC
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_EXPIRED = OrderState.EXPIRED
_FILLED = OrderState.FILLED  # this state and those after it are closed: the order never rests
_ORDER_ID = operator.attrgetter("order_id")

# Events are built with tuple.__new__ on the hot path: the same named tuple as calling the
# class, without the generated __new__'s Python frame (0.5 µs less per event, measured).
_new = tuple.__new__


def _is_int(value: object) -> bool:
    return type(value) is int


class Engine:
    """The order books of every market, every order ever accepted (in full, or only its owner,
    market and final state once retired), the sequence and digest.

    Attributes:
        sequence: how many commands have been applied (accepted or rejected); the id of an
            order is the sequence of the command that placed it.
        trade_count: how many trades have executed; trade ids count up from 1.

    The hot path (a valid order placed and matched, a resting order cancelled) runs in C
    when the compiled module `peerbook.engine._native` is built (`COMPILED`), over these
    same objects; everything else, and every refusal, runs here. Both give the same events,
    state and digest (tests/engine/test_native.py); `PurePythonEngine` never uses C.
    """

    __slots__ = (
        "_books",
        "_by_client_id",
        "_digest",
        "_markets",
        "_orders",
        "_owners",
        "_retired",
        "_retired_client_ids",
        "sequence",
        "trade_count",
    )

    def __init__(self, markets: Iterable[Market] = DEFAULT_MARKETS) -> None:
        self._markets: dict[str, Market] = {}
        for market in markets:
            if market.symbol in self._markets:
                raise InvalidCommand(f"market {market.symbol} is defined twice")
            self._markets[market.symbol] = market
        self._books = {symbol: OrderBook(symbol) for symbol in self._markets}
        self._orders: dict[int, Order] = {}
        self._retired = RetiredOrders(tuple(self._markets))
        self._by_client_id: dict[tuple[str, str], int] = {}
        self._retired_client_ids: RetiredClientIds | None = None
        self._owners: dict[str, str] = {}
        self.sequence = 0
        self.trade_count = 0
        self._digest = DigestChain(genesis(self._markets.values()))

    # -- the mutating verb -------------------------------------------------------------------

    def apply(self, command: Command) -> tuple[Event, ...]:
        """Apply one command and return what happened, in order.

        Never raises on bad input: an invalid command yields a single `OrderRejected`. Should
        the store of retired client order ids raise (`keep_client_ids_in`), the exception
        leaves the engine as it was, the sequence included, on both paths.
        """
        sequence = self.sequence + 1
        if type(command) is PlaceOrder:
            events = self._place(command, sequence)
        elif type(command) is CancelOrder:
            events = self._cancel(command, sequence)
        else:
            events = self._reject(
                sequence, command, ErrorClass.BAD_REQUEST,
                f"unknown command {type(command).__name__}",
            )  # fmt: skip
        self.sequence = sequence
        return events

    # -- queries (never mutate) ---------------------------------------------------------------

    @property
    def markets(self) -> dict[str, Market]:
        """The markets by symbol (do not modify)."""
        return self._markets

    def digest(self) -> str:
        """The digest of every command applied so far, as 64 hex digits."""
        return self._digest.hexdigest()

    def order(self, order_id: int) -> Order | None:
        """The order with this id, in whatever state, or None (also once it was retired)."""
        return self._orders.get(order_id)

    def order_id_by_client_id(self, owner: str, client_order_id: str) -> int | None:
        """The id of the owner's order with this client order id (retired or not), or None."""
        found = self._by_client_id.get((owner, client_order_id))
        if found is None and self._retired_client_ids is not None:
            found = self._retired_client_ids.order_id(owner, client_order_id)
            # Only an order this engine retired, of this owner: the store may also hold
            # orders past this engine's state (a peer taken back to a snapshot).
            if found is not None and (
                (retired := self._retired.get(found)) is None or retired.owner != owner
            ):
                found = None
        return found

    def order_by_client_id(self, owner: str, client_order_id: str) -> Order | None:
        """The owner's order with this client order id, in whatever state, or None (also once
        it was retired)."""
        order_id = self.order_id_by_client_id(owner, client_order_id)
        return None if order_id is None else self._orders.get(order_id)

    def orders(self) -> Iterator[Order]:
        """Every order accepted and not retired, in acceptance (id) order."""
        return iter(self._orders.values())

    def retired(self, order_id: int) -> Retired | None:
        """The owner, market and final state of a retired order, or None."""
        return self._retired.get(order_id)

    def retired_orders(self) -> Iterator[Retired]:
        """Every retired order, in id order."""
        return iter(self._retired)

    def retired_packed(self) -> dict[str, object]:
        """The retired orders as a snapshot carries them (`RetiredOrders.encode`)."""
        return self._retired.encode()

    def retired_ids(self) -> Iterator[int]:
        """The id of every retired order, in id order."""
        return self._retired.ids()

    @property
    def order_count(self) -> int:
        """How many orders are held in full (every order not retired)."""
        return len(self._orders)

    @property
    def retired_count(self) -> int:
        """How many orders are retired."""
        return self._retired.count

    def cancellable(self, command: CancelOrder) -> Order | tuple[ErrorClass, str]:
        """The order ``command`` would cancel, or the error class and sentence it would be
        rejected with, without applying it. An order that cannot be cancelled now never can
        be later (it does not exist, is someone else's, or has left the book for good), so a
        peer may refuse such a cancel without spending a log entry on it."""
        return self._find_cancellable(command)

    def book(self, symbol: str) -> OrderBook:
        """The book of one market (do not modify). Raises KeyError for an unknown symbol."""
        return self._books[symbol]

    # -- placing ------------------------------------------------------------------------------

    def _place(self, command: PlaceOrder, sequence: int) -> tuple[Event, ...]:
        owner, client_order_id = command.owner, command.client_order_id
        if client_order_id is not None and type(owner) is str and type(client_order_id) is str:
            original = self.order_id_by_client_id(owner, client_order_id)
            if original is not None:
                self._digest.add(records.record_duplicate(sequence, original))
                return (DuplicateOrderIgnored(sequence, original, owner, client_order_id),)
        market = self._markets.get(command.symbol)
        rejection = _check_place(command, market)
        if rejection is not None:
            return self._reject(sequence, command, *rejection)
        assert market is not None  # _check_place refuses unknown markets
        book = self._books[command.symbol]
        makers = book.opposite_side(command.side)
        price = command.price
        limit_key = None if price is None else makers.sign * price
        rejection = _check_liquidity(command, market, makers, limit_key)
        if rejection is not None:
            return self._reject(sequence, command, *rejection)
        return self._execute(command, sequence, book, makers, limit_key)

    def _execute(
        self,
        command: PlaceOrder,
        sequence: int,
        book: OrderBook,
        makers: BookSide,
        limit_key: int | None,
    ) -> tuple[Event, ...]:
        (owner, timestamp, symbol, side, type_, amount, price, time_in_force, post_only,
         client_order_id) = command  # fmt: skip
        owner = self._owners.setdefault(owner, owner)
        order = Order(
            sequence, owner, client_order_id, symbol, side, type_, time_in_force, post_only,
            price, amount, timestamp,
        )  # fmt: skip
        self._orders[sequence] = order
        if client_order_id is not None:
            self._by_client_id[owner, client_order_id] = sequence
        accepted: Event = _new(
            OrderAccepted,
            (sequence, sequence, owner, client_order_id, symbol, side, type_, time_in_force,
             post_only, price, amount, timestamp),
        )  # fmt: skip
        trades = (
            match(order, makers, limit_key, sequence, self.trade_count + 1) if makers.levels else []
        )
        self.trade_count += len(trades)
        remaining = order.remaining
        if not remaining:
            events: tuple[Event, ...] = (accepted, *trades)
        elif price is not None and time_in_force is _GTC:
            (book.bids if makers is book.asks else book.asks).rest(order, price)
            rested: Event = _new(OrderRested, (sequence, sequence, symbol, side, price, remaining))
            events = (accepted, *trades, rested)
        else:
            order.state = _EXPIRED
            expired: Event = _new(OrderExpired, (sequence, sequence, remaining))
            events = (accepted, *trades, expired)
        self._digest.add(records.record_accepted(sequence, command, order, trades))
        return events

    # -- cancelling ---------------------------------------------------------------------------

    def _cancel(self, command: CancelOrder, sequence: int) -> tuple[Event, ...]:
        found = self._find_cancellable(command)
        if not isinstance(found, Order):
            return self._reject(sequence, command, *found)
        order = found
        assert order.price is not None  # only limit orders rest
        order.state = OrderState.CANCELED
        self._books[order.symbol].own_side(order.side).withdraw(order, order.price)
        self._digest.add(records.record_cancelled(sequence, order))
        return (OrderCancelled(sequence, order.order_id, order.remaining),)

    def _find_cancellable(self, command: CancelOrder) -> Order | _Rejection:
        # A retired order answers exactly as its full record would: same class, same sentence.
        owner, order_id, client_order_id = command.owner, command.order_id, command.client_order_id
        if type(owner) is not str:
            return ErrorClass.BAD_REQUEST, f"owner {owner!r} is not a string"
        symbol = command.symbol
        if symbol is not None and symbol not in self._markets:
            return ErrorClass.BAD_SYMBOL, f"unknown market {symbol}"
        if order_id is not None:
            if not _is_int(order_id):
                return ErrorClass.BAD_REQUEST, f"order id {order_id!r} is not an integer"
            order = self._orders.get(order_id) or self._retired.get(order_id)
            if order is None:
                return ErrorClass.ORDER_NOT_FOUND, f"order {order_id} does not exist"
            if order.owner != owner:
                return ErrorClass.ORDER_NOT_FOUND, f"no open order {order_id} owned by peer {owner}"
        elif type(client_order_id) is str:
            found = self.order_id_by_client_id(owner, client_order_id)
            if found is None:
                return (
                    ErrorClass.ORDER_NOT_FOUND,
                    f"no order with client order id {client_order_id} owned by peer {owner}",
                )
            order = self._orders.get(found) or self._retired.get(found)
            assert order is not None, f"client order id {client_order_id} maps to no order"
        else:
            return ErrorClass.BAD_REQUEST, "cancel names neither an order id nor a client order id"
        if symbol is not None and symbol != order.symbol:
            return ErrorClass.ORDER_NOT_FOUND, f"order {order.order_id} is not in market {symbol}"
        if not order.is_resting:
            state = order.state.name.lower()
            return ErrorClass.ORDER_NOT_FOUND, f"order {order.order_id} is {state}, not open"
        assert isinstance(order, Order)  # a retired order never rests
        return order

    # -- retiring ----------------------------------------------------------------------------

    def retire(self, order_id: int) -> bool:
        """Let a closed order's full record leave memory, keeping its owner, market and final
        state (`peerbook.engine.retired`); whether it was retired. An order that is open,
        unknown or already retired is left as it is.

        Invisible to every outcome: the engine answers every later command the same, with
        the same events and digest, so each replica may retire on its own schedule (a peer
        does once its audit trail holds the final record)."""
        order = self._orders.get(order_id)
        if order is None or order.is_resting:
            return False
        if not self._retired.add(
            order_id, order.owner, order.symbol, order.side, order.state, order.filled
        ):
            return False
        del self._orders[order_id]
        if order.client_order_id is not None and self._retired_client_ids is not None:
            del self._by_client_id[order.owner, order.client_order_id]
        return True

    def keep_client_ids_in(self, store: RetiredClientIds) -> None:
        """From now on, let a retired order's client order id leave memory too: ``store``
        must hold every order's (owner, client order id, id) before the order is retired
        (a peer retires an order once its audit trail's database holds it). Invisible to
        every outcome, as retiring is; the engine still does no I/O itself.

        The engine's snapshot then lacks the client order ids that left memory: whoever
        restores it must `reinstate` the retired orders' full records (the peer's
        snapshot carries them, `peerbook.node.history`)."""
        self._retired_client_ids = store

    def reinstate(self, orders: Iterable[Order]) -> None:
        """Put retired orders' full records back (after a snapshot install, where they came
        from another peer's audit trail). Each must be the retired order's record; nothing
        changes unless all are.

        Raises:
            InvalidCommand: an order is not retired, or its owner, market or state differ.
        """
        records = sorted(orders, key=lambda o: o.order_id)
        ids = [order.order_id for order in records]
        if len(set(ids)) != len(ids):
            raise InvalidCommand("an order is reinstated twice")
        for order in records:
            retired = self._retired.get(order.order_id)
            if retired is None or retired != (order.order_id, order.owner, order.symbol,
                                              order.state):  # fmt: skip
                raise InvalidCommand(f"order {order.order_id} is not retired as {order!r}")
            if (
                order.client_order_id is not None
                and self._by_client_id.get((order.owner, order.client_order_id), order.order_id)
                != order.order_id
            ):
                raise InvalidCommand(f"order {order.order_id}'s client order id is another's")
        for order in records:
            order.owner = self._owners.setdefault(order.owner, order.owner)
            self._retired.remove(order.order_id, order.side, order.filled)
            if order.client_order_id is not None:
                self._by_client_id[order.owner, order.client_order_id] = order.order_id
        merged = heapq.merge(self._orders.values(), records, key=lambda o: o.order_id)
        self._orders = {order.order_id: order for order in merged}

    # -- rejecting ----------------------------------------------------------------------------

    def _reject(
        self, sequence: int, command: Command, error: ErrorClass, message: str
    ) -> tuple[Event, ...]:
        self._digest.add(records.record_rejected(sequence, command, error.value, message))
        owner = getattr(command, "owner", None)
        if type(owner) is not str:
            owner = repr(owner)
        client_order_id = getattr(command, "client_order_id", None)
        if type(client_order_id) is not str:
            client_order_id = None
        return (OrderRejected(sequence, owner, client_order_id, error, message),)

    # -- snapshot support ---------------------------------------------------------------------

    def digest_state(self) -> tuple[bytes, tuple[str, ...]]:
        """The digest chain and open block, for `peerbook.engine.snapshot`."""
        return self._digest.state()

    def retired_client_order_ids(
        self, kept: Iterable[tuple[str, str, int]] = ()
    ) -> Iterator[tuple[str, str, int]]:
        """(owner, client order id, order id) of every retired order placed with a client
        order id whose id is still in memory (`keep_client_ids_in`), for
        `peerbook.engine.snapshot`; then those of ``kept`` (what the store holds, read by
        the caller: the engine does no I/O) that left memory, checked as a lookup is."""
        retired = self._retired
        by_client_id = self._by_client_id
        for (owner, client_order_id), order_id in by_client_id.items():
            if order_id not in self._orders and retired.get(order_id) is not None:
                yield owner, client_order_id, order_id
        for owner, client_order_id, order_id in kept:
            facts = retired.get(order_id)
            if (
                facts is not None
                and facts.owner == owner
                and (owner, client_order_id) not in by_client_id
            ):
                yield owner, client_order_id, order_id

    @property
    def retired_fills(self) -> dict[tuple[str, Side], int]:
        """Lots filled by retired orders, by market and side (do not modify)."""
        return self._retired.filled

    @classmethod
    def restored(
        cls,
        markets: Iterable[Market],
        sequence: int,
        trade_count: int,
        orders: Iterable[Order],
        digest_state: tuple[bytes, Iterable[str]],
        retired: RetiredState = (None, (), ()),
    ) -> "Engine":
        """An engine holding this state; resting orders rejoin their levels in id order,
        which is their time priority. Used by `peerbook.engine.snapshot.restore`.

        Args:
            retired: the retired orders (over these markets, in this order; None: none),
                their client order ids as (owner, client order id, order id), and the lots
                they filled as (symbol, side, lots).
        """
        engine = cls(markets)
        engine.sequence, engine.trade_count = sequence, trade_count
        engine._digest = DigestChain(digest_state[0], digest_state[1])
        # One pass with every lookup hoisted: a restart behind 1,000,000 orders runs it for
        # each of them (a fifth of restoring the engine when it read through properties).
        owners, table, by_client_id = engine._owners, engine._orders, engine._by_client_id
        books = engine._books
        for order in sorted(orders, key=_ORDER_ID):
            order_id, client_order_id = order.order_id, order.client_order_id
            owner = order.owner = owners.setdefault(order.owner, order.owner)
            table[order_id] = order
            if client_order_id is not None:
                by_client_id[owner, client_order_id] = order_id
            if order.state < _FILLED:
                if order.price is None:
                    raise InvalidCommand(f"market order {order_id} cannot rest")
                books[order.symbol].own_side(order.side).rest(order, order.price)
        engine._restore_retired(*retired)
        return engine

    def _restore_retired(
        self,
        orders: RetiredOrders | None,
        client_order_ids: Iterable[tuple[str, str, int]],
        fills: Iterable[tuple[str, Side, int]],
    ) -> None:
        if orders is not None:
            if orders.symbols != self._retired.symbols or orders.highest_id > self.sequence:
                raise InvalidCommand("the retired orders are not of this engine's markets and ids")
            for order_id in self._orders:
                if orders.get(order_id) is not None:
                    raise InvalidCommand(f"order {order_id} is both retired and on record")
            orders.intern_owners(self._owners)
            self._retired = orders
        retired = self._retired
        for owner, client_order_id, order_id in client_order_ids:
            record = retired.get(order_id)
            if record is None or record.owner != owner:
                raise InvalidCommand(f"client order id {client_order_id!r} names order {order_id}")
            if self._by_client_id.setdefault((record.owner, client_order_id), order_id) != order_id:
                raise InvalidCommand(f"client order id {client_order_id!r} is used twice")
        for symbol, side, lots in fills:
            if symbol not in self._markets or (symbol, side) in retired.filled or lots <= 0:
                raise InvalidCommand(f"retired fills {symbol} {side.name} {lots} are not valid")
            retired.filled[symbol, side] = lots

    def assume(self, other: "Engine") -> None:
        """Take over ``other``'s whole state (markets, books, orders, counters, digest), so
        that everything holding this engine (the API, the feed, the audit trail) sees a
        snapshot restored into ``other`` without being rewired. ``other`` must not be used
        afterwards: the two engines then share their books."""
        self._markets, self._books = other._markets, other._books
        self._orders, self._by_client_id = other._orders, other._by_client_id
        self._retired = other._retired
        self._owners, self._digest = other._owners, other._digest
        self.sequence, self.trade_count = other.sequence, other.trade_count

    # -- invariants ---------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Check every invariant of the state; O(orders). Raises EngineInvariantError."""
        from peerbook.engine.invariants import check

        failure = check(self._markets, self._books, self._orders, self._by_client_id, self._retired)
        if failure is not None:
            raise EngineInvariantError(f"after sequence {self.sequence}: {failure}")


def _check_place(command: PlaceOrder, market: Market | None) -> _Rejection | None:
    """The checks that need no book: types, market, amount, price, order options.

    The one expression below is the conjunction of every check, so a valid command (the
    common case) costs one pass; `_explain_place` then finds which check failed, and why.
    """
    (owner, timestamp, _, side, type_, amount, price, time_in_force, post_only,
     client_order_id) = command  # fmt: skip
    if (
        market is not None
        and type(owner) is str
        and owner
        and type(timestamp) is int
        and 0 <= timestamp <= TIMESTAMP_MAX
        and (
            client_order_id is None
            or (type(client_order_id) is str and 0 < len(client_order_id) <= CLIENT_ORDER_ID_MAX)
        )
        and type(side) is Side
        and type(type_) is OrderType
        and type(time_in_force) is TimeInForce
        and type(post_only) is bool
        and type(amount) is int
        and 0 < amount <= QUANTITY_MAX
        and (
            (
                type_ is _LIMIT
                and type(price) is int
                and 0 < price <= QUANTITY_MAX
                and (not post_only or time_in_force is _GTC)
            )
            or (type_ is _MARKET and price is None and not post_only)
        )
    ):
        return None
    rejection = _explain_place(command, market)
    assert rejection is not None, f"no check explains why {command!r} failed"
    return rejection


def _explain_place(command: PlaceOrder, market: Market | None) -> _Rejection | None:
    """The first check of `_check_place` that ``command`` fails, with its sentence."""
    owner = command.owner
    if type(owner) is not str or not owner:
        return ErrorClass.BAD_REQUEST, f"owner {owner!r} is not a non-empty string"
    if not _is_int(command.timestamp) or not 0 <= command.timestamp <= TIMESTAMP_MAX:
        return (
            ErrorClass.BAD_REQUEST,
            f"timestamp {command.timestamp!r:.40} is not an integer from 0 to {TIMESTAMP_MAX}",
        )
    client_order_id = command.client_order_id
    if client_order_id is not None and (
        type(client_order_id) is not str or not 0 < len(client_order_id) <= CLIENT_ORDER_ID_MAX
    ):
        return (
            ErrorClass.BAD_REQUEST,
            f"client order id {client_order_id!r} is not a string of 1 to "
            f"{CLIENT_ORDER_ID_MAX} characters",
        )
    if market is None:
        return ErrorClass.BAD_SYMBOL, f"unknown market {command.symbol}"
    if type(command.side) is not Side:
        return ErrorClass.INVALID_ORDER, f"unknown side {command.side!r}"
    if type(command.type) is not OrderType:
        return ErrorClass.INVALID_ORDER, f"unknown order type {command.type!r}"
    if type(command.time_in_force) is not TimeInForce:
        return ErrorClass.INVALID_ORDER, f"unknown time in force {command.time_in_force!r}"
    if type(command.post_only) is not bool:
        return ErrorClass.INVALID_ORDER, f"post-only flag {command.post_only!r} is not a boolean"
    amount = command.amount
    if not _is_int(amount):
        return ErrorClass.INVALID_ORDER, f"amount {amount!r} is not a whole number of steps"
    if amount <= 0:
        return ErrorClass.INVALID_ORDER, f"amount {market.format_amount(amount)} must be positive"
    if amount > QUANTITY_MAX:
        return ErrorClass.INVALID_ORDER, f"amount exceeds the maximum of {QUANTITY_MAX} steps"
    return _check_price(command, market)


def _check_price(command: PlaceOrder, market: Market) -> _Rejection | None:
    price = command.price
    if command.type is OrderType.MARKET:
        if price is not None:
            return ErrorClass.INVALID_ORDER, "a market order takes no price"
        if command.post_only:
            return ErrorClass.INVALID_ORDER, "a post-only order must be a limit order"
        return None
    if price is None:
        return ErrorClass.INVALID_ORDER, "a limit order needs a price"
    if not _is_int(price):
        return ErrorClass.INVALID_ORDER, f"price {price!r} is not a whole number of ticks"
    if price <= 0:
        return ErrorClass.INVALID_ORDER, f"price {market.format_price(price)} must be positive"
    if price > QUANTITY_MAX:
        return ErrorClass.INVALID_ORDER, f"price exceeds the maximum of {QUANTITY_MAX} ticks"
    if command.post_only and command.time_in_force is not TimeInForce.GTC:
        return (
            ErrorClass.INVALID_ORDER,
            f"a post-only order cannot be {command.time_in_force.name}",
        )
    return None


def _check_liquidity(
    command: PlaceOrder, market: Market, makers: BookSide, limit_key: int | None
) -> _Rejection | None:
    """The checks that read the book: post-only must not cross, fill-or-kill must fill."""
    if command.post_only:
        best = makers.best()
        if best is not None and limit_key is not None and makers.sign * best.price <= limit_key:
            opposite = "ask" if command.side is Side.BUY else "bid"
            price = market.format_price(limit_key * makers.sign)
            return (
                ErrorClass.ORDER_IMMEDIATELY_FILLABLE,
                f"post-only {command.side.name.lower()} at {price} would cross "
                f"best {opposite} {market.format_price(best.price)}",
            )
    if command.time_in_force is TimeInForce.FOK:
        available = makers.available(limit_key, command.amount)
        if available < command.amount:
            where = "" if command.price is None else f" at {market.format_price(command.price)}"
            amount = market.format_amount(command.amount)
            return (
                ErrorClass.ORDER_NOT_FILLABLE,
                f"fill-or-kill {command.side.name.lower()} of {amount}{where} can fill "
                f"only {market.format_amount(available)}",
            )
    return None


class PurePythonEngine(Engine):
    """The engine without its compiled hot path: the reference the C path is tested
    against, and what runs where the C module could not be built."""

    __slots__ = ()
    apply = Engine.apply  # the Python method, before the compiled one replaces it below


def _compiled_apply() -> object | None:
    """`Engine.apply` with its hot path in C, handed the classes, enum members and
    constants it works with; None where `peerbook.engine._native` was not built."""
    try:
        from peerbook.engine import _native
    except ImportError:
        return None
    _native.configure(
        {
            "Engine": Engine, "OrderBook": OrderBook, "BookSide": BookSide,
            "DigestChain": DigestChain, "PlaceOrder": PlaceOrder, "CancelOrder": CancelOrder,
            "Order": Order, "PriceLevel": PriceLevel, "Side": Side, "OrderType": OrderType,
            "TimeInForce": TimeInForce, "OrderAccepted": OrderAccepted,
            "TradeExecuted": TradeExecuted, "OrderRested": OrderRested,
            "OrderExpired": OrderExpired, "OrderCancelled": OrderCancelled,
            "BUY": Side.BUY, "SELL": Side.SELL, "LIMIT": _LIMIT, "MARKET": _MARKET,
            "GTC": _GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK,
            "OPEN": OrderState.OPEN, "PARTIALLY_FILLED": OrderState.PARTIALLY_FILLED,
            "FILLED": _FILLED, "CANCELED": OrderState.CANCELED, "EXPIRED": _EXPIRED,
            "heappush": heapq.heappush, "heappop": heapq.heappop, "heapify": heapq.heapify,
            "deque": deque, "record_accepted": records.record_accepted,
            "QUANTITY_MAX": QUANTITY_MAX, "TIMESTAMP_MAX": TIMESTAMP_MAX,
            "CLIENT_ORDER_ID_MAX": CLIENT_ORDER_ID_MAX, "BLOCK": BLOCK,
            "HEAP_SLACK": HEAP_SLACK, "COMPACT_SLACK": COMPACT_SLACK,
        }
    )  # fmt: skip
    return _native.method(PurePythonEngine.apply)


def compiled_order_decoder(python: Callable[[object], Order]) -> Callable[[object], Order]:
    """``python`` (`snapshot.decode_order`) with well-formed records read in C, or itself
    where the C module is not built."""
    if not COMPILED:
        return python
    from peerbook.engine import _native

    decoder: Callable[[object], Order] = _native.order_decoder(python)
    return decoder


_COMPILED_APPLY = _compiled_apply()
if _COMPILED_APPLY is not None:
    setattr(Engine, "apply", _COMPILED_APPLY)  # noqa: B010 (mypy refuses assigning a method)
COMPILED = _COMPILED_APPLY is not None
"""Whether `Engine` runs its hot path in C (the compiled module was built)."""
