"""A JSON encoding of the Raft library's messages, so that no pickle crosses the network.

pysyncobj's own TCP transport pickles every message, and unpickling a frame from the network
runs whatever code the frame names (research note on the Raft library, section 4). Our
transport sends the same messages as JSON instead. The messages are dicts of ints, strings,
None, bytes (log entries, snapshot chunks), tuples (``(entry, index, term)``) and lists, so
a small tagged encoding is exact:

- None, booleans, integers, floats and strings stand for themselves;
- a list is a JSON array;
- ``{"b": BASE64}`` is bytes, ``{"t": [...]}`` a tuple, ``{"d": {...}}`` a dict with string
  keys; any other object is refused.

Decoding refuses anything else with `RemoteProtocolError`, and never builds an object other
than those types, whatever the input.
"""

import base64
import binascii
import json
from typing import Any

from peerbook.errors import RemoteProtocolError

__all__ = ["decode_message", "encode_message"]


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode()}
    if isinstance(value, tuple):
        return {"t": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"d": {k: _encode(v) for k, v in value.items()}}
    raise TypeError(f"cannot encode a {type(value).__name__} in a Raft message")


def _decode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        tag, inner = next(iter(value.items()))
        if tag == "b" and isinstance(inner, str):
            try:
                return base64.b64decode(inner, validate=True)
            except binascii.Error as exc:
                raise RemoteProtocolError("bad base64 in a Raft message") from exc
        if tag == "t" and isinstance(inner, list):
            return tuple(_decode(v) for v in inner)
        if tag == "d" and isinstance(inner, dict):
            return {k: _decode(v) for k, v in inner.items()}
    raise RemoteProtocolError(f"unknown value in a Raft message: {value!r:.60}")


def encode_message(message: Any) -> str:
    """The JSON text of a Raft message.

    Raises:
        TypeError: the message holds a type this encoding does not carry (a bug).
    """
    return json.dumps(_encode(message), separators=(",", ":"))


def decode_message(text: str | bytes) -> Any:
    """The Raft message ``text`` encodes.

    Raises:
        RemoteProtocolError: ``text`` is not a message of this encoding.
    """
    try:
        document = json.loads(text)
        return _decode(document)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"not a Raft message: {type(exc).__name__}") from exc
