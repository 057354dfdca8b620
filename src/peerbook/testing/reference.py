"""ReferenceEngine: a deliberately naive matcher, the oracle the real `Engine` is tested against.

Why it exists: the engine earns its speed with heaps of signed price keys, lazily deleted
levels and compacted queues, and each is a place for a bug to hide. This engine keeps every
resting order of a market in one plain list and finds the best maker by scanning it: slow
(O(resting orders) per trade) but short enough to check against the rules by eye. It shares no
code with ``engine/book.py``, ``level.py`` or ``matching.py``; it imports only the public types.

The rules, as the engine's docstrings state them: every command takes the next sequence
number, rejected or not; an order's id is that sequence and trade ids count up from 1. A
placement repeating an accepted (owner, client order id) gets `DuplicateOrderIgnored` before
any check. Then the first failing check decides the error class: owner, timestamp, client order
id (BadRequest); market (BadSymbol); enums, amount, price and option combinations
(InvalidOrder); a post-only order that would cross (OrderImmediatelyFillable); a fill-or-kill
order that cannot fill completely (OrderNotFillable). An accepted order trades with the
best-priced, then oldest, opposite resting order within its limit, at the maker's price, until
it is filled or none is left; a GTC limit remainder rests, any other remainder expires. A cancel
names one of the owner's resting orders, by id or else by client order id, in the given market
if any; anything else is OrderNotFound (or BadRequest/BadSymbol for malformed cancels).
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace

from peerbook.engine import (
    CLIENT_ORDER_ID_MAX,
    DEFAULT_MARKETS,
    CancelOrder,
    Command,
    DuplicateOrderIgnored,
    ErrorClass,
    Event,
    Market,
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    OrderRested,
    OrderState,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    TradeExecuted,
)

__all__ = ["OrderRecord", "ReferenceEngine", "comparable", "record_of"]


@dataclass(slots=True)
class OrderRecord:
    """One order as the reference sees it; the fields mean what they mean on `Order`."""

    order_id: int
    owner: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    price: int | None
    amount: int
    remaining: int
    cost: int
    state: OrderState
    last_trade_timestamp: int | None


def record_of(order: Order) -> OrderRecord:
    """An engine order in the reference's form, to compare final states."""
    return OrderRecord(
        order.order_id, order.owner, order.client_order_id, order.symbol, order.side, order.type,
        order.price, order.amount, order.remaining, order.cost, order.state,
        order.last_trade_timestamp,
    )  # fmt: skip


def comparable(events: Iterable[Event]) -> list[tuple[str, Event]]:
    """Events as the two engines must agree on them: with their type name, since named tuples
    of different types can compare equal, and with rejection messages blanked, since only the
    error class is contract and the reference does not write the engine's sentences."""
    return [
        (type(e).__name__, e._replace(message="") if isinstance(e, OrderRejected) else e)
        for e in events
    ]


def _price(resting: OrderRecord) -> int:
    """A resting order's price; only limit orders rest, so there always is one."""
    assert resting.price is not None
    return resting.price


def _acceptable(side: Side, limit: int | None, price: int) -> bool:
    """Whether an order of ``side`` with limit ``limit`` (None: any) may trade at ``price``."""
    return limit is None or (price <= limit if side is Side.BUY else price >= limit)


