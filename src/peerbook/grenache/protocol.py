"""Grenache wire formats, without I/O: RPC envelopes, grc-compress, and the grape HTTP API.

Everything here is a pure function over bytes and JSON values, so the protocol is tested
without sockets; `peerbook.grenache.http`, `link` and `grape` only move the bytes.
Sections cited are those of the research note ``shared/research/grenache-protocol.md``.

RPC over HTTP (section 5): the request body is the compact JSON array ``[rid, key, payload]``,
the reply body ``[rid, error, data]`` with ``error`` null or a message string. With the
``grc-compress: gzip`` header both bodies are gzipped; ``Content-Encoding`` is never used,
because Node clients would then decode twice (section 5.3).

Grape API (section 3): ``POST /<verb>`` with ``{"rid": ..., "data": ...}``. Errors mostly come
back as status 200 with a JSON string body, which `interpret_grape_reply` turns into
`GrapeError` so that a caller cannot mistake an error for a result.
"""

import gzip
import hashlib
import json
import uuid
import zlib
from typing import Any, NamedTuple

from peerbook.errors import AnnounceError, GrapeError, LookupEmptyError, RemoteProtocolError

__all__ = [
    "GRAPE_VERBS",
    "Json",
    "RpcReply",
    "RpcRequest",
    "compress_header",
    "decode_reply",
    "decode_request",
    "dumps_json",
    "encode_grape_request",
    "encode_reply",
    "encode_request",
    "immutable_key",
    "interpret_announce",
    "interpret_grape_reply",
    "interpret_lookup",
    "loads_json",
    "new_rid",
    "pack_body",
    "parse_peer",
    "unpack_body",
    "wants_gzip",
]

Json = Any
"""A JSON value as the standard library decodes it (dict, list, str, int, float, bool, None)."""

GRAPE_VERBS = ("announce", "lookup", "put", "get")


def new_rid() -> str:
    """A fresh request id: a UUID v4 string, as the Node clients send."""
    return str(uuid.uuid4())


