"""The match loop: an incoming order takes liquidity from the opposite side of the book.

Rules (price-time priority): the taker trades with the best-priced level first and, within a
level, with the oldest order first; every trade prints at the maker's price; matching stops
when the taker is filled, the opposite side is empty, or the next level is worse than the
taker's limit. The caller decides beforehand whether the taker may match at all (post-only,
fill-or-kill) and afterwards what happens to its remainder.
"""

import heapq

from peerbook.engine.book import BookSide
from peerbook.engine.events import TradeExecuted
from peerbook.engine.order import Order
from peerbook.engine.types import OrderState

__all__ = ["match"]

_new = tuple.__new__  # builds the named tuple without its __new__ frame; see engine.py
_FILLED = OrderState.FILLED
_PARTIALLY_FILLED = OrderState.PARTIALLY_FILLED


def match(
    taker: Order,
    makers: BookSide,
    limit_key: int | None,
    sequence: int,
    first_trade_id: int,
) -> list[TradeExecuted]:
    """Match ``taker`` against ``makers`` and update both sides' orders and levels.

    Args:
        taker: the incoming order; its ``remaining``, ``cost``, ``state`` and
            ``last_trade_timestamp`` are updated. Its timestamp stamps the trades.
        makers: the opposite side of the book.
        limit_key: the taker's limit as a key of ``makers`` (``makers.sign * price``), or None
            for a market order, which takes any price.
        sequence: the sequence of the command being applied.
        first_trade_id: the id of the first trade; later trades count up from it.

    Returns:
        The trades, in execution order (possibly none).
    """
    trades: list[TradeExecuted] = []
    heap, levels, sign = makers.heap, makers.levels, makers.sign
    remaining = taker.remaining
    timestamp = taker.timestamp
    taker_id, taker_side, symbol = taker.order_id, taker.side, taker.symbol
    trade_id = first_trade_id
    cost = 0
    while remaining and heap:
        key = heap[0]
        level = levels.get(sign * key)
        if level is None:
            heapq.heappop(heap)
            continue
        if limit_key is not None and key > limit_key:
            break
        price = level.price
        queue = level.orders
        traded = 0
        while remaining:
            maker = queue[0]
            if maker.state >= _FILLED:
                queue.popleft()
                continue
            quantity = remaining if remaining < maker.remaining else maker.remaining
            remaining -= quantity
            traded += quantity
            maker_remaining = maker.remaining = maker.remaining - quantity
            maker.cost += price * quantity
            maker.last_trade_timestamp = timestamp
            trades.append(
                _new(
                    TradeExecuted,
                    (sequence, trade_id, symbol, price, quantity, taker_side,
                     taker_id, maker.order_id, remaining, maker_remaining, timestamp),
                )
            )  # fmt: skip
            trade_id += 1
            if maker_remaining:
                maker.state = _PARTIALLY_FILLED
            else:
                maker.state = _FILLED
                queue.popleft()
                level.count -= 1
                if not level.count:
                    break
        level.quantity -= traded
        cost += price * traded
        if not level.count:
            del levels[price]
            heapq.heappop(heap)
    if trades:
        taker.remaining = remaining
        taker.cost += cost
        taker.last_trade_timestamp = timestamp
        taker.state = _PARTIALLY_FILLED if remaining else _FILLED
    return trades
