"""`peerbook node` as a real process: a restart recovers the peer from its data directory
with the same command line as its first start, whatever network it belongs to."""

import json
import subprocess
import sys
from pathlib import Path

from peerbook.testing.processes import stop_process
from tests.conftest import grape_process


def start_node(grape: str, *args: str) -> tuple["subprocess.Popen[str]", dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "peerbook", "node", "--grape", grape, *args],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"the node exited with {process.wait(timeout=10)} before it was ready"
    return process, json.loads(line)


def test_a_restart_without_network_recovers_the_peer_of_another_network(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "p1")
    with grape_process() as (_, grape):
        first, ready = start_node(grape, "--data-dir", data_dir, "--network", "side",
                                  "--bootstrap")  # fmt: skip
        try:
            assert ready["network"] == "side"
        finally:
            assert stop_process(first) == 0
        again, recovered = start_node(grape, "--data-dir", data_dir)
        try:
            same = ("peer", "network", "data_dir")  # its API port is picked afresh (port 0)
            assert {k: recovered[k] for k in same} == {k: ready[k] for k in same}
        finally:
            assert stop_process(again) == 0
