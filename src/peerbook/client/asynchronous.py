"""`AsyncClient`: the contract's actions as CCXT-named coroutines.

Reads go to any peer of the network (``peerbook:NET:rpc``) unless a peer is named; writes go
to the client's own peer (``peerbook:NET:peer:ID``), signed with that peer's credentials.
Amounts and prices are decimal strings (or `Decimal` or `int`), never floats: a float is
refused before anything is sent, because it cannot say exactly which price was meant.
"""

import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from peerbook.client.errors import (
    BadRequest,
    ExchangeNotAvailable,
    NetworkError,
    RequestTimeout,
    from_wire,
)
from peerbook.errors import (
    ConnectFailedError,
    GrenacheError,
    LookupEmptyError,
    RequestTimeoutError,
    RpcError,
)
from peerbook.grenache import Link, RpcClient
from peerbook.grenache.protocol import Json
from peerbook.node.auth import sign
from peerbook.node.datadir import Credentials, DataDir

__all__ = ["AsyncClient", "Number"]

Number = str | Decimal | int
"""An exact amount or price."""


def _decimal_text(value: Number | None, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise BadRequest(f"BadRequest: {what} {value!r} must be a decimal string, not a float")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


class _NonceSource:
    """Write nonces: the clock in microseconds, strictly increasing across every client of
    this process (several clients may share one peer's credentials), plus a random offset
    of under a millisecond chosen per process, so that two processes with the same
    credentials rarely pick the same value in the same microsecond."""

    def __init__(self) -> None:
        self._offset = secrets.randbelow(1000)
        self._last = 0

    def next(self) -> str:
        self._last = max(time.time_ns() // 1000 + self._offset, self._last + 1)
        return str(self._last)


_NONCES = _NonceSource()


class AsyncClient:
    """A client of one network.

    Args:
        grape: the grape URL peers are found through.
        network: the network name.
        peer: the peer to send every request to (None: reads go to any peer).
        credentials: the API key and secret of ``peer``, for writes.
        timeout_s: the deadline of each request.
    """

    def __init__(
        self,
        grape: str,
        *,
        network: str = "main",
        peer: str | None = None,
        credentials: Credentials | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self.network = network
        self.peer = peer
        self._credentials = credentials
        # Lists are up to 10,000 orders or trades: replies of several MiB.
        self._rpc = RpcClient(Link(grape), timeout_s=timeout_s, reply_bytes_max=64 << 20)

    @classmethod
    def from_data_dir(
        cls, grape: str, data_dir: Path, *, network: str | None = None, timeout_s: float = 15.0
    ) -> "AsyncClient":
        """A client acting as the peer whose data directory is ``data_dir`` (its id, network
        and credentials are read from there)."""
        if not (data_dir / "peer.json").exists():
            raise BadRequest(f"BadRequest: {data_dir} is not a peer's data directory")
        directory = DataDir(data_dir)
        identity = directory.identity()
        assert identity is not None
        return cls(
            grape,
            network=network or identity.network,
            peer=identity.peer,
            credentials=directory.credentials(),
            timeout_s=timeout_s,
        )

    async def close(self) -> None:
        """Close the connections."""
        await self._rpc.close()
        await self._rpc.link.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _name(self, write: bool) -> str:
        if self.peer is not None:
            return f"peerbook:{self.network}:peer:{self.peer}"
        if write:
            raise BadRequest("BadRequest: writes go to your own peer: give peer and credentials")
        return f"peerbook:{self.network}:rpc"

    def _nonce(self) -> str:
        return _NONCES.next()

    async def call(self, action: str, args: list[Any], *, write: bool = False) -> Any:
        """Send one action; its reply data, or a typed error."""
        payload: dict[str, Json] = {"action": action, "args": args}
        if write:
            if self._credentials is None:
                raise BadRequest("BadRequest: writes need the peer's credentials")
            nonce = self._nonce()
            payload["auth"] = {
                "key": self._credentials.key,
                "nonce": nonce,
                "signature": sign(self._credentials.secret, nonce, action, args),
            }
        try:
            return await self._rpc.request(self._name(write), payload)
        except RpcError as exc:
            raise from_wire(str(exc)) from exc
        except RequestTimeoutError as exc:
            raise RequestTimeout(f"RequestTimeout: {exc}") from exc
        except (LookupEmptyError, ConnectFailedError) as exc:
            raise ExchangeNotAvailable(f"ExchangeNotAvailable: {exc}") from exc
        except GrenacheError as exc:
            raise NetworkError(f"NetworkError: {exc}") from exc

    # -- the CCXT methods ------------------------------------------------------------------

    async def fetch_markets(self) -> list[dict[str, Any]]:
        """Every market with its precision and limits."""
        return list(await self.call("fetchMarkets", []))

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Number,
        price: Number | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Place an order at your own peer; the order once committed and applied."""
        args = [
            symbol,
            type,
            side,
            _decimal_text(amount, "amount"),
            _decimal_text(price, "price"),
            params or {},
        ]
        return dict(await self.call("createOrder", args, write=True))

    async def cancel_order(
        self,
        id: str | None,
        symbol: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Cancel one of your open orders (by id, or ``id=None`` and params.clientOrderId)."""
        return dict(await self.call("cancelOrder", [id, symbol, params or {}], write=True))

    async def fetch_order(
        self,
        id: str | None,
        symbol: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One order in whatever state, by id or by your clientOrderId."""
        return dict(await self.call("fetchOrder", [id, symbol, params or {}]))

    async def fetch_open_orders(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Your peer's open orders, oldest first."""
        return list(await self.call("fetchOpenOrders", [symbol, since, limit]))

    async def fetch_closed_orders(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Your peer's filled, cancelled and expired orders, oldest first."""
        return list(await self.call("fetchClosedOrders", [symbol, since, limit]))

    async def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """The book with ``nonce`` = the answering peer's applied sequence."""
        return dict(await self.call("fetchOrderBook", [symbol, limit]))

    async def fetch_trades(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Public trades of a market, oldest first."""
        return list(await self.call("fetchTrades", [symbol, since, limit]))

    async def fetch_my_trades(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Your peer's fills, oldest first."""
        return list(await self.call("fetchMyTrades", [symbol, since, limit]))

    async def fetch_status(self) -> dict[str, Any]:
        """The answering peer's status: role, leader, members, applied sequence, digest."""
        return dict(await self.call("fetchStatus", []))

    async def fetch_statuses(self) -> list[dict[str, Any]]:
        """The status of every peer announced on the network (one request to each, at the
        same time); peers that do not answer are left out."""
        name = f"peerbook:{self.network}:rpc"
        try:
            settled = await self._rpc.map_settled(name, {"action": "fetchStatus", "args": []})
        except GrenacheError as exc:
            raise ExchangeNotAvailable(f"ExchangeNotAvailable: {exc}") from exc
        return [dict(s.result) for s in settled if s.error is None and isinstance(s.result, dict)]
