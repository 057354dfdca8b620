"""Grenache over WebSocket: RPC server and client, and pub/sub, as grenache-nodejs-ws speaks it.

RPC (research note section 6.1): the client connects to ``ws://host:port/ws`` and sends one
text frame ``[rid, key, payload]`` per request; the server answers each with a text frame
``[rid, error, data]``; replies are matched by rid, so many requests share one connection.
Unlike Node, an unparseable frame is answered with ``[null, "ERR_BAD_REQUEST: ...", null]``
rather than dropped, and every client call has a timeout.

Pub/sub (section 6.2): a publisher is a WebSocket server that sends each message, unchanged,
as one text frame to every connected socket; a subscriber connects and sends nothing. Unlike
Node's PeerSub, `Subscriber` reconnects with backoff and a fresh lookup when its publisher
goes away, and with ``fan_in`` it listens to every publisher of the name at once.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from socket import SHUT_RDWR

import aiohttp
from aiohttp import WSMsgType, web

from peerbook.errors import (
    ClosedBeforeReplyError,
    GrenacheError,
    RemoteProtocolError,
    RequestTimeoutError,
    RpcError,
)
from peerbook.grenache import protocol
from peerbook.grenache.client import PeerClient
from peerbook.grenache.link import Link
from peerbook.grenache.protocol import Json
from peerbook.grenache.service import Handler, answer
from peerbook.grenache.transport import Sessions, listen, ws_connect

__all__ = [
    "DRAIN_TIMEOUT_S",
    "MESSAGE_BYTES_MAX",
    "Publisher",
    "Subscriber",
    "WsRpcClient",
    "WsRpcServer",
]

_log = logging.getLogger(__name__)

MESSAGE_BYTES_MAX = 1 << 20
"""Largest WebSocket message accepted, either way."""
SEND_TIMEOUT_S = 2.0
"""A peer that does not take a frame within this long is too slow: its socket is closed."""
DRAIN_TIMEOUT_S = 10.0
"""How long a stopping WebSocket RPC server waits for the requests it is handling."""
IN_FLIGHT_MAX = 1024
"""Most requests one WebSocket may have waiting for the handler; more are refused."""


class _WsServer:
    """A WebSocket server on any path; subclasses say what to do with each socket."""

    def __init__(
        self,
        host: str,
        port: int,
        message_bytes_max: int = MESSAGE_BYTES_MAX,
        heartbeat_s: float | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._message_bytes_max = message_bytes_max
        self._heartbeat_s = heartbeat_s
        self._runner: web.AppRunner | None = None
        self._sockets: dict[web.WebSocketResponse, asyncio.Transport | None] = {}

    async def start(self) -> None:
        """Bind and serve. Raises OSError if the port is taken."""
        app = web.Application()
        app.router.add_route("GET", "/{path:.*}", self.upgrade)
        self._runner, self.port = await listen(app, self.host, self.port)

    async def stop(self) -> None:
        """Close every socket and stop listening."""
        await asyncio.gather(*(self._close(s) for s in list(self._sockets)))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def upgrade(self, request: web.Request) -> web.StreamResponse:
        """Serve ``request``'s WebSocket, on this server's port or on another server's (an
        HTTP RPC server hands it the upgrades it gets); `stop` closes it either way."""
        socket = web.WebSocketResponse(
            compress=False, max_msg_size=self._message_bytes_max, heartbeat=self._heartbeat_s
        )
        try:
            await socket.prepare(request)
        except ConnectionResetError:
            # The client gave up before the handshake was answered (its 2 s ran out while
            # this loop was busy, e.g. loading a snapshot): nothing to serve, nothing to log.
            # The half-prepared socket cannot be finished (aiohttp would log a traceback);
            # a plain response fails to be sent on the closed connection, quietly.
            return web.Response()
        self._sockets[socket] = request.transport
        try:
            await self._serve(socket)
        finally:
            self._sockets.pop(socket, None)
        return socket

    async def _serve(self, socket: web.WebSocketResponse) -> None:
        raise NotImplementedError

    def _abort(self, socket: web.WebSocketResponse) -> None:
        """Drop a peer at once, without the closing handshake a stalled peer would never
        complete."""
        transport = self._sockets.pop(socket, None)
        if transport is not None:
            transport.abort()

    async def _close(self, socket: web.WebSocketResponse) -> None:
        """Close a socket gracefully, or abort it if the peer does not take the close frame
        within `SEND_TIMEOUT_S`."""
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await socket.close()
        except (TimeoutError, ConnectionError):
            self._abort(socket)

    async def _send(self, socket: web.WebSocketResponse, text: str) -> bool:
        """Send one text frame within `SEND_TIMEOUT_S`; False, and the peer dropped, if it is
        gone or too slow to take it."""
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await socket.send_str(text)
        except (TimeoutError, ConnectionError):
            self._abort(socket)
            return False
        return True


async def _close(socket: aiohttp.ClientWebSocketResponse) -> None:
    """Close a client socket, giving up after `SEND_TIMEOUT_S`."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await socket.close()
    except (TimeoutError, ConnectionError):
        pass