def dumps_json(value: Json) -> bytes:
    """Compact JSON, UTF-8 unescaped, as Node's JSON.stringify writes it. A string holding a
    lone surrogate (which JSON can carry as an escape but UTF-8 cannot encode) makes the whole
    document fall back to ASCII escapes, as JSON.stringify escapes lone surrogates."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def loads_json(data: bytes | str, what: str) -> Json:
    """Parse JSON from a peer. Raises RemoteProtocolError, whatever was wrong with it
    (including nesting deep enough to exhaust the parser's recursion limit)."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RemoteProtocolError(f"{what} is not JSON: {type(exc).__name__}") from exc


class RpcRequest(NamedTuple):
    """A decoded RPC request: request id, service key and payload."""

    rid: str
    key: str
    payload: Json


class RpcReply(NamedTuple):
    """A decoded RPC reply: the request id it answers, an error message or None, the data."""

    rid: str
    error: str | None
    data: Json


def encode_request(rid: str, key: str, payload: Json) -> bytes:
    """The body of an RPC request."""
    return dumps_json([rid, key, payload])


def encode_reply(rid: str | None, error: str | None, data: Json) -> bytes:
    """The body of an RPC reply (``rid`` None only when the request's rid was unreadable)."""
    return dumps_json([rid, error, None if error is not None else data])


def _load_array(body: bytes, what: str) -> list[Json]:
    value = loads_json(body, what)
    if not isinstance(value, list) or len(value) != 3:
        raise RemoteProtocolError(f"{what} is not a JSON array of three elements")
    return value


def decode_request(body: bytes) -> RpcRequest:
    """Parse ``[rid, key, payload]``. Raises RemoteProtocolError for anything else."""
    rid, key, payload = _load_array(body, "request body")
    if not isinstance(rid, str) or not isinstance(key, str):
        raise RemoteProtocolError("request rid and key must be strings")
    return RpcRequest(rid, key, payload)


def decode_reply(body: bytes) -> RpcReply:
    """Parse ``[rid, error, data]``. Raises RemoteProtocolError for anything else."""
    rid, error, data = _load_array(body, "reply body")
    if not isinstance(rid, str) or not (error is None or isinstance(error, str)):
        raise RemoteProtocolError("reply rid must be a string and error a string or null")
    return RpcReply(rid, error, data)


def wants_gzip(header: str | None) -> bool:
    """Whether a ``grc-compress`` header value asks for gzip (Node checks 'contains')."""
    return header is not None and "gzip" in header


def compress_header(compress: bool) -> str:
    """The ``grc-compress`` header value a client sends."""
    return "gzip" if compress else "none"


def pack_body(body: bytes, compress: bool) -> bytes:
    """A body as it goes on the wire: gzipped when compression was asked for."""
    return gzip.compress(body, compresslevel=6, mtime=0) if compress else body


def unpack_body(body: bytes, compressed: bool, limit: int) -> bytes:
    """A body as received: gunzipped when compressed, falling back to the raw bytes when it
    is not gzip (as the Node server does). Refuses to inflate beyond ``limit`` bytes, so a
    small gzip bomb cannot exhaust memory.

    Raises:
        RemoteProtocolError: the inflated body exceeds ``limit``.
    """
    if not compressed:
        return body
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        return body
    if len(data) > limit or inflater.unconsumed_tail:
        raise RemoteProtocolError(f"gzip body inflates beyond {limit} bytes")
    return data


def parse_peer(entry: object) -> tuple[str, int]:
    """A lookup entry ``"ip:port"`` as (host, port). Raises RemoteProtocolError."""
    if not isinstance(entry, str):
        raise RemoteProtocolError(f"lookup entry {entry!r:.60} is not a string")
    host, _, port = entry.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RemoteProtocolError(f"lookup entry {entry!r:.60} is not host:port")
    return host, int(port)


def encode_grape_request(data: Json) -> bytes:
    """The body of a grape API call: ``{"rid": uuid4, "data": data}``."""
    return dumps_json({"rid": new_rid(), "data": data})


def interpret_grape_reply(verb: str, status: int, body: bytes) -> Json:
    """The result of a grape API call, or GrapeError.

    Non-2xx statuses carry the error as plain text or a JSON string; 2xx bodies are JSON,
    an empty body meaning None (``get`` of a missing hash). A 2xx JSON *string* is an error
    for every verb except ``put`` (whose result is a 40-hex target) and ``get``.
    """
    text = body.decode("utf-8", errors="replace")
    if not 200 <= status < 300:
        raise GrapeError(f"grape {verb} failed with HTTP {status}: {text.strip():.200}", status)
    if not body.strip():
        return None
    value = loads_json(body, f"grape {verb} reply")
    if isinstance(value, str) and not (verb == "put" and _is_hex40(value)):
        raise GrapeError(f"grape {verb} failed: {value:.200}", status)
    return value


def interpret_announce(status: int, body: bytes) -> int:
    """How many DHT nodes stored the announcement (at least 1), or AnnounceError."""
    try:
        value = interpret_grape_reply("announce", status, body)
    except GrapeError as exc:
        raise AnnounceError(str(exc), exc.status) from exc
    if type(value) is not int or value < 1:
        raise AnnounceError(f"grape announce stored on no node (reply {value!r:.60})", status)
    return value


def interpret_lookup(name: str, status: int, body: bytes) -> list[str]:
    """The ``ip:port`` entries announced under ``name``; LookupEmptyError if there are none."""
    value = interpret_grape_reply("lookup", status, body)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RemoteProtocolError(f"grape lookup reply is not a list of strings: {value!r:.100}")
    if not value:
        raise LookupEmptyError(f"no peer is announced as {name!r}", status)
    return value


def _is_hex40(value: str) -> bool:
    return len(value) == 40 and all(c in "0123456789abcdef" for c in value)


def immutable_key(value: str) -> str:
    """The DHT target of an immutable put: SHA-1 of the bencoded value (BEP 44)."""
    raw = value.encode()
    return hashlib.sha1(str(len(raw)).encode() + b":" + raw, usedforsecurity=False).hexdigest()
