"""The embedded grape: the grape HTTP API on one machine, without a DHT.

It answers ``announce``, ``lookup``, ``put`` and ``get`` exactly as grenache-grape 1.0.0 run
with ``--dpa 120000`` does (the answers live in `peerbook.grenache.registry`), so Node Links
and our Link use it unchanged. It is the single-machine default; across machines, run real
Node grapes (see docs/grenache.md). It binds 127.0.0.1 unless told otherwise.
"""

import time
from collections.abc import Callable

from aiohttp import web

from peerbook.errors import RemoteProtocolError
from peerbook.grenache.protocol import loads_json
from peerbook.grenache.registry import GrapeAnswer, GrapeState
from peerbook.grenache.transport import listen, read_limited

__all__ = ["PAYLOAD_BYTES_MAX", "EmbeddedGrape"]

PAYLOAD_BYTES_MAX = 8192
"""Request bodies above this are refused with 413, as a grape's check_maxPayloadSize."""


class EmbeddedGrape:
    """An embedded grape server.

    Args:
        host: the address to bind (127.0.0.1 by default: the grape has no authentication).
        port: the API port; 0 picks a free one (see `port` after `start`).
        max_age_ms: record lifetime parameter, as the grape's ``--dpa``.
        clock: monotonic seconds, injectable for tests of expiry.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 30001,
        *,
        max_age_ms: int = 120_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self._max_age_ms = max_age_ms
        self._clock = clock
        self._state = GrapeState(max_age_ms)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The API's base URL, e.g. ``http://127.0.0.1:30001``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve. Raises OSError if the port is taken."""
        app = web.Application(client_max_size=PAYLOAD_BYTES_MAX)
        app.router.add_route("*", "/{verb:.*}", self._serve)
        self._runner, self.port = await listen(app, self.host, self.port)
        self._state = GrapeState(self._max_age_ms, own_port=self.port)

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.Response:
        answer = await self._answer(request)
        return web.Response(status=answer.status, body=answer.body)

    async def _answer(self, request: web.Request) -> GrapeAnswer:
        too_large = (request.content_length or 0) > PAYLOAD_BYTES_MAX
        body = None if too_large else await read_limited(request.content, PAYLOAD_BYTES_MAX)
        if body is None:
            return GrapeAnswer(413, b"ERR_GRAPE_PAYLOAD_SIZE")
        try:
            document = loads_json(body, "request body")
        except RemoteProtocolError:
            return GrapeAnswer(500, b"ERR_GRAPE_PAYLOAD_INVALID")
        if document is None:
            # What Node answers when it reads .data of a JSON null body.
            return GrapeAnswer(500, b"Cannot read properties of null (reading 'data')")
        data = document.get("data") if isinstance(document, dict) else None
        verb = request.raw_path[1:]
        now_ms = int(self._clock() * 1000)
        return self._state.handle(verb, data, request.remote or "127.0.0.1", now_ms)
