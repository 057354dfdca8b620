"""A network of peers on this machine, each ``peerbook node`` in its own process.

Used by ``peerbook demo`` and by the end-to-end tests: start the first peer with
``--bootstrap`` and the others joining with its cluster secret, stop one gracefully or with
kill -9, restart it from its data directory, and stop everything that was started (by PID,
never by name), also when something failed half way.
"""

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["LocalNetwork", "PeerProcess", "exit_status"]

_READY_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 15.0
_EXIT_POLL_S = 0.02


async def exit_status(process: asyncio.subprocess.Process, timeout_s: float) -> int:
    """The exit status of ``process`` once it has exited.

    Not `Process.wait`, which also waits until the process's output pipe is closed: a child
    the peer forked (its snapshot writer) holds that pipe too, and one that outlives the peer
    held the fault harness in a kill for 14 minutes (a soak, session 10: the writer hung in
    the after-fork code of libfaketime, the harness's clock-fault library).

    Raises:
        TimeoutError: it has not exited within ``timeout_s``.
    """
    async with asyncio.timeout(timeout_s):
        while (status := process.returncode) is None:
            await asyncio.sleep(_EXIT_POLL_S)
    return status


class PeerProcess:
    """One peer's process: its data directory, and what it printed when ready."""

    def __init__(self, index: int, data_dir: Path) -> None:
        self.index = index
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}

    @property
    def peer(self) -> str:
        """The peer id."""
        return str(self.ready.get("peer", f"peer{self.index}"))

    @property
    def running(self) -> bool:
        """Whether this object's process is alive."""
        return self.process is not None and self.process.returncode is None

    @property
    def log(self) -> Path:
        """Where the process's log (standard error) goes."""
        return self.data_dir / "node.log"


class LocalNetwork:
    """Peers under ``root`` (one data directory each) announcing on ``grape``.

    Args:
        root: where the data directories are made.
        grape: the grape URL.
        network: the network name.
        peer_prefix: peer ids are this plus the index (``p1``, ``p2``...).
        extra_args: more ``peerbook node`` arguments for every peer.
        host: the address peer ``index`` (1-based) binds and announces (127.0.0.1 by default).
        launcher: the command prefix that runs peer ``index``, e.g. ``ip netns exec NS`` (the
            prefix must exec the command so that the process keeps its PID).
        program: the command that runs ``peerbook`` (a test may run a patched one).
    """

    def __init__(
        self,
        root: Path,
        grape: str,
        *,
        network: str = "main",
        peer_prefix: str = "p",
        extra_args: tuple[str, ...] = (),
        host: Callable[[int], str] = lambda index: "127.0.0.1",
        launcher: Callable[[int], list[str]] = lambda index: [],
        program: tuple[str, ...] = (sys.executable, "-m", "peerbook"),
    ) -> None:
        self._program = program
        self.root = root
        self._host = host
        self._launcher = launcher
        self.grape = grape
        self.network = network
        self._prefix = peer_prefix
        self._extra = extra_args
        self.peers: list[PeerProcess] = []

    @property
    def secret_file(self) -> Path:
        """The cluster secret, written by the bootstrap peer."""
        return self.root / "peer1" / "secret"

    def _command(self, peer: PeerProcess, first_start: bool) -> list[str]:
        command = [*self._launcher(peer.index), *self._program, "node",
                   "--grape", self.grape, "--network", self.network, "--host",
                   self._host(peer.index), "--data-dir", str(peer.data_dir), "-v",
                   *self._extra]  # fmt: skip
        if first_start and peer.index == 1:
            command += ["--bootstrap", "--peer-id", f"{self._prefix}1"]
        elif first_start:
            command += ["--secret-file", str(self.secret_file)]
            command += ["--peer-id", f"{self._prefix}{peer.index}"]
        return command

    async def add_peer(self) -> PeerProcess:
        """Start one more peer (the first bootstraps the network); returns once it is ready."""
        index = len(self.peers) + 1
        peer = PeerProcess(index, self.root / f"peer{index}")
        peer.data_dir.mkdir(parents=True, exist_ok=True)
        self.peers.append(peer)
        await self._start(peer, first_start=True)
        return peer

    async def restart(self, peer: PeerProcess) -> None:
        """Start a stopped peer again from its data directory."""
        if peer.running:
            raise RuntimeError(f"{peer.peer} is still running")
        await self._start(peer, first_start=False)

    async def _start(self, peer: PeerProcess, *, first_start: bool) -> None:
        with peer.log.open("ab") as log:
            peer.process = await asyncio.create_subprocess_exec(
                *self._command(peer, first_start),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert peer.process.stdout is not None
        try:
            async with asyncio.timeout(_READY_TIMEOUT_S):
                line = await peer.process.stdout.readline()
            peer.ready = json.loads(line)
        except (TimeoutError, ValueError) as exc:
            await self.kill(peer)
            tail = peer.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"peer {peer.index} did not become ready: {tail}") from exc

    async def stop(self, peer: PeerProcess) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; the exit status."""
        process = peer.process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return await exit_status(process, _STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            return await exit_status(process, _STOP_TIMEOUT_S)

    async def kill(self, peer: PeerProcess) -> None:
        """kill -9."""
        process = peer.process
        if process is not None and process.returncode is None:
            process.kill()
            await exit_status(process, _STOP_TIMEOUT_S)

    async def stop_all(self) -> list[int | None]:
        """Stop every peer this object started; their exit statuses."""
        return list(await asyncio.gather(*(self.stop(p) for p in self.peers)))
