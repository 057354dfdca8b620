"""Nonces in memory: each accepted one is refused again, for as long as the clock check alone
would not refuse it, and no longer (a heap probe under load found the nonce dict the largest
thing growing in a peer: it was pruned only every 100,000 nonces)."""

from pathlib import Path

import pytest

from peerbook.node.auth import (
    NONCE_WINDOW_S,
    AuthenticationFailed,
    Authenticator,
    NonceNotRecorded,
    sign,
)
from peerbook.node.datadir import Credentials

CREDENTIALS = Credentials("key", "secret")
WINDOW_US = NONCE_WINDOW_S * 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now_us = 1_764_000_000_000_000

    def __call__(self) -> int:
        return self.now_us


def signed(nonce: int) -> dict[str, str]:
    args = ["BTC/USD", "limit", "buy", "1", "30000"]
    return {"key": CREDENTIALS.key, "nonce": str(nonce),
            "signature": sign(CREDENTIALS.secret, str(nonce), "createOrder", args)}  # fmt: skip


def accept(auth: Authenticator, nonce: int) -> None:
    auth.check("createOrder", ["BTC/USD", "limit", "buy", "1", "30000"], signed(nonce))


def test_nonces_are_forgotten_two_windows_after_their_time_and_not_before(
    tmp_path: Path,
) -> None:
    clock = Clock()
    auth = Authenticator(CREDENTIALS, tmp_path / "nonces", clock_us=clock)
    first = clock.now_us
    for step in range(1000):  # ten a second for 100 s, each the clock's reading
        clock.now_us = first + step * 100_000
        accept(auth, clock.now_us)
    assert auth.nonces_in_memory == 1000  # all within two windows
    with pytest.raises(AuthenticationFailed, match="already used"):
        accept(auth, first + 50 * 1_000_000)  # within the window of the clock: a replay
    restarted = Authenticator(CREDENTIALS, tmp_path / "nonces", clock_us=clock)
    with pytest.raises(AuthenticationFailed, match="already used"):
        accept(restarted, clock.now_us)  # read back from the file
    clock.now_us += 2 * WINDOW_US + 1
    accept(auth, clock.now_us)
    assert auth.nonces_in_memory == 1  # every earlier one is past two windows


class FullDisk:
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_a_nonce_the_disk_cannot_take_is_refused_unspent_and_the_file_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of disk, a write is refused as not applied and its nonce is not spent; a
    compaction that cannot rewrite the file leaves the old one in use (it had closed the
    file and left it closed, and every later write failed)."""
    clock = Clock()
    auth = Authenticator(CREDENTIALS, tmp_path / "nonces", clock_us=clock)
    real = auth._file
    auth._file = FullDisk()  # type: ignore[assignment]
    with pytest.raises(NonceNotRecorded, match="No space left"):
        accept(auth, clock.now_us)
    auth._file = real
    accept(auth, clock.now_us)  # the same nonce: it was not spent
    with pytest.raises(AuthenticationFailed, match="already used"):
        accept(auth, clock.now_us)

    def no_room() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(auth, "_rewrite", no_room)
    auth._compact_at = auth._appended + 1
    for step in range(1, 4):  # the first one compacts, and fails to
        accept(auth, clock.now_us + step)
    restarted = Authenticator(CREDENTIALS, tmp_path / "nonces", clock_us=clock)
    for step in range(4):
        with pytest.raises(AuthenticationFailed, match="already used"):
            accept(restarted, clock.now_us + step)
