"""The smoke tier of the fault harness, in CI: three peers, a grape and the clients in their own
network namespaces; leader isolation, leader kill and leader pause (and more, as the seeded
schedule picks them) while clients place and cancel crossing orders; then the checker. Skips,
saying why, where namespaces or nftables are not available (not root, no `ip`/`nft`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nemesis.netns import unavailable

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_loses_nothing_and_converges(tmp_path: Path) -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    run = subprocess.Popen(
        [sys.executable, "-m", "tests.nemesis.run", "--duration", "60", "--seed", "7",
         "--faults", "isolate-leader", "kill-leader", "pause-leader", "isolate-follower",
         "--keep", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        stdout, stderr = run.communicate(timeout=170)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the run then stops its cluster and removes its namespaces.
        run.terminate()
        stdout, stderr = run.communicate(timeout=60)
        pytest.fail(f"the smoke run took more than 170 s: {stdout[-2000:]} {stderr[-2000:]}")
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    summary = lines[-1]
    assert run.returncode == 0, json.dumps(summary)[:3000] + stderr[-2000:]
    assert summary["acknowledged"] >= 1000
    assert summary["lost"] == summary["duplicated"] == summary["phantoms"] == 0
    assert summary["converged"] and not summary["book_crossed"]
    applied = {f["fault"] for f in summary["faults"]}
    assert {"isolate-leader", "kill-leader", "pause-leader"} <= applied
