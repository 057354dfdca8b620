"""CCXT structures (contract section 3) for engine orders and trades.

Prices, amounts and costs are exact decimal strings; ids are strings, as CCXT has them;
timestamps are integer milliseconds with an ISO-8601 ``datetime`` beside them.
"""

import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from peerbook.engine import Market, Order, OrderState, OrderType, Side, TimeInForce, TradeExecuted

__all__ = ["CHECKSUM_DEPTH", "book_checksum", "format_datetime", "order_view", "trade_view"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_STATUS = {
    OrderState.OPEN: "open",
    OrderState.PARTIALLY_FILLED: "open",
    OrderState.FILLED: "closed",
    OrderState.CANCELED: "canceled",
    OrderState.EXPIRED: "canceled",
}


def format_datetime(timestamp: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, computed exactly from integer milliseconds."""
    moment = _EPOCH + timedelta(milliseconds=timestamp)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{timestamp % 1000:03d}Z"


def _time_in_force(order: Order) -> str:
    if order.post_only:
        return "PO"
    if order.type is OrderType.MARKET and order.time_in_force is TimeInForce.GTC:
        return "IOC"  # a market order's remainder never rests, whatever it asked for
    return order.time_in_force.name


def order_view(
    order: Order, market: Market, trades: Iterable[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The CCXT order structure of ``order``; ``trades`` are its fills as CCXT trades."""
    return {
        "id": str(order.order_id),
        "clientOrderId": order.client_order_id,
        "timestamp": order.timestamp,
        "datetime": format_datetime(order.timestamp),
        "lastTradeTimestamp": order.last_trade_timestamp,
        "status": _STATUS[order.state],
        "symbol": order.symbol,
        "type": order.type.name.lower(),
        "timeInForce": _time_in_force(order),
        "postOnly": order.post_only,
        "side": order.side.name.lower(),
        "price": None if order.price is None else market.format_price(order.price),
        "average": market.format_average(order.cost, order.filled),
        "amount": market.format_amount(order.amount),
        "filled": market.format_amount(order.filled),
        "remaining": market.format_amount(order.remaining),
        "cost": market.format_cost(order.cost),
        "trades": list(trades),
        "fee": None,
        "info": {
            "peer": order.owner,
            "sequence": order.order_id,
            "state": order.state.name.lower(),
        },
    }


def trade_view(
    trade: TradeExecuted, market: Market, perspective: Side | None = None
) -> dict[str, Any]:
    """The CCXT trade structure of ``trade``.

    Args:
        perspective: None for the public view (``order`` and ``side`` are the taker's,
            ``takerOrMaker`` is ``"taker"``); a side to view the trade as that side's order's
            fill, as inside an order's ``trades`` or in ``fetchMyTrades``.
    """
    taker = perspective is None or perspective is trade.taker_side
    side = trade.taker_side if perspective is None else perspective
    return {
        "id": str(trade.trade_id),
        "order": str(trade.taker_order_id if taker else trade.maker_order_id),
        "timestamp": trade.timestamp,
        "datetime": format_datetime(trade.timestamp),
        "symbol": trade.symbol,
        "side": side.name.lower(),
        "takerOrMaker": "taker" if taker else "maker",
        "price": market.format_price(trade.price),
        "amount": market.format_amount(trade.quantity),
        "cost": market.format_cost(trade.price * trade.quantity),
        "fee": None,
    }


CHECKSUM_DEPTH = 25
"""How many levels per side the feed's book checksum covers (contract section 5)."""


def book_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """The book checksum of contract section 5 (docs/api.md, "The feed"): ``zlib.crc32`` of
    ``BIDS|ASKS``, each side its best `CHECKSUM_DEPTH` levels, best first, as
    ``price:amount`` decimal strings joined by commas."""
    text = "|".join(
        ",".join(f"{price}:{amount}" for price, amount in side[:CHECKSUM_DEPTH])
        for side in (bids, asks)
    )
    return zlib.crc32(text.encode())