class WsRpcServer(_WsServer):
    """Serves Grenache RPC requests over WebSocket; requests on one socket run concurrently.
    A message over ``message_bytes_max`` closes its socket (WebSocket code 1009) unparsed.
    With ``heartbeat_s``, each socket is pinged that often and closed if no pong comes
    within half of it, so a client cut off by a partition does not hold a socket forever.
    `stop` is graceful: requests already being handled are answered (for up to
    `DRAIN_TIMEOUT_S`) before the sockets close; requests arriving meanwhile are refused."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        message_bytes_max: int = MESSAGE_BYTES_MAX,
        heartbeat_s: float | None = None,
    ) -> None:
        super().__init__(host, port, message_bytes_max, heartbeat_s)
        self._handler = handler
        self._handling: set[asyncio.Task[None]] = set()
        self._draining = False

    async def stop(self) -> None:
        self._draining = True
        if self._handling:
            await asyncio.wait(set(self._handling), timeout=DRAIN_TIMEOUT_S)
        await super().stop()

    async def _serve(self, socket: web.WebSocketResponse) -> None:
        pending: set[asyncio.Task[None]] = set()
        async for message in socket:
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            data = message.data
            if isinstance(data, str):
                data = data.encode("utf-8", "surrogatepass")
            busy = None
            if self._draining:
                busy = "ERR_BUSY: the server is stopping"
            elif len(pending) >= IN_FLIGHT_MAX:
                busy = f"ERR_BUSY: more than {IN_FLIGHT_MAX} requests in flight on this socket"
            if busy is not None:
                await self._send(socket, protocol.encode_reply(None, busy, None).decode())
                continue
            task = asyncio.create_task(self._reply(socket, data))
            for tracker in (pending, self._handling):
                tracker.add(task)
                task.add_done_callback(tracker.discard)
        for task in pending:
            task.cancel()

    async def _reply(self, socket: web.WebSocketResponse, body: bytes) -> None:
        result = await answer(self._handler, body)
        if not socket.closed:
            await self._send(socket, result.body.decode())


class Publisher(_WsServer):
    """A pub/sub publisher: `publish` sends a message to every connected subscriber."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)

    @property
    def subscribers(self) -> int:
        """How many subscribers are connected now."""
        return len(self._sockets)

    async def publish(self, message: str) -> None:
        """Send ``message`` as one text frame to every connected subscriber. A subscriber whose
        socket fails, or that does not take the frame within `SEND_TIMEOUT_S`, is
        disconnected; the others still get it. So one stalled subscriber cannot block the feed."""
        sockets = [s for s in self._sockets if not s.closed]
        await asyncio.gather(*(self._send(s, message) for s in sockets))

    async def _serve(self, socket: web.WebSocketResponse) -> None:
        async for _ in socket:  # subscribers send nothing we need; wait for the close
            pass


