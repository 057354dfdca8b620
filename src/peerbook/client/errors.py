"""Typed errors of the Python client, named and ranked as CCXT's.

A peer answers an error as one string, ``Class: sentence`` (contract section 4); `from_wire`
turns it into the class of that name, so a caller can ``except OrderNotFound`` as with any
CCXT exchange. The hierarchy is CCXT's: a bad request and a bad order are exchange errors;
not being able to reach or commit at a peer is a network error, which may be retried (for
writes, with the same clientOrderId).
"""

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BadSymbol",
    "ExchangeError",
    "ExchangeNotAvailable",
    "InvalidOrder",
    "NetworkError",
    "NotSupported",
    "OrderImmediatelyFillable",
    "OrderNotFillable",
    "OrderNotFound",
    "PeerbookClientError",
    "RequestTimeout",
    "from_wire",
]


class PeerbookClientError(Exception):
    """Base of every error the client raises (CCXT's BaseError)."""


class ExchangeError(PeerbookClientError):
    """The peer refused the request."""


class AuthenticationError(ExchangeError):
    """A write without valid credentials, signature or nonce."""


class BadRequest(ExchangeError):
    """A malformed request."""


class NotSupported(BadRequest):
    """An action the peer does not offer."""


class BadSymbol(BadRequest):
    """An unknown market."""


class InvalidOrder(ExchangeError):
    """An order the market does not allow (amount, price, type, side, time in force)."""


class OrderNotFound(InvalidOrder):
    """No such order, or not open, or not this peer's."""


class OrderImmediatelyFillable(InvalidOrder):
    """A post-only order that would have crossed."""


class OrderNotFillable(InvalidOrder):
    """A fill-or-kill order that could not fill completely."""


class NetworkError(PeerbookClientError):
    """The peer could not be reached or could not commit; retrying may succeed."""


class ExchangeNotAvailable(NetworkError):
    """The peer cannot commit now (no quorum, joining), or cannot be reached; nothing applied."""


class RequestTimeout(NetworkError):
    """No answer in time: a write may still commit; query it by its clientOrderId."""


_CLASSES: dict[str, type[PeerbookClientError]] = {
    cls.__name__: cls
    for cls in (
        AuthenticationError,
        BadRequest,
        BadSymbol,
        ExchangeError,
        ExchangeNotAvailable,
        InvalidOrder,
        NetworkError,
        NotSupported,
        OrderImmediatelyFillable,
        OrderNotFillable,
        OrderNotFound,
        RequestTimeout,
    )
}


def from_wire(message: str) -> PeerbookClientError:
    """The typed error of an error string ``Class: sentence`` (ExchangeError if the class is
    not one of the contract's)."""
    name, _, _ = message.partition(":")
    return _CLASSES.get(name, ExchangeError)(message)
