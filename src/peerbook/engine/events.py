"""Events: the engine's outputs, named in the past tense.

`Engine.apply` returns them in the order they happened. Every event carries the ``sequence``
of the command that caused it. For a placed order the stream is `OrderAccepted`, then one
`TradeExecuted` per match in price-time order, then at most one of `OrderRested` (the limit
remainder now rests) or `OrderExpired` (the remainder of a market, IOC or FOK order was
dropped). A maker or taker is fully filled when its ``*_remaining`` in a trade reaches 0.

Events are immutable named tuples for the speed reason given in `peerbook.engine.commands`.
Being tuples, two events of different types with equal fields compare equal: compare the
types too where that matters.
"""

from typing import NamedTuple

from peerbook.engine.types import ErrorClass, OrderType, Side, TimeInForce

__all__ = [
    "DuplicateOrderIgnored",
    "Event",
    "OrderAccepted",
    "OrderCancelled",
    "OrderExpired",
    "OrderRejected",
    "OrderRested",
    "TradeExecuted",
]


class OrderAccepted(NamedTuple):
    """A new order exists; its id is the sequence of the command that placed it."""

    sequence: int
    order_id: int
    owner: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    price: int | None
    amount: int
    timestamp: int


class TradeExecuted(NamedTuple):
    """The taker matched the maker for ``quantity`` lots at the maker's ``price``."""

    sequence: int
    trade_id: int
    symbol: str
    price: int
    quantity: int
    taker_side: Side
    taker_order_id: int
    maker_order_id: int
    taker_remaining: int
    maker_remaining: int
    timestamp: int


class OrderRested(NamedTuple):
    """The order's unfilled remainder now rests in the book at its limit price."""

    sequence: int
    order_id: int
    symbol: str
    side: Side
    price: int
    quantity_remaining: int


class OrderExpired(NamedTuple):
    """The unfilled remainder of a market or IOC order was dropped; it never rested."""

    sequence: int
    order_id: int
    quantity_remaining: int


class OrderCancelled(NamedTuple):
    """The owner cancelled the order; its resting remainder left the book."""

    sequence: int
    order_id: int
    quantity_remaining: int


class OrderRejected(NamedTuple):
    """The command was refused and changed nothing but the sequence and the digest.

    ``message`` is the contract's human sentence naming the offending value; on the wire the
    error string is ``f"{error.value}: {message}"``.
    """

    sequence: int
    owner: str
    client_order_id: str | None
    error: ErrorClass
    message: str


class DuplicateOrderIgnored(NamedTuple):
    """The owner repeated a client order id: no second order; ``order_id`` is the original."""

    sequence: int
    order_id: int
    owner: str
    client_order_id: str


Event = (
    OrderAccepted
    | TradeExecuted
    | OrderRested
    | OrderExpired
    | OrderCancelled
    | OrderRejected
    | DuplicateOrderIgnored
)
