"""The Python client of a peerbook network: CCXT method names over Grenache.

`AsyncClient` for asyncio code and `Client` for everything else; both find peers through a
grape, sign writes with a peer's credentials (contract section 8) and raise the typed errors
of `peerbook.client.errors`.
"""

from peerbook.client.asynchronous import AsyncClient
from peerbook.client.errors import (
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
    PeerbookClientError,
    RequestTimeout,
)
from peerbook.client.synchronous import Client

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "BadRequest",
    "BadSymbol",
    "Client",
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
]
