"""OrderBook: the bids and asks of one market, each a `BookSide` of price levels.

Theory of operation: a side keeps its levels in a dict by price (O(1) to find the level an
order rests at) and the level keys in a binary heap (O(log n) to add a level, O(1) to read the
best). Keys are prices on the ask side and negated prices on the bid side, so that on both
sides the smallest key is the best price and "key <= limit key" means "at least as good as the
limit". Removing a level only deletes it from the dict; its heap key goes stale and is popped
when it reaches the top, and the heap is rebuilt when stale keys outnumber live ones.
"""

import heapq

from peerbook.engine.level import PriceLevel
from peerbook.engine.order import Order
from peerbook.engine.types import Side

__all__ = ["BookSide", "OrderBook"]

HEAP_SLACK = 64


class BookSide:
    """One side of a book: price levels, best first.

    Attributes:
        side: the side of the orders that rest here (BUY for bids).
        sign: +1 for asks, -1 for bids; a level's heap key is ``sign * price``.
        levels: the non-empty levels by price.
        heap: level keys, smallest (best) first; may hold stale keys of removed levels.
    """

    __slots__ = ("heap", "levels", "side", "sign")

    def __init__(self, side: Side) -> None:
        self.side = side
        self.sign = -1 if side is Side.BUY else 1
        self.levels: dict[int, PriceLevel] = {}
        self.heap: list[int] = []

    def best(self) -> PriceLevel | None:
        """The best level, or None if the side is empty. Drops stale heap keys on the way."""
        heap, levels, sign = self.heap, self.levels, self.sign
        while heap:
            level = levels.get(sign * heap[0])
            if level is not None:
                return level
            heapq.heappop(heap)
        return None

    def rest(self, order: Order, price: int) -> None:
        """Queue ``order`` at ``price`` behind the orders already there."""
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = PriceLevel(price)
            if len(self.heap) > 2 * len(self.levels) + HEAP_SLACK:
                self.heap = [self.sign * p for p in self.levels]
                heapq.heapify(self.heap)
            else:
                heapq.heappush(self.heap, self.sign * price)
        level.append(order)

    def withdraw(self, order: Order, price: int) -> None:
        """Take a cancelled ``order`` out of the level at ``price`` (already marked dead)."""
        level = self.levels[price]
        level.forget(order)
        if level.count == 0:
            del self.levels[price]

    def available(self, limit_key: int | None, needed: int) -> int:
        """Quantity resting at prices at least as good as ``limit_key`` (all if None), counted
        until it reaches ``needed``: enough to decide whether a fill-or-kill order can fill."""
        total = 0
        sign = self.sign
        for price, level in self.levels.items():
            if limit_key is None or sign * price <= limit_key:
                total += level.quantity
                if total >= needed:
                    break
        return total

    def depth(self, limit: int | None = None) -> list[PriceLevel]:
        """The levels best first, at most ``limit`` of them (all if None)."""
        keys = [self.sign * price for price in self.levels]
        ordered = sorted(keys) if limit is None else heapq.nsmallest(limit, keys)
        return [self.levels[self.sign * key] for key in ordered]


class OrderBook:
    """The two sides of one market's book."""

    __slots__ = ("asks", "bids", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = BookSide(Side.BUY)
        self.asks = BookSide(Side.SELL)

    def own_side(self, side: Side) -> BookSide:
        """Where an order of ``side`` rests."""
        return self.bids if side is Side.BUY else self.asks

    def opposite_side(self, side: Side) -> BookSide:
        """Where an order of ``side`` takes liquidity from."""
        return self.asks if side is Side.BUY else self.bids
