"""Authentication of writes (contract section 8): HMAC-SHA384 signatures and one-time nonces.

A write carries ``auth: {"key", "nonce", "signature"}``. The nonce is the client's clock in
microseconds (a decimal string); it is accepted once, within `NONCE_WINDOW_S` of this peer's
clock, so concurrent requests may arrive in any order while a replayed request is refused.
Accepted nonces are appended to a file in the data directory before the write proceeds, so a
restarted peer still refuses a replay of a request it accepted before it stopped. The file is
flushed to the operating system on every accepted nonce (it survives a process crash) and
rewritten with only the live nonces when it grows.

In memory a nonce is kept for two windows (`_KEEP_US`) and then forgotten as later ones
arrive: one window is all the clock check needs, the second still refuses a replay after this
peer's clock was stepped back by up to a window. (Until session 9 they were forgotten only
when the file was rewritten, every 100,000 nonces: a heap probe under load found that dict
the largest thing growing in a peer.)
"""

import contextlib
import hashlib
import heapq
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from peerbook.node.datadir import Credentials

__all__ = ["NONCE_WINDOW_S", "AuthenticationFailed", "Authenticator", "canonical", "sign"]

NONCE_WINDOW_S = 60
_WINDOW_US = NONCE_WINDOW_S * 1_000_000
_NONCE_DIGITS_MAX = 20
_KEEP_US = 2 * _WINDOW_US
_COMPACT_EVERY = 100_000


class AuthenticationFailed(Exception):
    """The write is not authenticated; the message says why (without revealing secrets)."""


class NonceNotRecorded(Exception):
    """The nonce file could not be written (this peer's disk): the write is refused, since a
    nonce that a restart forgets could be replayed, and nothing is applied."""


def canonical(args: Any) -> str:
    """The canonical JSON of ``args`` that a signature covers (section 8)."""
    return json.dumps(args, sort_keys=True, separators=(",", ":"))


def sign(secret: str, nonce: str, action: str, args: Any) -> str:
    """The hex HMAC-SHA384 signature of a write, as a client computes it."""
    message = f"{nonce}:{action}:{canonical(args)}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha384).hexdigest()


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


class Authenticator:
    """Checks the ``auth`` of writes against this peer's credentials.

    Args:
        credentials: this peer's API key and secret.
        nonce_file: where accepted nonces are recorded (read back at start).
        clock_us: wall-clock microseconds (injectable for tests).
    """

    def __init__(
        self,
        credentials: Credentials,
        nonce_file: Path,
        *,
        clock_us: Callable[[], int] = _wall_clock_us,
    ) -> None:
        self._credentials = credentials
        self._path = nonce_file
        self._clock_us = clock_us
        self._used: dict[int, None] = {}
        self._expiry: list[int] = []  # the nonces of ``_used``, a heap: the oldest first
        self._appended = 0  # lines written to the file since it was last rewritten
        self._compact_at = _COMPACT_EVERY
        self._load()
        self._file: TextIO | None = nonce_file.open("a", encoding="ascii")

    def _load(self) -> None:
        if not self._path.exists():
            return
        oldest = self._clock_us() - _KEEP_US
        for line in self._path.read_text(encoding="ascii", errors="replace").split():
            if line.isdigit() and int(line) >= oldest:
                self._used[int(line)] = None
        self._expiry = list(self._used)
        heapq.heapify(self._expiry)
        self._rewrite()

    def _rewrite(self) -> None:
        temporary = self._path.with_name(self._path.name + ".tmp")
        temporary.write_text("".join(f"{n}\n" for n in self._used), encoding="ascii")
        temporary.replace(self._path)

    def check(self, action: str, args: Any, auth: Any) -> None:
        """Accept the write once, or raise.

        Raises:
            AuthenticationFailed: missing or malformed ``auth``, unknown key, nonce outside
                the window or already used, or a wrong signature. Nothing is recorded then.
        """
        if auth is None:
            raise AuthenticationFailed(f"{action} requires auth (key, nonce, signature)")
        if not isinstance(auth, dict) or set(auth) != {"key", "nonce", "signature"}:
            raise AuthenticationFailed("auth must be an object with key, nonce and signature")
        key, nonce, signature = auth["key"], auth["nonce"], auth["signature"]
        if not isinstance(key, str) or not isinstance(signature, str):
            raise AuthenticationFailed("auth key and signature must be strings")
        if not (key.isascii() and signature.isascii()):
            raise AuthenticationFailed("auth key and signature must be ASCII")
        if not hmac.compare_digest(key.encode(), self._credentials.key.encode()):
            raise AuthenticationFailed("unknown API key for this peer")
        text = str(nonce) if type(nonce) is int else nonce
        if not isinstance(text, str) or not (text.isascii() and text.isdigit()):
            raise AuthenticationFailed(f"nonce {str(nonce)[:40]!r} is not a decimal string")
        if len(text) > _NONCE_DIGITS_MAX:
            raise AuthenticationFailed(f"nonce {str(nonce)[:40]!r} is not a decimal string")
        value, now = int(text), self._clock_us()
        if abs(value - now) > _WINDOW_US:
            raise AuthenticationFailed(
                f"nonce {text} is more than {NONCE_WINDOW_S} s from this peer's clock"
            )
        expected = sign(self._credentials.secret, text, action, args)
        if not hmac.compare_digest(expected, signature.lower()):
            raise AuthenticationFailed(f"bad signature for nonce {text}")
        if value in self._used:
            raise AuthenticationFailed(f"nonce {text} was already used")
        self._remember(value, now)

    @property
    def nonces_in_memory(self) -> int:
        """How many accepted nonces are kept to refuse their replay."""
        return len(self._used)

    def _remember(self, nonce: int, now: int) -> None:
        """Record ``nonce``: on disk first, so that a nonce refused for want of disk is not
        held as used either.

        Raises:
            NonceNotRecorded: the nonce file cannot be written.
        """
        try:
            if self._file is None:  # a compaction closed it and could not open it again
                self._file = self._path.open("a", encoding="ascii")
            self._file.write(f"{nonce}\n")
            self._file.flush()
        except OSError as exc:
            raise NonceNotRecorded(f"this peer cannot record the nonce: {exc}") from exc
        self._used[nonce] = None
        heapq.heappush(self._expiry, nonce)
        oldest = now - _KEEP_US
        while self._expiry[0] < oldest:
            del self._used[heapq.heappop(self._expiry)]
        self._appended += 1
        if self._appended >= self._compact_at:
            self._appended = len(self._used)
            self._compact_at = max(_COMPACT_EVERY, 2 * len(self._used))
            self._compact()

    def _compact(self) -> None:
        """Rewrite the file with only the nonces still kept. A failure leaves the old file,
        which still holds every nonce (it is replaced only once the new one is written), and
        the next nonce opens it again."""
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            self._rewrite()
        with contextlib.suppress(OSError):
            self._file = self._path.open("a", encoding="ascii")

    def close(self) -> None:
        """Close the nonce file."""
        if self._file is not None:
            self._file.close()
