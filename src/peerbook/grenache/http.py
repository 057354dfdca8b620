"""Grenache RPC over HTTP: a server and a client, byte-compatible with grenache-nodejs-http.

Server: any method and path; ``[rid, key, payload]`` in, ``[rid, error, data]`` out with
status 200; gzip both ways under ``grc-compress``; a body that is too large, not gzip-able or
not a Grenache request is answered with an error status and a ``[rid|null, message, null]``
body, never with silence (a Node server stays silent, which hangs Node clients).

Client: `RpcClient.request` sends to one peer picked at random; if the connection cannot
even be opened, the peer is dropped from the lookup cache and the request goes to a
*different* peer; if a pooled connection dies before any reply byte, it is resent once.
`RpcClient.map` sends to every peer and, like Node, fails if any peer fails;
`RpcClient.map_settled` returns every peer's result or error. Every call has a timeout.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import aiohttp
from aiohttp import web

from peerbook.errors import (
    ClosedBeforeReplyError,
    ConnectFailedError,
    GrenacheError,
    RemoteProtocolError,
    RpcError,
    TransportError,
)
from peerbook.grenache import protocol
from peerbook.grenache.link import Link
from peerbook.grenache.protocol import Json
from peerbook.grenache.transport import new_session, post

__all__ = ["BODY_BYTES_MAX", "Handler", "RpcClient", "RpcServer", "Settled"]

_log = logging.getLogger(__name__)

BODY_BYTES_MAX = 64 * 1024
"""Default limit of a request or reply body, after decompression."""

Handler = Callable[[str, Json], Awaitable[Json]]
"""``handler(key, payload) -> data``; raise `RpcError` to answer with an error message."""


class RpcServer:
    """Serves Grenache RPC requests over HTTP.

    Args:
        handler: called once per request with the service key and payload.
        host, port: where to listen; port 0 picks a free one (see `port` after `start`).
        body_bytes_max: requests above this, raw or inflated, are refused unparsed (413).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        body_bytes_max: int = BODY_BYTES_MAX,
    ) -> None:
        self._handler = handler
        self.host = host
        self.port = port
        self._body_bytes_max = body_bytes_max
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve. Raises OSError if the port is taken."""
        app = web.Application(client_max_size=self._body_bytes_max)
        app.router.add_route("*", "/{path:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening and close connections (in-flight handlers are cancelled)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.Response:
        compressed = protocol.wants_gzip(request.headers.get("grc-compress"))
        status, body = await self._answer(request, compressed)
        return web.Response(status=status, body=protocol.pack_body(body, compressed))

    async def _answer(self, request: web.Request, compressed: bool) -> tuple[int, bytes]:
        limit = self._body_bytes_max
        if (request.content_length or 0) > limit:
            return 413, protocol.encode_reply(
                None, f"ERR_PAYLOAD_TOO_LARGE: over {limit} bytes", None
            )
        raw = await request.content.read(limit + 1)
        if len(raw) > limit:
            return 413, protocol.encode_reply(
                None, f"ERR_PAYLOAD_TOO_LARGE: over {limit} bytes", None
            )
        try:
            rpc = protocol.decode_request(protocol.unpack_body(raw, compressed, limit))
        except RemoteProtocolError as exc:
            return 400, protocol.encode_reply(None, f"ERR_BAD_REQUEST: {exc}", None)
        try:
            data = await self._handler(rpc.key, rpc.payload)
        except RpcError as exc:
            return 200, protocol.encode_reply(rpc.rid, str(exc), None)
        except Exception:
            _log.exception("handler failed on request %s for %s", rpc.rid, rpc.key)
            return 200, protocol.encode_reply(rpc.rid, "ERR_INTERNAL: the handler failed", None)
        return 200, protocol.encode_reply(rpc.rid, None, data)


class Settled(NamedTuple):
    """One peer's outcome in `RpcClient.map_settled`: its result, or the error it raised."""

    peer: str
    result: Json
    error: GrenacheError | None


class RpcClient:
    """Sends Grenache RPC requests over HTTP to peers found through a `Link`.

    Args:
        link: the grape client used for lookups.
        timeout_s: the default deadline of each call, from sending to the full reply.
        reply_bytes_max: replies above this (inflated) are refused.
        rng: the source of peer choice.
        session: an aiohttp session to share; the client makes (and closes) its own otherwise.
    """

    def __init__(
        self,
        link: Link,
        *,
        timeout_s: float = 10.0,
        reply_bytes_max: int = 16 * BODY_BYTES_MAX,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.link = link
        self._timeout_s = timeout_s
        self._reply_bytes_max = reply_bytes_max
        self._rng = rng or random.Random()
        self._session = session
        self._own_session = session is None

    async def request(
        self, name: str, payload: Json, *, timeout_s: float | None = None, compress: bool = False
    ) -> Json:
        """Send to one peer announced as ``name`` and return its data.

        A peer that cannot be connected to is forgotten and the request goes to another,
        until every looked-up peer was tried.

        Raises:
            RpcError: the service answered with an error; LookupEmptyError: no peer;
            RequestTimeoutError; TransportError; RemoteProtocolError.
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
        assert failure is not None
        raise failure

    async def map(
        self, name: str, payload: Json, *, timeout_s: float | None = None, compress: bool = False
    ) -> list[Json]:
        """Send to every peer announced as ``name``; their data in lookup order. Fails with
        the first error if any peer fails (Node's semantics; see `map_settled`)."""
        peers = await self.link.lookup(name)
        return list(
            await asyncio.gather(
                *(
                    self.send(p, name, payload, timeout_s=timeout_s, compress=compress)
                    for p in peers
                )
            )
        )

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

    async def send(
        self,
        peer: str,
        key: str,
        payload: Json,
        *,
        timeout_s: float | None = None,
        compress: bool = False,
    ) -> Json:
        """Send one request to one ``ip:port`` peer under service ``key``; its data.

        Resends once on a fresh connection if the connection closed before any reply byte.
        """
        host, port = protocol.parse_peer(peer)
        rid = protocol.new_rid()
        body = protocol.pack_body(protocol.encode_request(rid, key, payload), compress)
        headers = {"grc-compress": protocol.compress_header(compress)}
        if self._session is None:
            self._session = new_session()
        timeout = self._timeout_s if timeout_s is None else timeout_s
        url = f"http://{host}:{port}/"
        try:
            reply = await post(self._session, url, body, headers, timeout, self._reply_bytes_max)
        except ClosedBeforeReplyError:
            reply = await post(self._session, url, body, headers, timeout, self._reply_bytes_max)
        if reply.status != 200:
            text = reply.body[:300].decode("utf-8", errors="replace")
            raise RpcError(f"ERR_REQUEST_GENERIC: HTTP {reply.status} from {peer}: {text}")
        decoded = protocol.decode_reply(
            protocol.unpack_body(reply.body, compress, self._reply_bytes_max)
        )
        if decoded.rid != rid:
            raise RemoteProtocolError(f"{peer} answered request {rid} with rid {decoded.rid}")
        if decoded.error is not None:
            raise RpcError(decoded.error)
        return decoded.data

    async def close(self) -> None:
        """Close the session if the client made it."""
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None
