"""A random trader, like the original design's: every peer places orders around a drifting
mid price, some crossing (trades), some resting (depth), now and then a market order or a
cancel of one of its own open orders. Prices and amounts are whole ticks and lots turned into
exact decimal strings."""

import asyncio
import random

from peerbook.client import AsyncClient, PeerbookClientError
from peerbook.engine import DEFAULT_MARKETS, Market

__all__ = ["RandomTrader"]

_MARKET: Market = DEFAULT_MARKETS[0]  # BTC/USD
_MID_TICKS = 300_000  # 30000.0


class RandomTrader:
    """Places random orders at one peer at ``rate`` per second until cancelled.

    Attributes:
        placed, cancelled, failed: counts of what it did; ``last_error`` the last failure.
    """

    def __init__(self, client: AsyncClient, rate: float, rng: random.Random) -> None:
        self._client = client
        self._interval = 1.0 / rate
        self._rng = rng
        self._mid = _MID_TICKS
        self._open: list[str] = []
        self.placed = self.cancelled = self.failed = 0
        self.last_error = ""

    async def run(self) -> None:
        """Trade until cancelled; errors are counted, never raised."""
        while True:
            await asyncio.sleep(self._rng.expovariate(1.0 / self._interval))
            try:
                await self._act()
            except PeerbookClientError as exc:
                self.failed += 1
                self.last_error = str(exc)

    async def _act(self) -> None:
        rng = self._rng
        roll = rng.random()
        if roll < 0.15 and self._open:
            order_id = self._open.pop(rng.randrange(len(self._open)))
            self.cancelled += 1
            await self._client.cancel_order(order_id)
            return
        self._mid = max(1000, self._mid + rng.randint(-5, 5))
        side = rng.choice(("buy", "sell"))
        amount = _MARKET.format_amount(rng.randint(1, 50) * 100)
        if roll > 0.92:
            order = await self._client.create_order(_MARKET.symbol, "market", side, amount)
        else:
            lean = -1 if side == "buy" else 1  # mostly passive, sometimes crossing
            price = _MARKET.format_price(self._mid + lean * rng.randint(-8, 30))
            order = await self._client.create_order(_MARKET.symbol, "limit", side, amount, price)
        self.placed += 1
        if order["status"] == "open":
            self._open.append(order["id"])
