"""peerbook peers on the real Node.js grapes: one peer bootstraps through grape A, another
joins through grape B (finding the first through the grapes' DHT), and the real Node.js
Grenache client maps a request over every peer through grape B. Python peers, Node grapes
and a Node client in one network."""

import json
import subprocess
import sys
from pathlib import Path

from tests.interop.node_harness import run_node_script


def start(grape: str, data_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "peerbook", "node", "--grape", grape, "--data-dir", str(data_dir),
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def test_peers_join_and_answer_through_node_grapes(grapes: list[str], tmp_path: Path) -> None:
    first = start(grapes[0], tmp_path / "a", "--bootstrap", "--peer-id", "pa")
    second: subprocess.Popen[str] | None = None
    try:
        assert first.stdout is not None
        assert json.loads(first.stdout.readline())["peer"] == "pa"
        second = start(grapes[1], tmp_path / "b", "--secret-file", str(tmp_path / "a" / "secret"),
                       "--peer-id", "pb")  # fmt: skip
        assert second.stdout is not None
        assert json.loads(second.stdout.readline())["peer"] == "pb"
        payload = json.dumps({"action": "fetchStatus", "args": []})
        lines = run_node_script("rpc_client.js", "--grape", grapes[1], "--timeout", "10000",
                                "--retry", "20", "map", "peerbook:main:rpc", payload, timeout=60)  # fmt: skip
        replies = lines[-1]["reply"]
        assert sorted(r["info"]["peer"] for r in replies) == ["pa", "pb"]
        assert all(r["info"]["members"] == ["pa", "pb"] for r in replies)
    finally:
        for process in (first, second):
            if process is not None:
                process.terminate()
                process.wait(timeout=20)
