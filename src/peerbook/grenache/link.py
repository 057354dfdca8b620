"""Link: the client of one grape's HTTP API (announce, lookup, put, get) and re-announcing.

Better than the Node Link in the ways the research note (section 11) asks, on the same wire:
every call has a timeout; error strings that the grape sends with status 200 raise
`GrapeError` subclasses instead of passing for results; announce failures are surfaced;
lookups are cached briefly but an empty answer is never cached, and a peer that failed can be
dropped from the cache at once; services re-announce every ``announce_interval_s`` (30 s by
default, with ±25 % jitter), well inside the 80 s minimum lifetime of a record, and retry
within a second when an announce fails.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peerbook.errors import GrenacheError
from peerbook.grenache import protocol, signing
from peerbook.grenache.protocol import Json
from peerbook.grenache.transport import Sessions, post

__all__ = ["Link"]

_log = logging.getLogger(__name__)

_GRAPE_REPLY_BYTES_MAX = 1 << 20
_HEADERS = {"Content-Type": "application/json"}


class Link:
    """A client of one grape.

    Args:
        grape: the grape's base URL, e.g. ``http://127.0.0.1:30001``.
        timeout_s: the deadline of each grape call.
        lookup_cache_s: how long a non-empty lookup answer is reused.
        announce_interval_s: mean time between re-announces of `start_announcing`.
        rng: the source of re-announce jitter (inject a seeded one in tests).
        session: an aiohttp session to share; the Link makes (and closes) its own otherwise.
        clock: monotonic seconds, for the lookup cache.
    """

    def __init__(
        self,
        grape: str,
        *,
        timeout_s: float = 5.0,
        lookup_cache_s: float = 2.0,
        announce_interval_s: float = 30.0,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grape = grape.rstrip("/")
        self._timeout_s = timeout_s
        self._lookup_cache_s = lookup_cache_s
        self._announce_interval_s = announce_interval_s
        self._rng = rng or random.Random()
        self._sessions = Sessions(session)
        self._clock = clock
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._announcers: dict[tuple[str, int], asyncio.Task[None]] = {}

    async def _call(self, verb: str, data: Json) -> tuple[int, bytes]:
        reply = await post(
            self._sessions.get(),
            f"{self.grape}/{verb}",
            protocol.encode_grape_request(data),
            _HEADERS,
            self._timeout_s,
            _GRAPE_REPLY_BYTES_MAX,
        )
        return reply.status, reply.body

    async def announce(self, name: str, port: int) -> int:
        """Announce that ``port`` on this host serves ``name``; how many DHT nodes stored it.

        Raises:
            AnnounceError: the grape did not store it; TransportError: grape unreachable.
        """
        status, body = await self._call("announce", [name, port])
        return protocol.interpret_announce(status, body)

    async def lookup(self, name: str, *, fresh: bool = False) -> list[str]:
        """The ``ip:port`` peers announced under ``name``, from the cache unless ``fresh``.

        Raises:
            LookupEmptyError: nobody announced ``name``; GrapeError, TransportError.
        """
        cached = self._cache.get(name)
        now = self._clock()
        if cached is not None and not fresh and now - cached[0] < self._lookup_cache_s:
            return list(cached[1])
        status, body = await self._call("lookup", name)
        peers = protocol.interpret_lookup(name, status, body)
        self._cache[name] = (now, peers)
        return list(peers)

    def forget(self, name: str, peer: str) -> None:
        """Drop ``peer`` from the cached lookup of ``name`` (it failed; don't pick it again)."""
        cached = self._cache.get(name)
        if cached is not None:
            remaining = [p for p in cached[1] if p != peer]
            if remaining:
                self._cache[name] = (cached[0], remaining)
            else:
                del self._cache[name]

    async def put(self, value: str) -> str:
        """Store an immutable value (under 1000 bytes); returns its 40-hex DHT target."""
        status, body = await self._call("put", {"v": value})
        target = protocol.interpret_grape_reply("put", status, body)
        expected = protocol.immutable_key(value)
        if target != expected:
            raise GrenacheError(f"grape stored the value under {target!r:.60}, not {expected}")
        return expected

    async def get(self, target: str) -> str | None:
        """The immutable value stored under ``target``, or None if the grape has none."""
        status, body = await self._call("get", target)
        item = protocol.interpret_grape_reply("get", status, body)
        if item is None:
            return None
        value = item.get("v") if isinstance(item, dict) else None
        if not isinstance(value, str) or protocol.immutable_key(value) != target:
            raise GrenacheError(f"grape returned a value that does not hash to {target}")
        return value

    async def put_mutable(
        self,
        private_key: Ed25519PrivateKey,
        value: str,
        seq: int,
        *,
        salt: str | None = None,
        cas: int | None = None,
    ) -> str:
        """Store ``value`` signed with ``private_key`` at version ``seq`` (above the stored
        one) under ``salt``; returns the 40-hex target. With ``cas``, only if the stored seq
        is ``cas``. CLI-started Node grapes refuse mutable puts (``All queries failed``).

        Raises:
            GrapeError: refused; ``status`` 302 for a stale seq, 301 for a CAS mismatch.
        """
        item = signing.sign_item(private_key, value, seq, salt)
        data: dict[str, Json] = {
            "v": value,
            "seq": seq,
            "k": item.public_key,
            "sig": item.signature,
        }
        if salt is not None:
            data["salt"] = salt
        if cas is not None:
            data["cas"] = cas
        status, body = await self._call("put", data)
        target = protocol.interpret_grape_reply("put", status, body)
        expected = signing.target_of(item.public_key, salt)
        if target != expected:
            raise GrenacheError(f"grape stored the item under {target!r:.60}, not {expected}")
        return expected

    async def get_mutable(
        self, public_key: str, salt: str | None = None
    ) -> signing.MutableItem | None:
        """The item of ``public_key`` (64 hex) and ``salt``, its signature checked, or None."""
        target = signing.target_of(public_key, salt)
        query: Json = {"hash": target, "salt": salt} if salt is not None else target
        status, body = await self._call("get", query)
        reply = protocol.interpret_grape_reply("get", status, body)
        if reply is None:
            return None
        item = signing.item_from_json(reply)
        if item is None or item.public_key != public_key or not signing.verify_item(item):
            raise GrenacheError(f"grape returned an item for {target} that does not verify")
        return item

    async def start_announcing(self, name: str, port: int, *, required: bool = True) -> None:
        """Announce now, then keep re-announcing in the background until `stop_announcing`
        or `close`. A first announce that fails raises if ``required``; otherwise it is
        logged and retried within a second (a service restarting while its grape is down
        or slow serves anyway, and shows up once the grape answers)."""
        retry_s = self._announce_interval_s
        try:
            await self.announce(name, port)
        except GrenacheError as exc:
            if required:
                raise
            _log.warning("announce of %s on port %d failed, retrying: %s", name, port, exc)
            retry_s = min(1.0, retry_s)
        key = (name, port)
        if key not in self._announcers:
            self._announcers[key] = asyncio.create_task(self._reannounce(name, port, retry_s))

    async def stop_announcing(self, name: str, port: int) -> None:
        """Stop re-announcing. Grenache has no unannounce: the record fades in 80-160 s."""
        task = self._announcers.pop((name, port), None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _reannounce(self, name: str, port: int, interval: float) -> None:
        while True:
            await asyncio.sleep(interval * self._rng.uniform(0.75, 1.25))
            try:
                await self.announce(name, port)
                interval = self._announce_interval_s
            except GrenacheError as exc:
                _log.warning("re-announce of %s on port %d failed: %s", name, port, exc)
                interval = min(1.0, self._announce_interval_s)

    async def close(self) -> None:
        """Stop every announcer and close the session if the Link made it."""
        for name, port in list(self._announcers):
            await self.stop_announcing(name, port)
        await self._sessions.close()
