"""`Client`: the same methods as `AsyncClient`, blocking, for scripts and the CLI.

Each call runs the asynchronous client on a private event loop owned by this object, so the
connections it opens are reused from one call to the next; `close` releases them.
"""

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from peerbook.client.asynchronous import AsyncClient, Number
from peerbook.node.datadir import Credentials

__all__ = ["Client"]

_T = TypeVar("_T")


class Client:
    """A blocking client; arguments as `AsyncClient`. Use as a context manager or `close`."""

    def __init__(
        self,
        grape: str,
        *,
        network: str = "main",
        peer: str | None = None,
        credentials: Credentials | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._async = self._run(_build(grape, network, peer, credentials, timeout_s))

    @classmethod
    def from_data_dir(
        cls, grape: str, data_dir: Path, *, network: str | None = None, timeout_s: float = 15.0
    ) -> "Client":
        """A client acting as the peer whose data directory is ``data_dir``."""
        client = cls.__new__(cls)
        client._loop = asyncio.new_event_loop()
        client._async = client._run(_from_data_dir(grape, data_dir, network, timeout_s))
        return client

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return self._loop.run_until_complete(coroutine)

    def close(self) -> None:
        """Close the connections and the private loop."""
        self._run(self._async.close())
        self._loop.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def peer(self) -> str | None:
        """The peer requests are sent to (None: any)."""
        return self._async.peer

    def call(self, action: str, args: list[Any], *, write: bool = False) -> Any:
        """Send one action (see `AsyncClient.call`)."""
        return self._run(self._async.call(action, args, write=write))

    def fetch_markets(self) -> list[dict[str, Any]]:
        """See `AsyncClient.fetch_markets`."""
        return self._run(self._async.fetch_markets())

    def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Number,
        price: Number | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """See `AsyncClient.create_order`."""
        return self._run(self._async.create_order(symbol, type, side, amount, price, params))

    def cancel_order(
        self,
        id: str | None,
        symbol: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """See `AsyncClient.cancel_order`."""
        return self._run(self._async.cancel_order(id, symbol, params))

    def fetch_order(
        self,
        id: str | None,
        symbol: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """See `AsyncClient.fetch_order`."""
        return self._run(self._async.fetch_order(id, symbol, params))

    def fetch_open_orders(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """See `AsyncClient.fetch_open_orders`."""
        return self._run(self._async.fetch_open_orders(symbol, since, limit))

    def fetch_closed_orders(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """See `AsyncClient.fetch_closed_orders`."""
        return self._run(self._async.fetch_closed_orders(symbol, since, limit))

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """See `AsyncClient.fetch_order_book`."""
        return self._run(self._async.fetch_order_book(symbol, limit))

    def fetch_trades(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """See `AsyncClient.fetch_trades`."""
        return self._run(self._async.fetch_trades(symbol, since, limit))

    def fetch_my_trades(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """See `AsyncClient.fetch_my_trades`."""
        return self._run(self._async.fetch_my_trades(symbol, since, limit))

    def fetch_status(self) -> dict[str, Any]:
        """See `AsyncClient.fetch_status`."""
        return self._run(self._async.fetch_status())

    def fetch_statuses(self) -> list[dict[str, Any]]:
        """See `AsyncClient.fetch_statuses`."""
        return self._run(self._async.fetch_statuses())


async def _build(
    grape: str, network: str, peer: str | None, credentials: Credentials | None, timeout_s: float
) -> AsyncClient:
    return AsyncClient(
        grape, network=network, peer=peer, credentials=credentials, timeout_s=timeout_s
    )


async def _from_data_dir(
    grape: str, data_dir: Path, network: str | None, timeout_s: float
) -> AsyncClient:
    return AsyncClient.from_data_dir(grape, data_dir, network=network, timeout_s=timeout_s)
