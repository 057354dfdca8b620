"""Decoding of the contract's request arguments into engine commands.

Every function here is total: it returns a command or a `RequestError`, and never raises on
any JSON value it is given. Checks that need only the request and the market table (types,
decimal format, tick and step multiples, known symbol and options) happen here, before a
request is proposed to the log; checks that need the book (post-only crossing, fill-or-kill
liquidity, the order being open) happen in the engine when the command is applied.

Decimal fields are strings (``"30000.5"``); a JSON integer is accepted, a JSON float never
is (contract section 3). Booleans are not numbers here, although Python says they are.
"""

from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

from peerbook.engine import (
    CLIENT_ORDER_ID_MAX,
    QUANTITY_MAX,
    TIMESTAMP_MAX,
    CancelOrder,
    Command,
    ErrorClass,
    Market,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
)
from peerbook.engine.markets import DECIMAL_CHARACTERS_MAX, Increment, parse_decimal

__all__ = ["RequestError", "decode_cancel", "decode_create", "decode_entry"]


_T = TypeVar("_T")


class RequestError(NamedTuple):
    """A refused request: the contract's error class and a sentence naming the bad value."""

    error: ErrorClass
    message: str

    def __str__(self) -> str:
        return f"{self.error.value}: {self.message}"


class _Refused(Exception):
    """Internal: carries a RequestError out of nested checks; never escapes this module."""

    def __init__(self, error: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.refusal = RequestError(error, message)


_TYPES = {"limit": OrderType.LIMIT, "market": OrderType.MARKET}
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_TIME_IN_FORCE = {
    "GTC": (TimeInForce.GTC, False),
    "IOC": (TimeInForce.IOC, False),
    "FOK": (TimeInForce.FOK, False),
    "PO": (TimeInForce.GTC, True),
}
_CREATE_PARAMS = frozenset({"clientOrderId", "timeInForce", "postOnly"})
_CANCEL_PARAMS = frozenset({"clientOrderId"})
_ENTRY_FIELDS = frozenset({"op", "owner", "timestamp", "args"})
_COUNTS: dict[str, dict[str, int]] = {}
"""Decimal strings already read, by increment and text: a market's orders repeat the same
few prices and sizes, and reading one again costs a dictionary lookup instead of the parse
(8 % of the instructions of applying an order, `docs/benchmarks.md`). Keyed by strings, not
by a tuple of both, whose hash is computed anew at every lookup. Only valid counts are kept;
an increment's memory is emptied when `_COUNTS_MAX` full."""
_COUNTS_MAX = 1 << 16


def _decode_entry(entry: object, markets: Mapping[str, Market]) -> Command | RequestError:
    """A log line of contract section 7, ``{"op", "owner", "timestamp", "args"}``.

    `decode_entry` is this function, or where the compiled module `peerbook.wire._native`
    is built, a C function that reads valid entries itself and hands every other one here.
    """
    if not isinstance(entry, dict):
        return RequestError(ErrorClass.BAD_REQUEST, "entry is not a JSON object")
    if entry.keys() != _ENTRY_FIELDS:
        fields = ", ".join(sorted(str(k) for k in set(entry) ^ _ENTRY_FIELDS))
        return RequestError(ErrorClass.BAD_REQUEST, f"entry has missing or extra fields: {fields}")
    owner, timestamp, args = entry["owner"], entry["timestamp"], entry["args"]
    if not isinstance(owner, str) or not owner:
        return RequestError(ErrorClass.BAD_REQUEST, f"owner {owner!r} is not a non-empty string")
    if type(timestamp) is not int or not 0 <= timestamp <= TIMESTAMP_MAX:
        return RequestError(
            ErrorClass.BAD_REQUEST,
            f"timestamp {timestamp!r:.40} is not an integer from 0 to {TIMESTAMP_MAX}",
        )
    if not isinstance(args, list):
        return RequestError(ErrorClass.BAD_REQUEST, "args is not a JSON array")
    if entry["op"] == "createOrder":
        return decode_create(owner, timestamp, args, markets)
    if entry["op"] == "cancelOrder":
        return decode_cancel(owner, timestamp, args, markets)
    return RequestError(ErrorClass.BAD_REQUEST, f"unknown op {entry['op']!r}")


def decode_create(
    owner: str, timestamp: int, args: list[object], markets: Mapping[str, Market]
) -> PlaceOrder | RequestError:
    """``createOrder`` arguments ``[symbol, type, side, amount, price?, params?]``."""
    try:
        return _decode_create(owner, timestamp, args, markets)
    except _Refused as refused:
        return refused.refusal


def decode_cancel(
    owner: str,
    timestamp: int,
    args: list[object],
    markets: Mapping[str, Market],
    action: str = "cancelOrder",
) -> CancelOrder | RequestError:
    """``cancelOrder`` arguments ``[id, symbol?, params?]``, or ``[null, symbol,
    {"clientOrderId": ID}]`` to name the owner's order by its client order id.

    ``fetchOrder`` takes the same arguments; ``action`` names the caller's action in errors.
    """
    try:
        return _decode_cancel(owner, timestamp, args, markets, action)
    except _Refused as refused:
        return refused.refusal


def _decode_create(
    owner: str, timestamp: int, args: list[object], markets: Mapping[str, Market]
) -> PlaceOrder:
    if not 4 <= len(args) <= 6:
        raise _Refused(
            ErrorClass.BAD_REQUEST,
            f"createOrder takes 4 to 6 arguments (symbol, type, side, amount, price, params), "
            f"got {len(args)}",
        )
    symbol, type_, side = args[0], args[1], args[2]
    market = _market(symbol, markets)
    order_type = _choice(type_, _TYPES, "order type")
    order_side = _choice(side, _SIDES, "side")
    amount = _count(args[3], market.amount_step, "amount", "step")
    price_arg = args[4] if len(args) > 4 else None
    price = None if price_arg is None else _count(price_arg, market.price_tick, "price", "tick")
    params = _params(args[5] if len(args) > 5 else None, _CREATE_PARAMS)
    time_in_force, post_only = TimeInForce.GTC, False
    if "timeInForce" in params:
        time_in_force, post_only = _choice(params["timeInForce"], _TIME_IN_FORCE, "timeInForce")
    if "postOnly" in params:
        flag = params["postOnly"]
        if not isinstance(flag, bool):
            raise _Refused(ErrorClass.BAD_REQUEST, f"postOnly {flag!r} is not a boolean")
        if post_only and not flag:  # timeInForce PO says the opposite
            raise _Refused(ErrorClass.INVALID_ORDER, "timeInForce PO contradicts postOnly false")
        post_only = flag
    _check_order_options(order_type, price, time_in_force, post_only)
    return PlaceOrder(
        owner, timestamp, market.symbol, order_side, order_type, amount, price,
        time_in_force, post_only, _client_order_id(params),
    )  # fmt: skip


def _check_order_options(
    order_type: OrderType, price: int | None, time_in_force: TimeInForce, post_only: bool
) -> None:
    """Refuse, before the log, the combinations the engine would refuse (same sentences)."""
    if order_type is OrderType.MARKET:
        if price is not None:
            raise _Refused(ErrorClass.INVALID_ORDER, "a market order takes no price")
        if post_only:
            raise _Refused(ErrorClass.INVALID_ORDER, "a post-only order must be a limit order")
    elif price is None:
        raise _Refused(ErrorClass.INVALID_ORDER, "a limit order needs a price")
    elif post_only and time_in_force is not TimeInForce.GTC:
        raise _Refused(
            ErrorClass.INVALID_ORDER, f"a post-only order cannot be {time_in_force.name}"
        )


def _decode_cancel(
    owner: str, timestamp: int, args: list[object], markets: Mapping[str, Market], action: str
) -> CancelOrder:
    if not 1 <= len(args) <= 3:
        raise _Refused(
            ErrorClass.BAD_REQUEST,
            f"{action} takes 1 to 3 arguments (id, symbol, params), got {len(args)}",
        )
    symbol_arg = args[1] if len(args) > 1 else None
    symbol = None if symbol_arg is None else _market(symbol_arg, markets).symbol
    params = _params(args[2] if len(args) > 2 else None, _CANCEL_PARAMS)
    client_order_id = _client_order_id(params)
    raw_id = args[0]
    if raw_id is None:
        if client_order_id is None:
            raise _Refused(
                ErrorClass.BAD_REQUEST, f"{action} needs an order id or params.clientOrderId"
            )
        return CancelOrder(owner, timestamp, None, client_order_id, symbol)
    return CancelOrder(owner, timestamp, _order_id(raw_id), None, symbol)


def _order_id(value: object) -> int:
    if type(value) is int:
        if value > 0:
            return value
        raise _Refused(ErrorClass.ORDER_NOT_FOUND, f"order {value} does not exist")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    if isinstance(value, str):
        raise _Refused(ErrorClass.ORDER_NOT_FOUND, f"order {value:.40} does not exist")
    raise _Refused(ErrorClass.BAD_REQUEST, f"order id {value!r:.40} is not a string")


def _market(symbol: object, markets: Mapping[str, Market]) -> Market:
    if not isinstance(symbol, str):
        raise _Refused(ErrorClass.BAD_REQUEST, f"symbol {symbol!r:.40} is not a string")
    market = markets.get(symbol)
    if market is None:
        raise _Refused(ErrorClass.BAD_SYMBOL, f"unknown market {symbol:.40}")
    return market


def _choice(value: object, choices: Mapping[str, _T], what: str) -> _T:
    if not isinstance(value, str):
        raise _Refused(ErrorClass.BAD_REQUEST, f"{what} {value!r:.40} is not a string")
    if value not in choices:
        allowed = ", ".join(choices)
        raise _Refused(ErrorClass.INVALID_ORDER, f"unknown {what} {value:.40} (one of {allowed})")
    return choices[value]


def _count(value: object, increment: Increment, what: str, unit: str) -> int:
    """A positive decimal amount or price as a whole number of increments."""
    if type(value) is not str:
        return _read_count(value, increment, what, unit)
    counts = _COUNTS.get(increment.text)
    if counts is None:
        counts = _COUNTS[increment.text] = {}
    count = counts.get(value)
    if count is None:
        count = _read_count(value, increment, what, unit)
        if len(counts) >= _COUNTS_MAX:
            counts.clear()
        counts[value] = count
    return count


def _read_count(value: object, increment: Increment, what: str, unit: str) -> int:
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise _Refused(ErrorClass.BAD_REQUEST, f"{what} {value!r:.40} is not a decimal string")
    if len(value) > DECIMAL_CHARACTERS_MAX:
        raise _Refused(
            ErrorClass.INVALID_ORDER,
            f"{what} {value:.40}... is longer than {DECIMAL_CHARACTERS_MAX} characters",
        )
    parsed = parse_decimal(value)
    if parsed is None:
        raise _Refused(ErrorClass.INVALID_ORDER, f"{what} {value:.40} is not a decimal number")
    if parsed[0] <= 0:
        raise _Refused(ErrorClass.INVALID_ORDER, f"{what} {value:.40} must be positive")
    count = increment.count(parsed)
    if count is None:
        raise _Refused(
            ErrorClass.INVALID_ORDER,
            f"{what} {value:.40} is not a multiple of {unit} {increment.text}",
        )
    if count > QUANTITY_MAX:
        raise _Refused(
            ErrorClass.INVALID_ORDER,
            f"{what} {value:.40} exceeds the maximum of {QUANTITY_MAX} {unit}s",
        )
    return count


def _params(value: object, allowed: frozenset[str]) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Refused(ErrorClass.BAD_REQUEST, f"params {value!r:.40} is not an object")
    if value.keys() <= allowed:
        return value
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise _Refused(
            ErrorClass.BAD_REQUEST,
            f"unknown params {', '.join(unknown):.80} (allowed: {', '.join(sorted(allowed))})",
        )
    return value


def _client_order_id(params: Mapping[str, object]) -> str | None:
    value = params.get("clientOrderId")
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= CLIENT_ORDER_ID_MAX:
        raise _Refused(
            ErrorClass.BAD_REQUEST,
            f"clientOrderId {value!r:.80} is not a string of 1 to {CLIENT_ORDER_ID_MAX} characters",
        )
    return value


def _compiled_decode_entry() -> Callable[[object, Mapping[str, Market]], Command | RequestError]:
    """`_decode_entry` with valid entries read in C, or itself where the C module is not
    built (both give the same commands: tests/wire/test_native.py)."""
    try:
        from peerbook.wire import _native
    except ImportError:
        return _decode_entry
    _native.configure(
        {
            "PlaceOrder": PlaceOrder, "CancelOrder": CancelOrder, "TYPES": _TYPES,
            "SIDES": _SIDES, "TIME_IN_FORCE": _TIME_IN_FORCE, "COUNTS": _COUNTS,
            "GTC": TimeInForce.GTC, "MARKET": OrderType.MARKET, "TIMESTAMP_MAX": TIMESTAMP_MAX,
            "CLIENT_ORDER_ID_MAX": CLIENT_ORDER_ID_MAX,
        }
    )  # fmt: skip
    return _native.decoder(_decode_entry)


decode_entry = _compiled_decode_entry()
COMPILED = decode_entry is not _decode_entry
"""Whether valid log entries are read in C (the compiled module was built)."""
