"""Wall-clock faults for the fault harness, through libfaketime.

Every peer of a run is started with libfaketime preloaded and reading its fake time from a
file of its own (``clock-pN``), re-read every second; the nemesis writes a new spec there to
jump that peer's clock or let it drift, and ``+0`` to put it right. Only the wall clock
(``CLOCK_REALTIME``) is faked: Raft's timers and the event loop run on the monotonic clock,
which does not jump on real machines either. What the wall clock drives in a peer: the
timestamp an order gets when its peer proposes it, and the 60 s window of write nonces and
join proofs. So a skewed peer must still agree with everyone (timestamps travel in the log),
and refuse its clients' writes while its clock is more than a minute off (a definite
failure, never a lost or doubled order).
"""

import random
from pathlib import Path

__all__ = ["LIBFAKETIME", "ClockFiles", "clock_jump", "drifted"]

LIBFAKETIME = next(
    (
        path
        for path in (
            Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
            Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
            Path("/usr/lib/faketime/libfaketime.so.1"),
        )
        if path.exists()
    ),
    None,
)


class ClockFiles:
    """One fake-time file per peer under ``root``; `environment` starts a peer on it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, index: int) -> Path:
        return self.root / f"clock-p{index}"

    def environment(self, index: int) -> list[str]:
        """``env`` arguments that run a peer on its clock file (empty without libfaketime)."""
        if LIBFAKETIME is None:
            return []
        self.set(index, "+0")
        return ["env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME_TIMESTAMP_FILE={self.path(index)}",
                "FAKETIME_CACHE_DURATION=1", "FAKETIME_DONT_FAKE_MONOTONIC=1"]  # fmt: skip

    def set(self, index: int, spec: str) -> None:
        """Give peer ``index`` the libfaketime ``spec`` (``+300``, ``-120``, ``+0 x2``)."""
        temporary = self.path(index).with_suffix(".tmp")
        temporary.write_text(spec + "\n")
        temporary.replace(self.path(index))


def clock_jump(rng: random.Random) -> str:
    """The libfaketime spec of a ``clock-jump`` fault: 90 s to 10 min either way."""
    return f"{rng.choice('+-')}{rng.randint(90, 600)}"


def drifted(rate: float, elapsed_s: float) -> str:
    """The spec of a clock that has run at ``rate`` times real speed for ``elapsed_s``.

    A ``clock-rate`` fault rewrites this every half second rather than using libfaketime's
    own ``x RATE`` spec: that one also scales every timeout the process waits for, and it
    does not go away when the spec is set back to ``+0`` (measured with libfaketime 0.9.10:
    the clock kept running fast, and the peer refused its clients' writes for the rest of
    the run). Offsets alone come and go cleanly."""
    return f"{(rate - 1) * elapsed_s:+.1f}"
