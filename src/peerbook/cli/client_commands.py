"""The client commands of contract section 1: ``buy``, ``sell``, ``cancel``, ``order``,
``orders``, ``book``, ``trades``, ``status``, ``markets`` and ``watch``.

Each is one call of `peerbook.client.Client`, printed as a table for a person or, with
``--json``, as the raw JSON result for a script (their arguments are in
`peerbook.cli.client_arguments`). Writes act as the peer whose ``--data-dir`` is given (its
credentials are read there); reads go to that peer, to ``--peer``, or to any.
Exit status: 0 on success, 1 when the peer answered an error (printed on standard error, with
its CCXT class), 2 for a usage error.
"""

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from peerbook.client import AsyncClient, Client, PeerbookClientError
from peerbook.client.book import LocalBook
from peerbook.grenache import Link, Subscriber

__all__ = ["run_client_command"]


def _client(args: argparse.Namespace, *, write: bool = False) -> Client:
    if args.data_dir:
        return Client.from_data_dir(args.grape, Path(args.data_dir), network=args.network)
    if write:
        raise PeerbookClientError(
            "BadRequest: writes act as your peer: give --data-dir (or PEERBOOK_DATA_DIR)"
        )
    return Client(args.grape, network=args.network or "main", peer=args.peer)


def _place(client: Client, args: argparse.Namespace) -> Any:
    if args.price is None and not args.market:
        raise PeerbookClientError("BadRequest: a limit order needs a PRICE (or use --market)")
    params: dict[str, Any] = {}
    if args.client_id:
        params["clientOrderId"] = args.client_id
    for flag, tif in (("ioc", "IOC"), ("fok", "FOK"), ("post_only", "PO")):
        if getattr(args, flag):
            params["timeInForce"] = tif
    kind = "market" if args.market else "limit"
    return client.create_order(args.symbol, kind, args.command, args.amount, args.price, params)


_WRITES = frozenset({"buy", "sell", "cancel"})


def _call(client: Client, args: argparse.Namespace) -> Any:
    command = args.command
    if command in ("buy", "sell"):
        return _place(client, args)
    if command == "cancel":
        return client.cancel_order(args.order_id)
    if command == "order":
        return client.fetch_order(args.order_id)
    if command == "orders":
        fetch = client.fetch_closed_orders if args.closed else client.fetch_open_orders
        return fetch(args.symbol)
    if command == "book":
        return client.fetch_order_book(args.symbol, args.depth)
    if command == "trades":
        return client.fetch_trades(args.symbol, None, args.limit)
    if command == "status":
        # --json prints the raw result of fetchStatus, from the addressed peer or any peer;
        # the table shows every peer when none is addressed.
        every = client.peer is None and not args.json
        return client.fetch_statuses() if every else client.fetch_status()
    if command == "markets":
        return client.fetch_markets()
    raise AssertionError(f"unhandled command {command}")


