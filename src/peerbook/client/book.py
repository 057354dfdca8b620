"""`LocalBook`: a market's book kept from a ``fetchOrderBook`` snapshot plus the feed's
``book`` updates (contract section 5), checked against each update's checksum.

The feed sends only the levels that changed; a subscriber starts from a snapshot, applies
every update with a larger ``nonce`` (older ones are already in the snapshot), and after each
one compares its own checksum with the peer's. A mismatch means it missed something (it
connected mid-stream, a message was dropped): it fetches a new snapshot. Prices are compared
as `Decimal`, never floats; the decimal strings themselves are kept as the peer wrote them,
so the checksum text is exactly the peer's.
"""

from decimal import Decimal
from typing import Any

from peerbook.wire.views import CHECKSUM_DEPTH, book_checksum

__all__ = ["LocalBook"]


class LocalBook:
    """One market's book as a subscriber maintains it.

    Args:
        snapshot: a ``fetchOrderBook`` reply (levels ``[price, amount, count]``).
    """

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.symbol: str = snapshot["symbol"]
        self.nonce: int = snapshot["nonce"]
        self._bids = {price: amount for price, amount, *_ in snapshot["bids"]}
        self._asks = {price: amount for price, amount, *_ in snapshot["asks"]}

    def apply(self, update: dict[str, Any]) -> bool:
        """Apply a ``book`` message; False if the checksum then disagrees (resynchronise).
        Messages at or below the book's nonce are already in it and are ignored."""
        if update["nonce"] <= self.nonce:
            return True
        for side, levels in ((self._bids, update["bids"]), (self._asks, update["asks"])):
            for price, amount in levels:
                if Decimal(amount) == 0:
                    side.pop(price, None)
                else:
                    side[price] = amount
        self.nonce = update["nonce"]
        return bool(self.checksum() == update["checksum"])

    def levels(self, depth: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The best ``depth`` bids (highest first) and asks (lowest first)."""
        bids = sorted(self._bids.items(), key=lambda level: Decimal(level[0]), reverse=True)
        asks = sorted(self._asks.items(), key=lambda level: Decimal(level[0]))
        return bids[:depth], asks[:depth]

    def checksum(self) -> int:
        """The section 5 checksum of this book (docs/api.md, "The feed")."""
        return book_checksum(*self.levels(CHECKSUM_DEPTH))