class _Connection:
    """One client WebSocket to one peer, with the requests waiting for their replies."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.waiting: dict[str, asyncio.Future[protocol.RpcReply]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.socket:
                if message.type is not WSMsgType.TEXT:
                    continue
                try:
                    reply = protocol.decode_reply(message.data.encode())
                except RemoteProtocolError:
                    continue
                future = self.waiting.pop(reply.rid, None)
                if future is not None and not future.done():
                    future.set_result(reply)
        finally:
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(ClosedBeforeReplyError("the WebSocket closed"))
            self.waiting.clear()
            await _close(self.socket)

    @property
    def usable(self) -> bool:
        """Whether requests can still be sent on this connection."""
        return not self.socket.closed and not self.reader.done()


class WsRpcClient(PeerClient):
    """Sends Grenache RPC requests over WebSocket, one connection per peer.

    Args: as `peerbook.grenache.http.RpcClient`. ``compress`` is ignored: the WebSocket
    transport has no compression in Grenache.
    """

    def __init__(
        self,
        link: Link,
        *,
        timeout_s: float = 10.0,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(link, timeout_s=timeout_s, rng=rng)
        self._sessions = Sessions(session)
        self._connections: dict[str, _Connection] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._dropped: set[asyncio.Task[None]] = set()  # readers of dropped connections

    async def _connection(self, peer: str, timeout_s: float) -> _Connection:
        connection = self._connections.get(peer)
        if connection is not None and connection.usable:
            return connection
        async with self._opening.setdefault(peer, asyncio.Lock()):
            connection = self._connections.get(peer)
            if connection is None or not connection.usable:
                host, port = protocol.parse_peer(peer)
                url = f"ws://{host}:{port}/ws"
                socket = await ws_connect(self._sessions.get(), url, timeout_s, MESSAGE_BYTES_MAX)
                connection = self._connections[peer] = _Connection(socket)
            return connection

    async def send(
        self,
        peer: str,
        key: str,
        payload: Json,
        *,
        timeout_s: float | None = None,
        compress: bool = False,
    ) -> Json:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        connection = await self._connection(peer, timeout)
        rid = protocol.new_rid()
        future: asyncio.Future[protocol.RpcReply] = asyncio.get_running_loop().create_future()
        connection.waiting[rid] = future
        try:
            async with asyncio.timeout(timeout):  # writing too: a big frame waits for the peer
                await connection.socket.send_str(
                    protocol.encode_request(rid, key, payload).decode()
                )
                reply = await future
        except TimeoutError as exc:
            raise RequestTimeoutError(f"no reply from {peer} within {timeout:g} s") from exc
        except ConnectionError as exc:
            raise ClosedBeforeReplyError(f"the WebSocket to {peer} closed: {exc}") from exc
        finally:
            connection.waiting.pop(rid, None)
        if reply.error is not None:
            raise RpcError(reply.error)
        return reply.data

    def disconnect(self, peer: str) -> None:
        """Drop the connection to ``peer`` now, so that the next request opens a fresh one.

        For a caller that treats a request without a reply as a broken link: after a
        partition or a paused peer, a socket may look open while the kernel retransmits into
        the void with ever longer back-off. Requests still waiting on it fail. The socket is
        shut down at once rather than closed with a handshake, which a peer that is gone
        would hold for `SEND_TIMEOUT_S` (and unsent frames with it)."""
        connection = self._connections.pop(peer, None)
        if connection is not None:
            raw = connection.socket.get_extra_info("socket")
            if raw is not None:
                with contextlib.suppress(OSError):
                    raw.shutdown(SHUT_RDWR)
            connection.reader.cancel()
            self._dropped.add(connection.reader)
            connection.reader.add_done_callback(self._dropped.discard)

    async def close(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        self._opening.clear()
        for connection in connections:
            await _close(connection.socket)
            await asyncio.gather(connection.reader, return_exceptions=True)
        await asyncio.gather(*self._dropped, return_exceptions=True)
        await self._sessions.close()


class Subscriber:
    """Receives the messages of the publishers announced as ``name``.

    It connects to one publisher picked at random (or, with ``fan_in``, to every publisher,
    looking for new ones every ``refresh_s``), and when a connection ends it looks the name
    up again and reconnects, waiting ``backoff_s[0]`` doubling up to ``backoff_s[1]`` between
    failed attempts. Messages are read with `messages`; when the reader falls more than
    ``queue_max`` messages behind, the oldest are dropped and counted in `dropped`.
    """

    def __init__(
        self,
        link: Link,
        name: str,
        *,
        fan_in: bool = False,
        backoff_s: tuple[float, float] = (0.1, 5.0),
        refresh_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        queue_max: int = 100_000,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.link = link
        self.name = name
        self._fan_in = fan_in
        self._backoff_s = backoff_s
        self._refresh_s = refresh_s
        self._connect_timeout_s = connect_timeout_s
        self._rng = rng or random.Random()
        self._sessions = Sessions(session)
        self._queue: asyncio.Queue[str | bytes] = asyncio.Queue(queue_max)
        self._connected: dict[str, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None
        self.dropped = 0
        self.connections = 0

    def start(self) -> None:
        """Start connecting in the background."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())

    @property
    def publishers(self) -> list[str]:
        """The publishers this subscriber is connected to now."""
        return list(self._connected)

    async def receive(self) -> str | bytes:
        """The next message (text frames as str, binary as bytes); safe to cancel, e.g. with
        a timeout: no message is lost by a cancelled wait."""
        return await self._queue.get()

    async def messages(self) -> AsyncIterator[str | bytes]:
        """Every message received, in arrival order."""
        while True:
            yield await self.receive()

    async def _run(self) -> None:
        delay = self._backoff_s[0]
        while True:
            connections_before = self.connections
            try:
                peers = await self.link.lookup(self.name, fresh=True)
            except GrenacheError as exc:
                _log.info("subscriber %s: lookup failed: %s", self.name, exc)
                peers = []
            if not self._fan_in:
                peers = [self._rng.choice(peers)] if peers and not self._connected else []
            for peer in peers:
                if peer not in self._connected:
                    self._connected[peer] = asyncio.create_task(self._listen(peer))
            if self._connected:
                done, _ = await asyncio.wait(
                    self._connected.values(),
                    timeout=self._refresh_s if self._fan_in else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    continue
            if self.connections > connections_before:
                delay = self._backoff_s[0]  # a connection was made: start backing off afresh
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_s[1])

    async def _listen(self, peer: str) -> None:
        try:
            host, port = protocol.parse_peer(peer)
            url = f"ws://{host}:{port}/ws"
            socket = await ws_connect(
                self._sessions.get(), url, self._connect_timeout_s, MESSAGE_BYTES_MAX
            )
            self.connections += 1
            async with socket:
                async for message in socket:
                    if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                        self._deliver(message.data)
        except GrenacheError as exc:
            _log.info("subscriber %s: %s", self.name, exc)
            self.link.forget(self.name, peer)
        finally:
            self._connected.pop(peer, None)

    def _deliver(self, message: str | bytes) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    async def close(self) -> None:
        """Disconnect and stop reconnecting."""
        tasks = [t for t in (self._runner, *self._connected.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None
        self._connected.clear()
        await self._sessions.close()
