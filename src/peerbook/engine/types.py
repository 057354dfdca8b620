"""The engine's enums and the units it counts in.

Units: a *price* is an integer number of ticks of its market and a *quantity* (amount) is an
integer number of lots (amount steps). Nothing in the engine is a float or a Decimal; the
conversion to and from decimal strings lives in `peerbook.engine.markets`.
"""

import enum

__all__ = ["ErrorClass", "OrderState", "OrderType", "Side", "TimeInForce"]


class _ReprAsName(enum.IntEnum):
    """An IntEnum whose repr is valid Python (`Side.BUY`), so failing examples paste back."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class Side(_ReprAsName):
    """Which way an order trades."""

    BUY = 0  # takes from the asks, rests on the bids
    SELL = 1  # takes from the bids, rests on the asks

    @property
    def opposite(self) -> "Side":
        """The other side (a trade's maker is on the taker's opposite side)."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(_ReprAsName):
    """How an order is priced."""

    LIMIT = 0  # trades at its price or better; a GTC remainder rests
    MARKET = 1  # trades at any price; its remainder expires, it never rests


class TimeInForce(_ReprAsName):
    """How long the unmatched remainder of an order lives."""

    GTC = 0  # good till cancelled: a limit remainder rests
    IOC = 1  # immediate or cancel: the remainder expires
    FOK = 2  # fill or kill: fills completely at once, or is rejected with OrderNotFillable


class OrderState(_ReprAsName):
    """Where an order is in its life (contract section 3). The order of members matters:
    every state at or after FILLED means the order has left the book for good."""

    OPEN = 0  # resting, nothing filled (CCXT status "open")
    PARTIALLY_FILLED = 1  # resting, part filled (status "open")
    FILLED = 2  # fully executed, remaining 0 (status "closed")
    CANCELED = 3  # cancelled by its owner (status "canceled")
    EXPIRED = 4  # unfilled remainder of a market, IOC or FOK order; never rested ("canceled")


class ErrorClass(enum.Enum):
    """The CCXT error classes of contract section 4; the value is the class name on the wire."""

    BAD_REQUEST = "BadRequest"
    BAD_SYMBOL = "BadSymbol"
    INVALID_ORDER = "InvalidOrder"
    ORDER_NOT_FOUND = "OrderNotFound"
    ORDER_IMMEDIATELY_FILLABLE = "OrderImmediatelyFillable"
    ORDER_NOT_FILLABLE = "OrderNotFillable"

    def __repr__(self) -> str:
        return f"ErrorClass.{self.name}"
