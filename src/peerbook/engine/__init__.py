"""The pure matching core: commands in, events out; no I/O, clock, randomness or threads.

Everything in ``__all__`` is the engine's public surface; nothing outside the engine reaches
into its other modules except `peerbook.engine.snapshot` and `peerbook.engine.markets`.
"""

from peerbook.engine.commands import CancelOrder, Command, PlaceOrder
from peerbook.engine.engine import CLIENT_ORDER_ID_MAX, QUANTITY_MAX, TIMESTAMP_MAX, Engine
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
from peerbook.engine.markets import DEFAULT_MARKETS, Market
from peerbook.engine.order import Order
from peerbook.engine.types import ErrorClass, OrderState, OrderType, Side, TimeInForce

__all__ = [
    "CLIENT_ORDER_ID_MAX",
    "DEFAULT_MARKETS",
    "QUANTITY_MAX",
    "TIMESTAMP_MAX",
    "CancelOrder",
    "Command",
    "DuplicateOrderIgnored",
    "Engine",
    "ErrorClass",
    "Event",
    "Market",
    "Order",
    "OrderAccepted",
    "OrderCancelled",
    "OrderExpired",
    "OrderRejected",
    "OrderRested",
    "OrderState",
    "OrderType",
    "PlaceOrder",
    "Side",
    "TimeInForce",
    "TradeExecuted",
]
