"""PriceLevel: the FIFO queue of resting orders at one price on one side of a book.

Theory of operation: cancelling must not scan the level, so a cancelled order is not searched
for and removed. It is only subtracted from the level's live ``count`` and ``quantity`` and
left in the queue, where its state (no longer resting) marks it dead; the match loop drops
dead orders when it reaches them at the front. So that a level whose orders are cancelled
faster than they are matched cannot grow without bound, the queue is rebuilt from its live
orders once dead ones outnumber them (amortised O(1) per cancel).
"""

from collections import deque

from peerbook.engine.order import Order

__all__ = ["PriceLevel"]

COMPACT_SLACK = 32


class PriceLevel:
    """Resting orders at one price, oldest first.

    Attributes:
        price: the level's price in ticks.
        orders: the queue, oldest first; may hold dead (no longer resting) orders.
        count: how many live orders the queue holds.
        quantity: the total remaining quantity of the live orders, in lots.
    """

    __slots__ = ("count", "orders", "price", "quantity")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.count = 0
        self.quantity = 0

    def append(self, order: Order) -> None:
        """Queue a resting order behind every order already at this price."""
        self.orders.append(order)
        self.count += 1
        self.quantity += order.remaining

    def forget(self, order: Order) -> None:
        """Account for ``order`` having left the book by cancellation, without scanning.

        The caller has already marked the order dead and kept its remaining quantity.
        """
        self.count -= 1
        self.quantity -= order.remaining
        if len(self.orders) > 2 * self.count + COMPACT_SLACK:
            self.compact()

    def compact(self) -> None:
        """Rebuild the queue from its live orders, dropping the dead ones."""
        self.orders = deque(o for o in self.orders if o.is_resting)

    def live_orders(self) -> list[Order]:
        """The live orders, oldest first (for queries and invariant checks, not matching)."""
        return [o for o in self.orders if o.is_resting]

    def __repr__(self) -> str:
        return f"PriceLevel(price={self.price}, count={self.count}, quantity={self.quantity})"
