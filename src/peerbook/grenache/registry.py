"""The embedded grape's state and answers, without I/O: service records and stored values.

`GrapeState.handle` takes one decoded grape API call and returns the HTTP status and body
that grenache-grape 1.0.0 would send (research note section 3.2), so `peerbook.grenache.grape`
only moves bytes, and these answers are tested without sockets.

Theory of operation, expiry: records behave like bittorrent-dht's record cache with
``maxAge`` 120 s (a grape run with ``--dpa 120000``): time is cut into ticks of
``ceil(2/3 * maxAge)`` = 80 s; an announce puts the record in the current tick's bucket; a
lookup sees the current and the previous bucket. So a record is visible for 80 to 160 s after
its last announce, as on a real grape. Time enters as ``now_ms`` arguments, never read here.

Mutable (signed) puts are verified and stored as a grape created with an Ed25519 verify
function does (a CLI-started grape has none and refuses them): a bad signature answers
``All queries failed``, a ``seq`` not above the stored one ``302 sequence number less than
current`` with HTTP status 302, a ``cas`` other than the stored ``seq`` ``301 CAS mismatch``
with status 301.
"""

import hashlib
import random
from collections import OrderedDict
from typing import NamedTuple

from peerbook.grenache.protocol import Json, dumps_json, immutable_key
from peerbook.grenache.signing import MutableItem, item_from_json, target_of, verify_item

__all__ = ["GrapeAnswer", "GrapeState"]

_LOOKUP_MAX = 100
_RECORDS_MAX = 10_000  # as bittorrent-dht's peer store: the oldest records go first
_VALUE_BYTES_MAX = 1000


class GrapeAnswer(NamedTuple):
    """What to send back: HTTP status and body (``b""`` means an empty body)."""

    status: int
    body: bytes


def _json(value: Json) -> bytes:
    return dumps_json(value)


def _error(message: str) -> GrapeAnswer:
    """Grape handler errors travel as status 200 with a JSON string body (section 3.1)."""
    return GrapeAnswer(200, _json(message))


