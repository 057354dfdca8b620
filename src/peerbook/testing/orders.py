"""Order flow for benchmarks: crossing limit orders, deterministic by index."""

from typing import Any

__all__ = ["crossing_command"]


def crossing_command(index: int) -> dict[str, Any]:
    """A section-7 ``createOrder`` command (no timestamp): alternately buy and sell, over 21
    prices around 30,000, seven owners, a unique client order id; about half of them trade
    and the rest rest, as in a busy market."""
    side = "buy" if index % 2 else "sell"
    price = f"{30_000 + (index * 7919) % 21 - 10}"
    options = {"clientOrderId": f"c{index}"}
    return {"op": "createOrder", "owner": f"o{index % 7}",
            "args": ["BTC/USD", "limit", side, "0.0010", price, options]}  # fmt: skip
