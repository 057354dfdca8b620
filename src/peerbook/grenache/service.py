"""Answering one RPC request body, whatever transport carried it (HTTP or WebSocket).

Decoding, calling the handler and encoding the reply are the same for both transports; only
how the bytes travel differs. A handler answers with data, or raises `RpcError` to answer
with that message; any other exception is a bug in the handler, logged here and answered
with ``ERR_INTERNAL`` so that the caller is never left waiting.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from peerbook.errors import RemoteProtocolError, RpcError
from peerbook.grenache import protocol
from peerbook.grenache.protocol import Json

__all__ = ["Answer", "Handler", "answer"]

_log = logging.getLogger(__name__)

Handler = Callable[[str, Json], Awaitable[Json]]
"""``handler(key, payload) -> data``; raise `RpcError` to answer with an error message."""


class Answer(NamedTuple):
    """A reply body, and whether the request was well-formed (HTTP answers 400 if not)."""

    well_formed: bool
    body: bytes


async def answer(handler: Handler, body: bytes) -> Answer:
    """The reply to one request body ``[rid, key, payload]`` (already decompressed)."""
    try:
        rpc = protocol.decode_request(body)
    except RemoteProtocolError as exc:
        return Answer(False, protocol.encode_reply(None, f"ERR_BAD_REQUEST: {exc}", None))
    try:
        data = await handler(rpc.key, rpc.payload)
    except RpcError as exc:
        return Answer(True, protocol.encode_reply(rpc.rid, str(exc), None))
    except Exception:
        _log.exception("handler failed on request %s for %s", rpc.rid, rpc.key)
        return Answer(
            True, protocol.encode_reply(rpc.rid, "ERR_INTERNAL: the handler failed", None)
        )
    return Answer(True, protocol.encode_reply(rpc.rid, None, data))
