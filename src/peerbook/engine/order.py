"""Order: the engine's record of one order, kept for the life of the engine.

Orders stay on record after they leave the book (filled, cancelled, expired) so that they can
be audited and queried by id or client order id. The engine owns these objects and mutates
them; callers read them and must not write to them.
"""

from peerbook.engine.types import OrderState, OrderType, Side, TimeInForce

__all__ = ["Order"]


class Order:
    """One order and its current state.

    Attributes:
        order_id: the sequence of the command that placed it; identical on every replica.
        owner, client_order_id, symbol, side, type, time_in_force, post_only, timestamp: as in
            `PlaceOrder`.
        price: limit price in ticks, or None for a market order.
        amount: the quantity ordered, in lots.
        remaining: the quantity not yet filled, in lots (0 once filled; kept as it was when
            cancelled or expired). ``amount - remaining`` is the quantity filled.
        cost: the sum over its fills of price (ticks) times quantity (lots).
        last_trade_timestamp: timestamp of its latest fill, or None before any.
        state: where it is in its life; see `OrderState`.
    """

    __slots__ = (
        "amount",
        "client_order_id",
        "cost",
        "last_trade_timestamp",
        "order_id",
        "owner",
        "post_only",
        "price",
        "remaining",
        "side",
        "state",
        "symbol",
        "time_in_force",
        "timestamp",
        "type",
    )

    def __init__(
        self,
        order_id: int,
        owner: str,
        client_order_id: str | None,
        symbol: str,
        side: Side,
        type: OrderType,
        time_in_force: TimeInForce,
        post_only: bool,
        price: int | None,
        amount: int,
        timestamp: int,
    ) -> None:
        self.order_id = order_id
        self.owner = owner
        self.client_order_id = client_order_id
        self.symbol = symbol
        self.side = side
        self.type = type
        self.time_in_force = time_in_force
        self.post_only = post_only
        self.price = price
        self.amount = amount
        self.remaining = amount
        self.cost = 0
        self.timestamp = timestamp
        self.last_trade_timestamp: int | None = None
        self.state = OrderState.OPEN

    @property
    def filled(self) -> int:
        """The quantity executed so far, in lots."""
        return self.amount - self.remaining

    @property
    def is_resting(self) -> bool:
        """Whether the order is in the book now."""
        return self.state < OrderState.FILLED

    def __repr__(self) -> str:
        return (
            f"Order(order_id={self.order_id}, owner={self.owner!r}, symbol={self.symbol!r}, "
            f"side={self.side!r}, price={self.price}, amount={self.amount}, "
            f"remaining={self.remaining}, state={self.state!r})"
        )
