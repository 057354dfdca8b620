"""Order flow for benchmarks: crossing limit orders, deterministic by index, and a market
maker's stream of orders and cancels."""

import asyncio
import collections
import random
import time
from typing import Any

from peerbook.client import AsyncClient, PeerbookClientError

__all__ = ["crossing_command", "market_maker"]


def crossing_command(index: int) -> dict[str, Any]:
    """A section-7 ``createOrder`` command (no timestamp): alternately buy and sell, over 21
    prices around 30,000, seven owners, a unique client order id; about half of them trade
    and the rest rest, as in a busy market."""
    side = "buy" if index % 2 else "sell"
    price = f"{30_000 + (index * 7919) % 21 - 10}"
    options = {"clientOrderId": f"c{index}"}
    return {"op": "createOrder", "owner": f"o{index % 7}",
            "args": ["BTC/USD", "limit", side, "0.0010", price, options]}  # fmt: skip


async def market_maker(
    client: AsyncClient,
    interval: float,
    stop: float,
    rng: random.Random,
    samples: list[tuple[float, float]],
    open_max: int,
) -> None:
    """Trade through ``client`` like a market maker until ``stop`` (monotonic time): every
    ``interval`` seconds a crossing limit order with a unique client order id near 30,000,
    or, while it holds more than ``open_max`` resting orders, a cancel of its oldest (some of
    them filled since), so that the book stays bounded and what memory still grows is
    history. Appends (start, seconds) of every acknowledged action to ``samples``."""
    opened: collections.deque[str] = collections.deque()  # oldest first
    next_at = time.monotonic()
    while time.monotonic() < stop:
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        started = time.monotonic()
        try:
            if len(opened) > open_max:
                await client.cancel_order(opened.popleft())
            else:
                side = rng.choice(("buy", "sell"))
                order = await client.create_order(
                    "BTC/USD", "limit", side, "0.001", f"{30000 + rng.randint(-3, 3)}",
                    {"clientOrderId": f"stress-{rng.getrandbits(64):016x}"},
                )  # fmt: skip
                if order["status"] == "open":
                    opened.append(order["id"])
        except PeerbookClientError:
            continue  # e.g. cancelling an order that was filled meanwhile
        samples.append((started, time.monotonic() - started))
