"""Arguments of the read actions (contract section 3): symbol, since and limit.

Pure checks, like `peerbook.wire.requests`: each returns the decoded arguments or a
`RequestError` with the contract's error class and a sentence naming the offending value.
"""

from collections.abc import Mapping
from typing import NamedTuple

from peerbook.engine import ErrorClass, Market
from peerbook.wire.requests import RequestError

__all__ = ["LIMIT_MAX", "Listing", "decode_book", "decode_listing"]

LIMIT_MAX = 10_000
"""The most items one read returns; also the default when no limit is given."""


class Listing(NamedTuple):
    """What a list read asks for: one market or all (None), items from ``since`` (ms) on,
    at most ``limit`` of them."""

    symbol: str | None
    since: int | None
    limit: int


def _symbol(value: object, markets: Mapping[str, Market], required: bool) -> str | RequestError:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        return RequestError(ErrorClass.BAD_REQUEST, f"symbol {value!r:.40} is not a string")
    if value not in markets:
        return RequestError(ErrorClass.BAD_SYMBOL, f"unknown market {value:.40}")
    return value


def _natural(value: object, what: str, low: int) -> int | RequestError | None:
    if value is None:
        return None
    if type(value) is not int or value < low:
        return RequestError(
            ErrorClass.BAD_REQUEST, f"{what} {value!r:.40} is not an integer of at least {low}"
        )
    return value


def decode_listing(
    action: str, args: list[object], markets: Mapping[str, Market], *, symbol_required: bool
) -> Listing | RequestError:
    """``[symbol?, since?, limit?, params?]`` of fetchTrades, fetchMyTrades and the order
    lists (fetchTrades requires the symbol). ``params`` must be an object if given; none of
    its keys are used."""
    if len(args) > 4 or (symbol_required and not args):
        low = 1 if symbol_required else 0
        return RequestError(
            ErrorClass.BAD_REQUEST,
            f"{action} takes {low} to 4 arguments (symbol, since, limit, params), got {len(args)}",
        )
    padded = [*args, None, None, None, None]
    symbol = _symbol(padded[0], markets, symbol_required)
    if isinstance(symbol, RequestError):
        return symbol
    since = _natural(padded[1], "since", 0)
    if isinstance(since, RequestError):
        return since
    limit = _natural(padded[2], "limit", 1)
    if isinstance(limit, RequestError):
        return limit
    if padded[3] is not None and not isinstance(padded[3], dict):
        return RequestError(ErrorClass.BAD_REQUEST, f"params {padded[3]!r:.40} is not an object")
    return Listing(symbol or None, since, min(limit or LIMIT_MAX, LIMIT_MAX))


def decode_book(
    args: list[object], markets: Mapping[str, Market]
) -> tuple[str, int | None] | RequestError:
    """``[symbol, limit?]`` of fetchOrderBook: the symbol and the number of levels per side
    (None: all)."""
    if not 1 <= len(args) <= 3:
        return RequestError(
            ErrorClass.BAD_REQUEST,
            f"fetchOrderBook takes 1 to 3 arguments (symbol, limit, params), got {len(args)}",
        )
    symbol = _symbol(args[0], markets, True)
    if isinstance(symbol, RequestError):
        return symbol
    limit = _natural(args[1] if len(args) > 1 else None, "limit", 1)
    if isinstance(limit, RequestError):
        return limit
    if len(args) > 2 and args[2] is not None and not isinstance(args[2], dict):
        return RequestError(ErrorClass.BAD_REQUEST, f"params {args[2]!r:.40} is not an object")
    return symbol, limit
