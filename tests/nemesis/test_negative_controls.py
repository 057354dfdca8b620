"""Negative controls as real broken builds (`tests.nemesis.unsafe`): a fault run with peers
whose safety was removed must fail the checker, for the reason it was removed. Without these,
a checker that always passes would look exactly like a correct system."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.nemesis.netns import unavailable

ROOT = Path(__file__).resolve().parents[2]


def broken_run(mode: str, *faults: str, duration: int = 22) -> dict[str, Any]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    done = subprocess.run(
        [sys.executable, "-m", "tests.nemesis.run", "--duration", str(duration), "--seed", "3",
         "--settle", "10", "--unsafe", mode, "--faults", *faults],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert done.returncode == 1, summary
    return summary


def test_an_apply_that_reads_the_clock_is_caught_diverging() -> None:
    summary = broken_run("nondeterministic", "pause-follower")
    assert not summary["converged"]


def test_a_journal_in_memory_loses_acknowledged_orders_when_all_peers_die() -> None:
    summary = broken_run("memory-journal", "kill-all")
    assert summary["lost"] > 0
