"""The arguments of the client commands (`peerbook.cli.client_commands` runs them).

Apart from that module, which imports the client, the Grenache stack and rich, so that
starting a peer (``peerbook node``), which parses the same command line, does not pay for
importing what only the client commands use.
"""

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_client_commands"]


def add_client_commands(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the client commands to the top-level parser's ``commands``."""
    for side in ("buy", "sell"):
        order = commands.add_parser(side, help=f"place a {side} order at your own peer")
        common(order)
        order.add_argument("symbol", help="market, e.g. BTC/USD")
        order.add_argument("amount", help="decimal amount, e.g. 0.5")
        order.add_argument("price", nargs="?", help="limit price (omit with --market)")
        order.add_argument("--market", action="store_true", help="a market order")
        tif = order.add_mutually_exclusive_group()
        tif.add_argument("--ioc", action="store_true", help="immediate or cancel")
        tif.add_argument("--fok", action="store_true", help="fill or kill")
        tif.add_argument("--post-only", action="store_true", help="rest only, never take")
        order.add_argument("--client-id", help="your idempotency key (clientOrderId)")
    cancel = commands.add_parser("cancel", help="cancel one of your open orders")
    common(cancel)
    cancel.add_argument("order_id")
    fetch = commands.add_parser("order", help="show one order, in whatever state")
    common(fetch)
    fetch.add_argument("order_id")
    orders = commands.add_parser("orders", help="your peer's open (or --closed) orders")
    common(orders)
    orders.add_argument("--closed", action="store_true", help="filled and cancelled orders")
    orders.add_argument("--symbol", help="one market only")
    book = commands.add_parser("book", help="the order book of a market")
    common(book)
    book.add_argument("symbol")
    book.add_argument("--depth", type=int, default=10, help="levels per side (default 10)")
    trades = commands.add_parser("trades", help="the last trades of a market")
    common(trades)
    trades.add_argument("symbol")
    trades.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    status = commands.add_parser("status", help="role, leader, applied sequence and digest")
    common(status)
    markets = commands.add_parser("markets", help="the markets with tick and step")
    common(markets)
    watch = commands.add_parser("watch", help="follow trades and book updates live")
    common(watch)
    watch.add_argument("symbol", nargs="?", help="one market only")
    watch.add_argument("--duration", type=float, help="stop after this many seconds")
