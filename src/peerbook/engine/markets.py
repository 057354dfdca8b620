"""Markets and the exact conversion between decimal strings and integer ticks and lots.

A tick or a step such as ``"0.1"`` is held as an integer number of units of ``10**-scale``
(``"0.1"`` is 1 unit at scale 1, ``"0.25"`` is 25 units at scale 2), so every conversion is
integer arithmetic: nothing is rounded, and a value that is not a whole multiple is refused.
"""

from dataclasses import dataclass, field

from peerbook.errors import InvalidCommand

__all__ = [
    "DECIMAL_CHARACTERS_MAX",
    "DEFAULT_MARKETS",
    "Increment",
    "Market",
    "format_scaled",
    "parse_decimal",
]

DECIMAL_CHARACTERS_MAX = 40
"""Longer decimal strings are refused: no price or amount needs more, and bounding the text
bounds the integers built from it."""


def parse_decimal(text: str) -> tuple[int, int] | None:
    """Read a plain decimal string exactly.

    Returns:
        ``(value, scale)`` with ``text == value * 10**-scale``, or None if ``text`` is not a
        plain decimal of ASCII digits (an exponent, a sign other than a leading ``-``, spaces,
        ``"."`` alone, another script's digits) or is longer than `DECIMAL_CHARACTERS_MAX`
        characters.
    """
    # ASCII digits only: int would also read other scripts' digits (Arabic-Indic, fullwidth), and a
    # price or amount a client did not write in plain ASCII is refused, not reinterpreted.
    if len(text) > DECIMAL_CHARACTERS_MAX or not text.isascii():
        return None
    negative = text.startswith("-")
    whole, point, fraction = (text[1:] if negative else text).partition(".")
    # For ASCII text, isdecimal is exactly [0-9].
    if not whole.isdecimal() or (point and not fraction.isdecimal()):
        return None
    value = int(whole + fraction)
    return (-value if negative else value), len(fraction)


def format_scaled(value: int, scale: int) -> str:
    """Write ``value * 10**-scale`` as the shortest exact decimal string (``"30000.5"``)."""
    digits = str(abs(value)).rjust(scale + 1, "0")
    whole, fraction = digits[: len(digits) - scale], digits[len(digits) - scale :].rstrip("0")
    text = f"{whole}.{fraction}" if fraction else whole
    return f"-{text}" if value < 0 else text


@dataclass(frozen=True, slots=True)
class Increment:
    """A price tick or amount step: the smallest change a market allows, exactly.

    Attributes:
        text: the increment as a decimal string, e.g. ``"0.1"``.
        units: the increment in units of ``10**-scale``.
        scale: the number of decimal places of those units.
    """

    text: str
    units: int = field(init=False)
    scale: int = field(init=False)

    def __post_init__(self) -> None:
        parsed = parse_decimal(self.text)
        if parsed is None or parsed[0] <= 0:
            raise InvalidCommand(f"increment {self.text!r} is not a positive decimal string")
        object.__setattr__(self, "units", parsed[0])
        object.__setattr__(self, "scale", parsed[1])

    def count(self, parsed: tuple[int, int]) -> int | None:
        """How many increments a `parse_decimal` result is, or None if not a multiple."""
        value, scale = parsed
        if scale > self.scale:
            shift = 10 ** (scale - self.scale)
            if value % shift:
                return None
            value //= shift
        else:
            value *= 10 ** (self.scale - scale)
        if value % self.units:
            return None
        count: int = value // self.units
        return count

    def format(self, count: int) -> str:
        """Write ``count`` increments as a decimal string."""
        return format_scaled(count * self.units, self.scale)


@dataclass(frozen=True, slots=True)
class Market:
    """One spot market: its symbol, currencies, price tick and amount step (contract section 6).

    The minimum amount is one step; prices are positive multiples of the tick.
    """

    symbol: str
    base: str
    quote: str
    price_tick: Increment
    amount_step: Increment

    @classmethod
    def of(cls, symbol: str, price_tick: str, amount_step: str) -> "Market":
        """Build a market from ``BASE/QUOTE`` and two decimal strings."""
        base, slash, quote = symbol.partition("/")
        if not (base and slash and quote):
            raise InvalidCommand(f"market symbol {symbol!r} is not of the form BASE/QUOTE")
        return cls(symbol, base, quote, Increment(price_tick), Increment(amount_step))

    def format_price(self, ticks: int) -> str:
        """Decimal string of a price in ticks."""
        return self.price_tick.format(ticks)

    def format_amount(self, lots: int) -> str:
        """Decimal string of an amount in lots."""
        return self.amount_step.format(lots)

    def format_cost(self, tick_lots: int) -> str:
        """Decimal string of a cost held as the sum of ticks times lots."""
        tick, step = self.price_tick, self.amount_step
        return format_scaled(tick_lots * tick.units * step.units, tick.scale + step.scale)

    def format_average(self, tick_lots: int, lots: int) -> str | None:
        """Average price of ``lots`` filled at a total cost of ``tick_lots``, or None if nothing
        filled. Exact when the quotient terminates within eight more decimals than the tick's;
        otherwise rounded half to even at that precision (documented in docs/engine.md)."""
        if lots == 0:
            return None
        tick = self.price_tick
        scale = tick.scale + 8
        numerator = tick_lots * tick.units * 10**8
        quotient, remainder = divmod(numerator, lots)
        if 2 * remainder > lots or (2 * remainder == lots and quotient % 2):
            quotient += 1
        return format_scaled(quotient, scale)


DEFAULT_MARKETS: tuple[Market, ...] = (
    Market.of("BTC/USD", "0.1", "0.0001"),
    Market.of("ETH/USD", "0.01", "0.001"),
)
