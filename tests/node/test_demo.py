"""``peerbook demo --no-dashboard --duration``: real grape and peer processes, random trading,
exit 0 only with every digest equal, and nothing left running."""

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from peerbook.demo.network import exit_status


def test_demo_runs_trades_and_ends_with_every_digest_equal(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "peerbook", "demo", "--no-dashboard", "--duration", "6",
         "--rate", "4", "--data-root", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"ALL 3 PEERS AGREE: applied [1-9]\d*", done.stdout)
    assert "exit statuses [0, 0, 0]" in done.stdout
    for peer in ("peer1", "peer2", "peer3"):
        log = (tmp_path / peer / "node.log").read_text()
        assert "Traceback" not in log
    assert all(not p.isdigit() or _not_ours(int(p), tmp_path) for p in os.listdir("/proc"))


def _not_ours(pid: int, root: Path) -> bool:
    """No process is left whose command line names this demo's data directory."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return str(root).encode() not in command


def test_a_process_is_seen_to_exit_though_a_child_of_it_holds_its_output() -> None:
    """A peer's forked snapshot writer holds the peer's output pipe; if it outlives the peer,
    `Process.wait` waits for it too, and stopping or killing the peer must not."""

    async def scenario() -> None:
        process = await asyncio.create_subprocess_exec(
            "sh", "-c", "sleep 60 & echo $!; read go; exit 3",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None and process.stdin is not None
        child = int(await process.stdout.readline())
        # Waiting before the exit (`Process.wait` called after it returns at once: on a
        # loaded machine this test once started waiting too late).
        waiting = asyncio.create_task(process.wait())  # waits for the pipe as well
        await asyncio.sleep(0.1)
        process.stdin.write(b"go\n")
        try:
            assert await exit_status(process, 10) == 3
            await asyncio.sleep(0.3)
            assert not waiting.done()
        finally:
            os.kill(child, signal.SIGKILL)  # the one process this test started that is left
        assert await asyncio.wait_for(waiting, 10) == 3

    asyncio.run(scenario())
