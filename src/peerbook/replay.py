"""Offline replay (contract section 7): apply a log of commands to a fresh engine and print
the outcome, with no network. The auditor's tool, and the engine's black-box test surface.

Output lines, in order: ``{"error", "line"}`` for each refused input line as it happens and
``{"trade"}`` for each trade in execution order; then ``{"order"}`` for every accepted order
in acceptance order, in its final state; last ``{"applied", "digest"}``.

Which lines count as applied: a line that is not a JSON object of the section 7 shape, or
whose arguments fail the request checks (`peerbook.wire.requests`), is reported and skipped;
a live peer refuses such requests before they reach the log, so they never hold a sequence
number. A command the engine refuses (for example a cancel of an order that is not open, or a
fill-or-kill that cannot fill) is in the log, so it is reported *and* applied.
"""

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from peerbook.engine import (
    DuplicateOrderIgnored,
    Engine,
    Market,
    OrderRejected,
    TradeExecuted,
)
from peerbook.errors import InvalidCommand
from peerbook.wire import RequestError, decode_entry, order_view, trade_view

__all__ = ["LINE_BYTES_MAX", "load_markets", "replay"]

LINE_BYTES_MAX = 64 * 1024


def _dump(document: Mapping[str, Any]) -> str:
    """One output line: UTF-8 text as is, unless a string holds a lone surrogate (JSON input
    can carry one), in which case the line is written with ASCII escapes."""
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(document, separators=(",", ":"))
    return text


def replay(
    lines: Iterable[str],
    markets: Iterable[Market],
    emit: Callable[[str], None],
    start: Engine | None = None,
) -> Engine:
    """Apply every line of ``lines`` and ``emit`` each output line (without newline).

    Blank lines are skipped silently. ``start``, an engine restored from a snapshot, is
    applied to instead of a fresh engine of ``markets`` (a peer's command log after a
    snapshot starts from one); the orders printed are then all of its orders, but only the
    trades of ``lines`` are printed and counted in each order's ``trades``. Returns the
    engine, for callers that want its state.
    """
    engine = Engine(markets) if start is None else start
    fills: dict[int, list[TradeExecuted]] = {}
    for number, line in enumerate(lines, start=1):
        error = _apply_line(engine, line, fills, emit)
        if error is not None:
            emit(_dump({"error": error, "line": number}))
    for order in engine.orders():
        market = engine.markets[order.symbol]
        trades = [trade_view(t, market, order.side) for t in fills.get(order.order_id, ())]
        emit(_dump({"order": order_view(order, market, trades)}))
    emit(_dump({"applied": engine.sequence, "digest": engine.digest()}))
    return engine


def _apply_line(
    engine: Engine,
    line: str,
    fills: dict[int, list[TradeExecuted]],
    emit: Callable[[str], None],
) -> str | None:
    """Apply one input line; the error string to report for it, or None.

    Input is read with ``surrogateescape``, so bytes that are not UTF-8 arrive as lone
    surrogates and are reported here, line by line, instead of failing the whole replay.
    """
    try:
        size = len(line.encode())
    except UnicodeEncodeError:
        return "BadRequest: line is not valid UTF-8"
    if size > LINE_BYTES_MAX:
        return f"BadRequest: line of {size} bytes exceeds the limit of {LINE_BYTES_MAX}"
    if not line.strip():
        return None
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return f"BadRequest: line is not valid JSON ({reason})"
    command = decode_entry(entry, engine.markets)
    if isinstance(command, RequestError):
        return str(command)
    error = None
    for event in engine.apply(command):
        if type(event) is TradeExecuted:
            fills.setdefault(event.taker_order_id, []).append(event)
            fills.setdefault(event.maker_order_id, []).append(event)
            trade = trade_view(event, engine.markets[event.symbol])
            trade["makerOrder"] = str(event.maker_order_id)
            trade["takerOrder"] = str(event.taker_order_id)
            emit(_dump({"trade": trade}))
        elif type(event) is OrderRejected:
            error = f"{event.error.value}: {event.message}"
        elif type(event) is DuplicateOrderIgnored:
            continue
    return error


def load_markets(document: object) -> list[Market]:
    """Markets from JSON shaped like ``fetchMarkets``' reply: a list of objects with
    ``symbol`` and ``precision: {"price": TICK, "amount": STEP}`` as decimal strings.

    Raises:
        ValueError: the document is not of that shape.
    """
    if not isinstance(document, list) or not document:
        raise ValueError("markets file must hold a non-empty JSON array")
    markets = []
    for item in document:
        try:
            symbol, precision = item["symbol"], item["precision"]
            markets.append(Market.of(symbol, precision["price"], precision["amount"]))
        except (TypeError, KeyError, InvalidCommand) as exc:
            raise ValueError(f"market {item!r:.80} lacks symbol or precision: {exc}") from exc
    return markets
