"""What the demo shows: every peer's role, applied sequence, digest and best prices, the book
and last trades, and whether all digests agree. Polled from the peers' own APIs, so what is on
screen is what any client would see."""

import asyncio
import time
from typing import Any, NamedTuple

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from peerbook.client import AsyncClient, PeerbookClientError
from peerbook.demo.trader import RandomTrader

__all__ = ["PeerView", "Snapshot", "agreement", "poll", "render", "summary_lines"]

_SYMBOL = "BTC/USD"


class PeerView(NamedTuple):
    """One peer as last polled; ``status`` None when it did not answer."""

    peer: str
    status: dict[str, Any] | None
    book: dict[str, Any] | None
    trader: RandomTrader | None


class Snapshot(NamedTuple):
    """One poll of every peer, and the last trades as one of them reports them."""

    peers: list[PeerView]
    trades: list[dict[str, Any]]
    taken_at: float


async def _poll_peer(peer: str, client: AsyncClient, trader: RandomTrader | None) -> PeerView:
    try:
        async with asyncio.timeout(2):
            status = await client.fetch_status()
            book = await client.fetch_order_book(_SYMBOL, 5)
    except (PeerbookClientError, TimeoutError):
        return PeerView(peer, None, None, trader)
    return PeerView(peer, status, book, trader)


async def poll(readers: dict[str, AsyncClient], traders: dict[str, RandomTrader]) -> Snapshot:
    """Ask every peer for its status and book, and one answering peer for the last trades."""
    views = await asyncio.gather(*(_poll_peer(p, c, traders.get(p)) for p, c in readers.items()))
    trades: list[dict[str, Any]] = []
    for view in views:
        if view.status is not None:
            try:
                trades = await readers[view.peer].fetch_trades(_SYMBOL, None, 8)
            except PeerbookClientError:
                continue
            break
    return Snapshot(list(views), trades, time.monotonic())


def agreement(snapshot: Snapshot) -> tuple[bool, str]:
    """Whether every answering peer reports the same applied sequence and digest, and a line
    saying so."""
    up = [v.status["info"] for v in snapshot.peers if v.status is not None]
    states = {(i["applied"], i["digest"]) for i in up}
    down = len(snapshot.peers) - len(up)
    suffix = f" ({down} down)" if down else ""
    if len(states) == 1 and up:
        applied, digest = states.pop()
        return True, f"ALL {len(up)} PEERS AGREE: applied {applied}, digest {digest[:16]}{suffix}"
    spread = sorted(i["applied"] for i in up)
    if not spread:
        return False, "no peer answers"
    return False, f"converging: applied {spread[0]}..{spread[-1]}{suffix}"


def _best(book: dict[str, Any] | None, side: str) -> str:
    if not book or not book[side]:
        return "-"
    price, amount, _ = book[side][0]
    return f"{price} x {amount}"


def _peers_table(snapshot: Snapshot) -> Table:
    table = Table("peer", "role", "leader", "applied", "digest", "best bid", "best ask",
                  "placed", "failed", title="peers")  # fmt: skip
    for view in snapshot.peers:
        trader = view.trader
        counts = ("-", "-") if trader is None else (str(trader.placed), str(trader.failed))
        if view.status is None:
            table.add_row(view.peer, Text("DOWN", style="bold red"), "", "", "", "", "", *counts)
            continue
        info = view.status["info"]
        table.add_row(view.peer, info["role"], info["leader"] or "-", str(info["applied"]),
                      info["digest"][:12], _best(view.book, "bids"), _best(view.book, "asks"),
                      *counts)  # fmt: skip
    return table


def _book_table(snapshot: Snapshot) -> Table:
    book = next((v.book for v in snapshot.peers if v.book is not None), None)
    table = Table("bid amount", "bid", "ask", "ask amount", title=f"{_SYMBOL} book")
    if book is None:
        return table
    bids, asks = book["bids"], book["asks"]
    for i in range(max(len(bids), len(asks))):
        bid = bids[i] if i < len(bids) else ["", ""]
        ask = asks[i] if i < len(asks) else ["", ""]
        table.add_row(bid[1], bid[0], ask[0], ask[1])
    return table


def _trades_table(snapshot: Snapshot) -> Table:
    table = Table("id", "time", "taker", "price", "amount", title="last trades")
    for trade in reversed(snapshot.trades):
        table.add_row(trade["id"], trade["datetime"][11:23], trade["side"], trade["price"],
                      trade["amount"])  # fmt: skip
    return table


def render(snapshot: Snapshot, hints: list[str]) -> Group:
    """The dashboard for one snapshot, with ``hints`` (commands to try) under it."""
    agree, line = agreement(snapshot)
    marker = Text(("✔ " if agree else "… ") + line, style="bold green" if agree else "yellow")
    side_by_side = Table.grid(padding=(0, 2))
    side_by_side.add_row(_book_table(snapshot), _trades_table(snapshot))
    help_text = Text("\n".join(hints), style="dim")
    return Group(_peers_table(snapshot), marker, side_by_side, Panel(help_text, title="try"))


def summary_lines(snapshot: Snapshot) -> list[str]:
    """Plain log lines for one snapshot (``--no-dashboard``)."""
    lines = []
    for view in snapshot.peers:
        if view.status is None:
            lines.append(f"peer {view.peer} DOWN")
            continue
        info = view.status["info"]
        trader = view.trader
        placed = "" if trader is None else f" placed={trader.placed} failed={trader.failed}"
        lines.append(
            f"peer {view.peer} role={info['role']} applied={info['applied']} "
            f"digest={info['digest'][:16]} bid={_best(view.book, 'bids')} "
            f"ask={_best(view.book, 'asks')}{placed}"
        )
    lines.append(agreement(snapshot)[1])
    return lines