class ReferenceEngine:
    """The same contract as `Engine.apply`, implemented with lists and linear scans.

    Attributes:
        sequence: how many commands have been applied.
        trade_count: how many trades have executed.
    """

    def __init__(self, markets: Iterable[Market] = DEFAULT_MARKETS) -> None:
        self._resting: dict[str, list[OrderRecord]] = {m.symbol: [] for m in markets}
        self._orders: dict[int, OrderRecord] = {}
        self._by_client_id: dict[tuple[str, str], OrderRecord] = {}
        self.sequence = 0
        self.trade_count = 0

    def apply(self, command: Command) -> tuple[Event, ...]:
        """Apply one command and return its events, exactly as `Engine.apply` would."""
        self.sequence += 1
        if type(command) is PlaceOrder:
            return self._place(command)
        if type(command) is CancelOrder:
            return self._cancel(command)
        return self._reject(command, ErrorClass.BAD_REQUEST)

    def orders(self) -> tuple[OrderRecord, ...]:
        """Copies of every order ever accepted, in id order."""
        return tuple(replace(order) for order in self._orders.values())

    # -- placing ------------------------------------------------------------------------------

    def _place(self, command: PlaceOrder) -> tuple[Event, ...]:
        sequence, owner, client_order_id = self.sequence, command.owner, command.client_order_id
        if type(owner) is str and type(client_order_id) is str:
            original = self._by_client_id.get((owner, client_order_id))
            if original is not None:
                return (DuplicateOrderIgnored(sequence, original.order_id, owner, client_order_id),)
        error = self._invalid(command) or self._unmatchable(command)
        if error is not None:
            return self._reject(command, error)
        symbol, side, timestamp = command.symbol, command.side, command.timestamp
        taker = OrderRecord(
            sequence, owner, client_order_id, symbol, side, command.type, command.price,
            command.amount, command.amount, 0, OrderState.OPEN, None,
        )  # fmt: skip
        self._orders[sequence] = taker
        if client_order_id is not None:
            self._by_client_id[owner, client_order_id] = taker
        events: list[Event] = [
            OrderAccepted(
                sequence, sequence, owner, client_order_id, symbol, side, command.type,
                command.time_in_force, command.post_only, command.price, command.amount,
                timestamp,
            )
        ]  # fmt: skip
        while taker.remaining:
            maker = self._best_maker(taker)
            if maker is None:
                break
            price, quantity = _price(maker), min(taker.remaining, maker.remaining)
            for party in (taker, maker):
                party.remaining -= quantity
                party.cost += price * quantity
                party.last_trade_timestamp = timestamp
                party.state = OrderState.PARTIALLY_FILLED if party.remaining else OrderState.FILLED
            if not maker.remaining:
                self._resting[symbol].remove(maker)
            self.trade_count += 1
            events.append(
                TradeExecuted(
                    sequence, self.trade_count, symbol, price, quantity, side, sequence,
                    maker.order_id, taker.remaining, maker.remaining, timestamp,
                )
            )  # fmt: skip
        if taker.remaining:
            if command.type is OrderType.LIMIT and command.time_in_force is TimeInForce.GTC:
                assert command.price is not None
                self._resting[symbol].append(taker)
                events.append(
                    OrderRested(sequence, sequence, symbol, side, command.price, taker.remaining)
                )
            else:
                taker.state = OrderState.EXPIRED
                events.append(OrderExpired(sequence, sequence, taker.remaining))
        return tuple(events)

    def _best_maker(self, taker: OrderRecord) -> OrderRecord | None:
        """The opposite resting order the taker meets next: best price, then lowest id."""
        candidates = [
            order
            for order in self._resting[taker.symbol]
            if order.side is not taker.side and _acceptable(taker.side, taker.price, _price(order))
        ]
        if not candidates:
            return None
        sign = 1 if taker.side is Side.BUY else -1  # a buyer takes the lowest ask first
        return min(candidates, key=lambda order: (sign * _price(order), order.order_id))

    def _invalid(self, command: PlaceOrder) -> ErrorClass | None:
        """The checks that need no book, in the engine's order (it decides the error class
        when a command has several faults)."""
        client_order_id, amount, price = command.client_order_id, command.amount, command.price
        if type(command.owner) is not str or not command.owner:
            return ErrorClass.BAD_REQUEST
        if type(command.timestamp) is not int or command.timestamp < 0:
            return ErrorClass.BAD_REQUEST
        if client_order_id is not None and (
            type(client_order_id) is not str or not 0 < len(client_order_id) <= CLIENT_ORDER_ID_MAX
        ):
            return ErrorClass.BAD_REQUEST
        if command.symbol not in self._resting:
            return ErrorClass.BAD_SYMBOL
        if (
            type(command.side) is not Side
            or type(command.type) is not OrderType
            or type(command.time_in_force) is not TimeInForce
            or type(command.post_only) is not bool
            or type(amount) is not int
            or amount <= 0
        ):
            return ErrorClass.INVALID_ORDER
        if command.type is OrderType.MARKET:
            bad = price is not None or command.post_only
        else:
            bad = (
                type(price) is not int
                or price <= 0
                or (command.post_only and command.time_in_force is not TimeInForce.GTC)
            )
        return ErrorClass.INVALID_ORDER if bad else None

    def _unmatchable(self, command: PlaceOrder) -> ErrorClass | None:
        """The checks that read the book: post-only must not cross, fill-or-kill must fill."""
        side, price = command.side, command.price
        reachable = [
            order
            for order in self._resting[command.symbol]
            if order.side is not side and _acceptable(side, price, _price(order))
        ]
        # Some opposite order is at an acceptable price exactly when the best one is.
        if command.post_only and reachable:
            return ErrorClass.ORDER_IMMEDIATELY_FILLABLE
        fillable = sum(order.remaining for order in reachable) >= command.amount
        if command.time_in_force is TimeInForce.FOK and not fillable:
            return ErrorClass.ORDER_NOT_FILLABLE
        return None

    # -- cancelling ---------------------------------------------------------------------------

    def _cancel(self, command: CancelOrder) -> tuple[Event, ...]:
        owner, symbol = command.owner, command.symbol
        if type(owner) is not str:
            return self._reject(command, ErrorClass.BAD_REQUEST)
        if symbol is not None and symbol not in self._resting:
            return self._reject(command, ErrorClass.BAD_SYMBOL)
        order: OrderRecord | None
        if command.order_id is not None:
            if type(command.order_id) is not int:
                return self._reject(command, ErrorClass.BAD_REQUEST)
            order = self._orders.get(command.order_id)
            if order is not None and order.owner != owner:
                order = None  # someone else's order is reported as not found, not as forbidden
        elif type(command.client_order_id) is str:
            order = self._by_client_id.get((owner, command.client_order_id))
        else:
            return self._reject(command, ErrorClass.BAD_REQUEST)
        if order is None or (symbol is not None and symbol != order.symbol):
            return self._reject(command, ErrorClass.ORDER_NOT_FOUND)
        if not any(resting is order for resting in self._resting[order.symbol]):
            return self._reject(command, ErrorClass.ORDER_NOT_FOUND)  # filled, cancelled, expired
        self._resting[order.symbol].remove(order)
        order.state = OrderState.CANCELED
        return (OrderCancelled(self.sequence, order.order_id, order.remaining),)

    # -- rejecting ----------------------------------------------------------------------------

    def _reject(self, command: object, error: ErrorClass) -> tuple[Event, ...]:
        """A single `OrderRejected`; the message only names the class (it is not compared).
        ``command`` may be any object, as `Engine.apply` is total."""
        owner = getattr(command, "owner", None)
        client_order_id = getattr(command, "client_order_id", None)
        owner = owner if type(owner) is str else repr(owner)
        client_order_id = client_order_id if type(client_order_id) is str else None
        return (OrderRejected(self.sequence, owner, client_order_id, error, error.value),)
