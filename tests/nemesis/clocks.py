"""Wall-clock faults for the fault harness, through libfaketime.

Every peer of a run is started with libfaketime preloaded and reading its fake time from a
file of its own (``clock-pN``), re-read every second; the nemesis writes a new spec there to
jump that peer's clock or change its rate, and ``+0`` to put it right. Only the wall clock
(``CLOCK_REALTIME``) is faked: Raft's timers and the event loop run on the monotonic clock,
which does not jump on real machines either. What the wall clock drives in a peer: the
timestamp an order gets when its peer proposes it, and the 60 s window of write nonces and
join proofs. So a skewed peer must still agree with everyone (timestamps travel in the log),
and refuse its clients' writes while its clock is more than a minute off (a definite
failure, never a lost or doubled order).
"""

import random
from pathlib import Path

__all__ = ["LIBFAKETIME", "ClockFiles", "clock_fault_spec"]

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


def clock_fault_spec(fault: str, rng: random.Random) -> str:
    """The libfaketime spec for a ``clock-jump`` (90 s to 10 min either way) or
    ``clock-rate`` (twice or half as fast) fault."""
    if fault == "clock-jump":
        return f"{rng.choice('+-')}{rng.randint(90, 600)}"
    return f"+0 x{rng.choice(['2', '0.5'])}"
