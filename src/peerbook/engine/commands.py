"""Commands: the engine's inputs, named in the imperative.

A command carries everything its outcome depends on, including the timestamp the log chose
for it: the engine reads no clock. Commands are immutable named tuples rather than frozen
dataclasses because building one is about seven times cheaper on our machines (0.4 µs against
2.9 µs, measured with timeit), which matters at a million commands a second; their repr is
valid Python all the same. Values are not checked when a command is built: the engine checks
them when it applies the command and rejects bad ones with an `OrderRejected` event.
"""

from typing import NamedTuple

from peerbook.engine.types import OrderType, Side, TimeInForce

__all__ = ["CancelOrder", "Command", "PlaceOrder"]


class PlaceOrder(NamedTuple):
    """Place a limit or market order.

    Attributes:
        owner: the peer id that owns the order; only it may cancel the order.
        timestamp: milliseconds since the epoch, chosen once when the command entered the log.
        symbol: the market, e.g. ``"BTC/USD"``.
        side: buy or sell.
        type: limit or market.
        amount: the quantity in lots; must be positive.
        price: the limit price in ticks, positive; None for a market order.
        time_in_force: GTC, IOC or FOK. A market order's remainder expires whatever this says.
        post_only: reject the order instead of letting it take liquidity (GTC limit orders only).
        client_order_id: the owner's idempotency key: a repeat returns the original order.
    """

    owner: str
    timestamp: int
    symbol: str
    side: Side
    type: OrderType
    amount: int
    price: int | None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    client_order_id: str | None = None


class CancelOrder(NamedTuple):
    """Cancel the resting remainder of one of the owner's orders.

    The order is named by ``order_id`` or, when that is None, by the owner's
    ``client_order_id``. ``symbol``, if given, must be the order's market.
    """

    owner: str
    timestamp: int
    order_id: int | None
    client_order_id: str | None = None
    symbol: str | None = None


Command = PlaceOrder | CancelOrder