def run_client_command(args: argparse.Namespace) -> int:
    """Run one client command; the exit status."""
    if args.command == "watch":
        return _watch(args)
    try:
        with _client(args, write=args.command in _WRITES) as client:
            result = _call(client, args)
    except PeerbookClientError as exc:
        print(f"peerbook {args.command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))  # one line: the raw result, as the contract says
    else:
        _print_human(args.command, result)
    return 0


# -- human output ---------------------------------------------------------------------------


def _order_table(orders: list[dict[str, Any]]) -> Table:
    table = Table("id", "client id", "symbol", "side", "type", "price", "amount", "filled",
                  "remaining", "status", "state")  # fmt: skip
    for o in orders:
        table.add_row(o["id"], o["clientOrderId"] or "", o["symbol"], o["side"], o["type"],
                      o["price"] or "market", o["amount"], o["filled"], o["remaining"],
                      o["status"], o["info"]["state"])  # fmt: skip
    return table


def _print_human(command: str, result: Any) -> None:
    console = Console()
    if command in ("buy", "sell", "cancel", "order"):
        console.print(_order_table([result]))
    elif command == "orders":
        console.print(_order_table(result) if result else "no orders")
    elif command == "book":
        table = Table("bid count", "bid amount", "bid", "ask", "ask amount", "ask count",
                      title=f"{result['symbol']} at sequence {result['nonce']}")  # fmt: skip
        bids, asks = result["bids"], result["asks"]
        for i in range(max(len(bids), len(asks))):
            bid = bids[i] if i < len(bids) else ["", "", ""]
            ask = asks[i] if i < len(asks) else ["", "", ""]
            table.add_row(str(bid[2]), bid[1], bid[0], ask[0], ask[1], str(ask[2]))
        console.print(table)
    elif command == "trades":
        table = Table("id", "time", "side", "price", "amount", "cost")
        for t in result:
            table.add_row(t["id"], t["datetime"], t["side"], t["price"], t["amount"], t["cost"])
        console.print(table)
    elif command == "status":
        result = [result] if isinstance(result, dict) else result
        table = Table("peer", "role", "leader", "applied", "digest", "status", "members")
        for s in result:
            info = s["info"]
            table.add_row(info["peer"], info["role"], info["leader"] or "-", str(info["applied"]),
                          info["digest"][:16], s["status"], ",".join(info["members"]))  # fmt: skip
        console.print(table)
    elif command == "markets":
        table = Table("symbol", "price tick", "amount step")
        for m in result:
            table.add_row(m["symbol"], m["precision"]["price"], m["precision"]["amount"])
        console.print(table)


def _watch(args: argparse.Namespace) -> int:
    """Follow the feed: JSON lines with ``--json``, a live book and trades for one SYMBOL,
    or one line per event of every market."""

    async def follow() -> None:
        link = Link(args.grape)
        subscriber = Subscriber(link, f"peerbook:{args.network or 'main'}:feed")
        subscriber.start()
        live = args.symbol is not None and not args.json
        view = _LiveBook(args) if live else None
        try:
            async with asyncio.timeout(args.duration):
                if view is not None:
                    await view.run(subscriber)
                async for message in subscriber.messages():
                    _show_feed(args, message)
        except TimeoutError:
            pass
        finally:
            if view is not None:
                view.close()
            await subscriber.close()
            await link.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(follow())
    return 0


class _LiveBook:
    """The live view of one market: a local book from a snapshot plus the feed, redrawn on
    every update, resynchronised whenever its checksum disagrees with the peer's."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._trades: list[dict[str, Any]] = []
        self._resyncs = 0
        self._live = Live(console=Console(), auto_refresh=False)
        self._live.start()

    async def _snapshot(self) -> LocalBook:
        async with AsyncClient(self._args.grape, network=self._args.network or "main") as client:
            return LocalBook(await client.fetch_order_book(self._args.symbol))

    async def run(self, subscriber: Subscriber) -> None:
        book = await self._snapshot()
        self._draw(book)
        async for message in subscriber.messages():
            event = json.loads(message)
            if event.get("symbol") != self._args.symbol:
                continue
            if event.get("channel") == "trades":
                self._trades = (self._trades + event["data"])[-10:]
            elif event.get("channel") == "book" and not book.apply(event):
                self._resyncs += 1
                book = await self._snapshot()
            self._draw(book)

    def _draw(self, book: LocalBook) -> None:
        bids, asks = book.levels(10)
        title = f"{book.symbol} #{book.nonce}, checked ({self._resyncs} resyncs)"
        table = Table("bid amount", "bid", "ask", "ask amount", title=title)
        for i in range(max(len(bids), len(asks))):
            bid = bids[i] if i < len(bids) else ("", "")
            ask = asks[i] if i < len(asks) else ("", "")
            table.add_row(bid[1], bid[0], ask[0], ask[1])
        trades = Table("time", "taker", "price", "amount", title="last trades")
        for t in reversed(self._trades):
            trades.add_row(t["datetime"][11:23], t["side"], t["price"], t["amount"])
        grid = Table.grid(padding=(0, 2))
        grid.add_row(table, trades)
        self._live.update(grid, refresh=True)

    def close(self) -> None:
        self._live.stop()


def _show_feed(args: argparse.Namespace, message: str | bytes) -> None:
    try:
        event = json.loads(message)
    except ValueError:
        return
    if not isinstance(event, dict) or (args.symbol and event.get("symbol") != args.symbol):
        return
    if args.json:
        print(json.dumps(event), flush=True)
    elif event.get("channel") == "trades":
        for t in event.get("data", []):
            print(f"#{event['nonce']} trade {t['symbol']} {t['side']} {t['amount']} @ "
                  f"{t['price']}", flush=True)  # fmt: skip
    elif event.get("channel") == "book":
        changes = [f"bid {p}={a}" for p, a in event.get("bids", [])]
        changes += [f"ask {p}={a}" for p, a in event.get("asks", [])]
        print(f"#{event['nonce']} book {event['symbol']} " + " ".join(changes), flush=True)
