"""Client-side HTTP and WebSocket calls with deadlines: the one place where aiohttp's
exceptions become ours.

The Link (grape calls), the HTTP RPC client and the WebSocket clients all go through `post`
and `ws_connect`, so every Grenache call has a timeout and every network failure surfaces as
a `TransportError` subclass, never as an aiohttp type (style guide section 5: translate
foreign exceptions at exactly one boundary).
"""

import asyncio
from collections.abc import Mapping
from typing import NamedTuple

import aiohttp
from aiohttp import web

from peerbook.errors import (
    ClosedBeforeReplyError,
    ConnectFailedError,
    RequestTimeoutError,
    TransportError,
)

__all__ = [
    "IDLE_KEEPALIVE_S",
    "HttpReply",
    "Sessions",
    "listen",
    "new_session",
    "post",
    "read_limited",
    "ws_connect",
]

IDLE_KEEPALIVE_S = 4.0
"""How long an idle pooled connection is kept: below Node's 5 s keep-alive close, so we never
send on a connection the server is closing (research note section 3.1 and 11)."""


class HttpReply(NamedTuple):
    """Status and full body of an HTTP reply."""

    status: int
    body: bytes


async def read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body of ``stream``, or None as soon as it exceeds ``limit`` bytes (the
    rest is not read, so an oversized body costs at most ``limit`` bytes of memory)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


def new_session(connections_max: int = 256) -> aiohttp.ClientSession:
    """A client session whose pool retires idle connections before Node servers close them."""
    connector = aiohttp.TCPConnector(
        limit=connections_max, keepalive_timeout=IDLE_KEEPALIVE_S, enable_cleanup_closed=True
    )
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


class Sessions:
    """The client session of one Grenache client: the caller's, or one made on first use and
    closed with the client. Once closed it makes no other, so a call that races the client's
    close fails as unsent instead of leaving a session nobody closes (a soak saw one left by
    a peer that was leaving)."""

    def __init__(self, lent: aiohttp.ClientSession | None) -> None:
        self._session = lent
        self._own = lent is None
        self._closed = False

    def get(self) -> aiohttp.ClientSession:
        """The session to call with.

        Raises:
            ConnectFailedError: the client is closed.
        """
        if self._closed:
            raise ConnectFailedError("this Grenache client is closed")
        if self._session is None:
            self._session = new_session()
        return self._session

    async def close(self) -> None:
        """Close the session if it was made here; make none after."""
        self._closed = True
        session, self._session = self._session, None
        if self._own and session is not None:
            await session.close()


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout_s: float,
    reply_bytes_max: int,
) -> HttpReply:
    """POST ``body`` and read the whole reply within ``timeout_s`` seconds.

    Raises:
        RequestTimeoutError: no complete reply in time (the server may have processed it).
        ConnectFailedError: no connection: the request was not sent.
        ClosedBeforeReplyError: the connection closed before any reply byte.
        TransportError: any other network failure, or a reply over the limit.
    """
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(url, data=body, headers=headers) as response:
                data = await read_limited(response.content, reply_bytes_max)
                if data is None:
                    raise TransportError(f"reply from {url} exceeds {reply_bytes_max} bytes")
                return HttpReply(response.status, data)
    except TimeoutError as exc:
        raise RequestTimeoutError(f"no reply from {url} within {timeout_s:g} s") from exc
    except aiohttp.ClientConnectorError as exc:
        raise ConnectFailedError(f"cannot connect to {url}: {exc.os_error}") from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise ClosedBeforeReplyError(f"{url} closed the connection before replying") from exc
    except aiohttp.ClientError as exc:
        raise TransportError(f"request to {url} failed: {exc!r}") from exc


async def ws_connect(
    session: aiohttp.ClientSession, url: str, timeout_s: float, message_bytes_max: int
) -> aiohttp.ClientWebSocketResponse:
    """Open a WebSocket to ``url`` within ``timeout_s`` seconds (no compression extension,
    as the Node servers negotiate none).

    Raises:
        ConnectFailedError: no connection or the handshake was refused.
        RequestTimeoutError: the handshake did not finish in time.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await session.ws_connect(
                url, autoping=True, compress=0, max_msg_size=message_bytes_max
            )
    except TimeoutError as exc:
        raise RequestTimeoutError(f"no WebSocket handshake with {url} in {timeout_s:g} s") from exc
    except (aiohttp.ClientConnectorError, aiohttp.WSServerHandshakeError) as exc:
        raise ConnectFailedError(f"cannot open a WebSocket to {url}: {exc!r}") from exc
    except aiohttp.ClientError as exc:
        raise TransportError(f"WebSocket to {url} failed: {exc!r}") from exc


SHUTDOWN_GRACE_S = 3.0
"""How long a stopping server lets requests in flight finish (aiohttp's default is 60 s).
A write that is still waiting for its commit then is cut off: its client sees an unknown
outcome and retries with the same client order id, which is safe. Found by the soak: a peer
that had left its network took over 20 s to stop, its API draining writes that could no
longer commit."""


async def listen(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); the runner (to clean up) and the
    port bound. Raises OSError if the port is taken. No access log, no signal handling:
    the process that embeds a server decides how it stops."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])
