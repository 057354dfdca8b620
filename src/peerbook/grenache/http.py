"""Grenache RPC over HTTP: a server and a client, byte-compatible with grenache-nodejs-http.

Server: any method and path; ``[rid, key, payload]`` in, ``[rid, error, data]`` out with
status 200; gzip both ways under ``grc-compress``; a body that is too large or not a Grenache
request is answered with an error status (413, 400) and a ``[null, message, null]`` body,
never with silence (a Node server stays silent, which hangs Node clients).

Client: `RpcClient.send` posts one request with a deadline. It is never resent by this layer
(a server may have run it even if the connection then closed without a reply); instead, idle
pooled connections are retired after 4 s, before Node servers close them at 5 s, so a
request is not written onto a connection the server is closing. Peer choice, `request`,
`map` and `map_settled` come from `peerbook.grenache.client.PeerClient`.
"""

import random
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from peerbook.errors import ConnectFailedError, RemoteProtocolError, RpcError
from peerbook.grenache import protocol
from peerbook.grenache.client import PeerClient
from peerbook.grenache.link import Link
from peerbook.grenache.protocol import Json
from peerbook.grenache.service import Handler, answer
from peerbook.grenache.transport import Sessions, listen, post, read_limited

__all__ = ["BODY_BYTES_MAX", "RpcClient", "RpcServer"]

BODY_BYTES_MAX = 64 * 1024
"""Default limit of a request body, raw and after decompression."""
_NO_SERVICE = (404, 405)  # what an HTTP server that is no Grenache service answers a POST


Upgrade = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""Serves a WebSocket upgrade request (`WsRpcServer.upgrade`)."""


class RpcServer:
    """Serves Grenache RPC requests over HTTP.

    Args:
        handler: called once per request with the service key and payload.
        host, port: where to listen; port 0 picks a free one (see `port` after `start`).
        body_bytes_max: requests above this, raw or inflated, are refused unparsed (413).
        upgrade: serves the WebSocket upgrade requests that come to this port, so that one
            announced name answers both transports: a grenache-nodejs-ws client looking up
            an HTTP server's name connects to ``ws://HOST:PORT/ws`` (refused with HTTP 400
            without it, which that client does not survive).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        body_bytes_max: int = BODY_BYTES_MAX,
        upgrade: Upgrade | None = None,
    ) -> None:
        self._handler = handler
        self.host = host
        self.port = port
        self._body_bytes_max = body_bytes_max
        self._upgrade = upgrade
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve. Raises OSError if the port is taken."""
        app = web.Application(client_max_size=self._body_bytes_max)
        app.router.add_route("*", "/{path:.*}", self._serve)
        self._runner, self.port = await listen(app, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and close connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        if (
            self._upgrade is not None
            and request.method == "GET"
            and request.headers.get("Upgrade", "").lower() == "websocket"
        ):
            return await self._upgrade(request)
        compressed = protocol.wants_gzip(request.headers.get("grc-compress"))
        status, body = await self._answer(request, compressed)
        # Only a 200 reply is gzipped: Node clients decompress nothing else, and must be able
        # to read why their request was refused.
        return web.Response(
            status=status, body=protocol.pack_body(body, compressed and status == 200)
        )

    async def _answer(self, request: web.Request, compressed: bool) -> tuple[int, bytes]:
        limit = self._body_bytes_max
        too_large = (request.content_length or 0) > limit
        raw = None if too_large else await read_limited(request.content, limit)
        if raw is None:
            message = f"ERR_PAYLOAD_TOO_LARGE: the body exceeds {limit} bytes"
            return 413, protocol.encode_reply(None, message, None)
        try:
            body = protocol.unpack_body(raw, compressed, limit)
        except RemoteProtocolError as exc:
            return 413, protocol.encode_reply(None, f"ERR_PAYLOAD_TOO_LARGE: {exc}", None)
        result = await answer(self._handler, body)
        return (200 if result.well_formed else 400), result.body


class RpcClient(PeerClient):
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
        super().__init__(link, timeout_s=timeout_s, rng=rng)
        self._reply_bytes_max = reply_bytes_max
        self._sessions = Sessions(session)

    async def send(
        self,
        peer: str,
        key: str,
        payload: Json,
        *,
        timeout_s: float | None = None,
        compress: bool = False,
    ) -> Json:
        host, port = protocol.parse_peer(peer)
        rid = protocol.new_rid()
        body = protocol.pack_body(protocol.encode_request(rid, key, payload), compress)
        headers = {"grc-compress": protocol.compress_header(compress)}
        session = self._sessions.get()
        timeout = self.timeout_s if timeout_s is None else timeout_s
        url = f"http://{host}:{port}/"
        limit = self._reply_bytes_max
        reply = await post(session, url, body, headers, timeout, limit)
        if reply.status != 200:
            text = reply.body[:300].decode("utf-8", errors="replace")
            if reply.status in _NO_SERVICE:
                # Something else serves that port now (a restarted peer's stale announcement,
                # its port reused): the request reached no handler.
                raise ConnectFailedError(f"no Grenache service at {peer} (HTTP {reply.status})")
            raise RpcError(f"ERR_REQUEST_GENERIC: HTTP {reply.status} from {peer}: {text}")
        decoded = protocol.decode_reply(protocol.unpack_body(reply.body, compress, limit))
        if decoded.rid != rid:
            raise RemoteProtocolError(f"{peer} answered request {rid} with rid {decoded.rid}")
        if decoded.error is not None:
            raise RpcError(decoded.error)
        return decoded.data

    async def close(self) -> None:
        await self._sessions.close()
