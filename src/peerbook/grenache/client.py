"""PeerClient: what every Grenache RPC client does, whatever its transport.

`request` sends to one peer picked at random and, when a peer cannot even be connected to,
forgets it and tries a *different* one; `map` sends to every peer and fails if any fails
(Node's semantics); `map_settled` returns every peer's result or error. A transport supplies
only `send` (one request to one peer) and `close`.
"""

import asyncio
import random
from typing import NamedTuple

from peerbook.errors import ConnectFailedError, GrenacheError, TransportError
from peerbook.grenache.link import Link
from peerbook.grenache.protocol import Json

__all__ = ["PeerClient", "Settled"]


class Settled(NamedTuple):
    """One peer's outcome in `PeerClient.map_settled`: its result, or the error it raised."""

    peer: str
    result: Json
    error: GrenacheError | None


class PeerClient:
    """Base of the RPC clients; subclasses implement `send` and `close`.

    Args:
        link: the grape client used for lookups.
        timeout_s: the default deadline of each call, from sending to the full reply.
        rng: the source of peer choice.
    """

    def __init__(self, link: Link, *, timeout_s: float = 10.0, rng: random.Random | None = None):
        self.link = link
        self.timeout_s = timeout_s
        self._rng = rng or random.Random()

    async def send(
        self,
        peer: str,
        key: str,
        payload: Json,
        *,
        timeout_s: float | None = None,
        compress: bool = False,
    ) -> Json:
        """Send one request to the ``ip:port`` peer under service ``key``; its data.

        Raises:
            RpcError: the service answered with an error; ConnectFailedError: no
            connection (the request was not sent); RequestTimeoutError; TransportError;
            RemoteProtocolError.
        """
        raise NotImplementedError

    async def close(self) -> None:
        """Release the transport's connections."""
        raise NotImplementedError

    async def request(
        self, name: str, payload: Json, *, timeout_s: float | None = None, compress: bool = False
    ) -> Json:
        """Send to one peer announced as ``name`` and return its data; a peer that cannot be
        connected to is forgotten and the request goes to another, until all were tried.

        Raises:
            LookupEmptyError: nobody is announced as ``name``; the errors of `send`.
        """
        peers = await self.link.lookup(name)
        self._rng.shuffle(peers)
        failure: TransportError | None = None
        for peer in peers:
            try:
                return await self.send(peer, name, payload, timeout_s=timeout_s, compress=compress)
            except ConnectFailedError as exc:
                self.link.forget(name, peer)
                failure = exc
        assert failure is not None  # lookup never returns an empty list
        raise failure

    async def map(
        self, name: str, payload: Json, *, timeout_s: float | None = None, compress: bool = False
    ) -> list[Json]:
        """Send to every peer announced as ``name``; their data in lookup order. Fails with
        the first error if any peer fails (Node's semantics; see `map_settled`)."""
        peers = await self.link.lookup(name)
        sends = [
            asyncio.ensure_future(
                self.send(p, name, payload, timeout_s=timeout_s, compress=compress)
            )
            for p in peers
        ]
        try:
            return list(await asyncio.gather(*sends))
        except BaseException:
            for send in sends:  # the map failed: don't leave the other requests running
                send.cancel()
            await asyncio.gather(*sends, return_exceptions=True)
            raise

    async def map_settled(
        self, name: str, payload: Json, *, timeout_s: float | None = None, compress: bool = False
    ) -> list[Settled]:
        """Send to every peer announced as ``name``; each peer's result or error, in lookup
        order. Raises only if the lookup itself fails."""
        peers = await self.link.lookup(name)

        async def one(peer: str) -> Settled:
            try:
                data = await self.send(peer, name, payload, timeout_s=timeout_s, compress=compress)
            except GrenacheError as exc:
                return Settled(peer, None, exc)
            return Settled(peer, data, None)

        return list(await asyncio.gather(*(one(p) for p in peers)))