class GrapeState:
    """Announced services and stored values of one embedded grape.

    Args:
        max_age_ms: the record lifetime parameter (``--dpa``); records live 2/3 to 4/3 of it.
        own_port: the port to publish when a service announces port 0 (a real grape
            publishes its own DHT port then; ours publishes its API port).
        rng: the source of lookup order (grapes answer in random order).
        values_max: how many stored values to keep (least recently used go first).
    """

    def __init__(
        self,
        max_age_ms: int = 120_000,
        own_port: int = 0,
        rng: random.Random | None = None,
        values_max: int = 5000,
    ) -> None:
        self._tick_ms = -(-2 * max_age_ms // 3)
        self._next_tick_ms: int | None = None
        self._current: dict[str, dict[str, None]] = {}
        self._previous: dict[str, dict[str, None]] = {}
        self._records = 0  # entries in both buckets (a refreshed record may be in both)
        self._own_port = own_port
        self._rng = rng or random.Random()
        self._values: OrderedDict[str, str | MutableItem] = OrderedDict()
        self._values_max = values_max
        seed = str(self._rng.random()).encode()
        self.node_id = hashlib.sha1(seed, usedforsecurity=False).hexdigest()

    def handle(self, verb: str, data: Json, source_ip: str, now_ms: int) -> GrapeAnswer:
        """Answer one call of the grape API.

        Args:
            verb: the request path without its leading slash.
            data: the ``data`` member of the request body (None when absent).
            source_ip: the caller's IP address, which is what gets published for announces.
            now_ms: the current time in milliseconds (any monotonic origin).
        """
        self._rotate(now_ms)
        if verb == "announce":
            return self._announce(data, source_ip)
        if verb == "lookup":
            return self._lookup(data)
        if verb == "put":
            return self._put(data)
        if verb == "get":
            return self._get(data)
        return _error("ERR_REQ_NOTFOUND")

    def _rotate(self, now_ms: int) -> None:
        if self._next_tick_ms is None:
            self._next_tick_ms = now_ms + self._tick_ms
        if now_ms >= self._next_tick_ms + self._tick_ms:
            self._previous, self._current = {}, {}
        elif now_ms >= self._next_tick_ms:
            self._previous, self._current = self._current, {}
        self._records = sum(map(len, self._current.values())) + sum(
            map(len, self._previous.values())
        )
        while now_ms >= self._next_tick_ms:
            self._next_tick_ms += self._tick_ms

    def _announce(self, data: Json, source_ip: str) -> GrapeAnswer:
        # The grape checks that data is an array, then that data[1] is an integer.
        if not isinstance(data, list):
            return _error("ERR_GRAPE_ANNOUNCE")
        port = data[1] if len(data) > 1 else None
        if isinstance(port, float) and port.is_integer():
            port = int(port)
        if type(port) is not int:
            return _error("ERR_GRAPE_SERVICE_PORT")
        name = data[0]
        if not isinstance(name, str):
            return _error("ERR_GRAPE_ANNOUNCE")  # a Node grape fails with a JavaScript error
        if port == 0:
            port = self._own_port
        if not 0 < port < 65536:
            return _error("All queries failed")
        self._current.setdefault(name, {})[f"{source_ip}:{port}"] = None
        self._records += 1
        while self._records > _RECORDS_MAX:
            self._evict_oldest()
        return GrapeAnswer(200, b"1")

    def _evict_oldest(self) -> None:
        bucket = self._previous or self._current
        name, peers = next(iter(bucket.items()))
        del peers[next(iter(peers))]
        if not peers:
            del bucket[name]
        self._records -= 1

    def _lookup(self, data: Json) -> GrapeAnswer:
        if not isinstance(data, str) or not data:
            return _error("ERR_GRAPE_LOOKUP")
        found = dict.fromkeys([*self._current.get(data, ()), *self._previous.get(data, ())])
        peers = list(found)
        self._rng.shuffle(peers)
        return GrapeAnswer(200, _json(peers[:_LOOKUP_MAX]))

    def _put(self, data: Json) -> GrapeAnswer:
        if isinstance(data, str):
            data = {"v": data}  # bittorrent-dht's put() takes a bare string as the value
        if not isinstance(data, dict) or not isinstance(data.get("v"), str):
            return _error("v must be a string in put()")
        value: str = data["v"]
        # The grape counts JavaScript string length (UTF-16 code units); the storing DHT
        # nodes then refuse values over 1000 bytes, so the grape answers "All queries failed".
        if len(value.encode("utf-16-le")) // 2 >= _VALUE_BYTES_MAX:
            return _error(f"v must be less than {_VALUE_BYTES_MAX} bytes in put()")
        if len(value.encode()) > _VALUE_BYTES_MAX:
            return _error("All queries failed")
        if "k" in data or "sig" in data:
            return self._put_mutable(data)
        return self._store(immutable_key(value), value)

    def _put_mutable(self, data: dict[str, Json]) -> GrapeAnswer:
        item = item_from_json(data)
        if item is None or not verify_item(item):
            return _error("All queries failed")  # every storing node refuses the item
        target = target_of(item.public_key, item.salt)
        stored = self._values.get(target)
        if isinstance(stored, MutableItem):
            cas = data.get("cas")
            if cas is not None and cas != stored.seq:
                return GrapeAnswer(301, _json("301 CAS mismatch"))
            if item.seq <= stored.seq:
                return GrapeAnswer(302, _json("302 sequence number less than current"))
        return self._store(target, item)

    def _store(self, target: str, value: str | MutableItem) -> GrapeAnswer:
        self._values[target] = value
        self._values.move_to_end(target)
        while len(self._values) > self._values_max:
            self._values.popitem(last=False)
        return GrapeAnswer(200, _json(target))

    def _get(self, data: Json) -> GrapeAnswer:
        if not isinstance(data, str | dict):
            return _error("ERR_GRAPE_GENERIC")
        target = data.get("hash") if isinstance(data, dict) else data
        if not isinstance(target, str) or target not in self._values:
            return GrapeAnswer(200, b"")
        value = self._values[target]
        self._values.move_to_end(target)
        reply: dict[str, Json] = {"id": self.node_id, "token": None}
        if isinstance(value, MutableItem):
            reply.update(k=value.public_key, sig=value.signature, seq=value.seq, v=value.value)
            if value.salt is not None:
                reply["salt"] = value.salt
        else:
            reply["v"] = value
        return GrapeAnswer(200, _json(reply))
