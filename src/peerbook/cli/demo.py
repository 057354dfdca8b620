"""``peerbook demo``: an embedded grape and N peers on this machine, trading, on one screen.

The grape runs in this process; every peer is a real ``peerbook node`` process (the first
bootstraps the network, the others join it with its secret), so killing one from another
terminal is a real crash and restarting it a real recovery. Each peer gets a random trader
that places orders through the peer's own API with the peer's credentials. With
``--duration`` the demo stops trading at the end, waits for every peer to agree, and exits 0
only if their applied sequences and digests are all equal.
"""

import argparse
import asyncio
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from peerbook.client import AsyncClient
from peerbook.demo.dashboard import Snapshot, agreement, poll, render, summary_lines
from peerbook.demo.network import LocalNetwork
from peerbook.demo.trader import RandomTrader
from peerbook.grenache import EmbeddedGrape

__all__ = ["run_demo"]

_POLL_S = 0.5
_LOG_EVERY_S = 2.0
_SETTLE_TIMEOUT_S = 30.0


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; 0 when it ended with every peer agreeing (or was stopped by Ctrl-C)."""
    if args.peers < 1 or args.rate <= 0:
        print("peerbook demo: --peers must be at least 1 and --rate positive", file=sys.stderr)
        return 2
    return asyncio.run(_demo(args))


class _Demo:
    def __init__(self, args: argparse.Namespace, root: Path, grape: EmbeddedGrape) -> None:
        self.args = args
        self.console = Console(stderr=False)
        self.network = LocalNetwork(root, grape.url)
        self.readers: dict[str, AsyncClient] = {}
        self.traders: dict[str, RandomTrader] = {}
        self.clients: list[AsyncClient] = []
        self.tasks: list[asyncio.Task[None]] = []

    def say(self, line: str) -> None:
        if self.args.no_dashboard:
            print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
        else:
            self.console.print(line)

    async def start_peers(self) -> None:
        total = self.args.peers
        for index in range(1, total + 1):
            self.say(f"starting peer {index}/{total} ...")
            peer = await self.network.add_peer()
            self.say(f"peer {peer.peer} ready: {peer.ready}")
            grape = self.network.grape
            reader = AsyncClient(grape, network=self.network.network, peer=peer.peer)
            writer = AsyncClient.from_data_dir(grape, peer.data_dir)
            self.clients += [reader, writer]
            self.readers[peer.peer] = reader
            self.traders[peer.peer] = RandomTrader(writer, self.args.rate, random.Random(index))

    def hints(self) -> list[str]:
        first, last = self.network.peers[0], self.network.peers[-1]
        pid = "?" if last.process is None else last.process.pid
        return [
            "From another terminal:",
            f"  export PEERBOOK_GRAPE={self.network.grape}",
            f"  export PEERBOOK_DATA_DIR={first.data_dir}",
            f"  peerbook buy BTC/USD 0.01 30010      # a limit order at your peer ({first.peer})",
            "  peerbook book BTC/USD; peerbook trades BTC/USD; peerbook status; peerbook watch",
            f"  kill -9 {pid}                       # crash peer {last.peer}; then restart it:",
            f"  peerbook node --grape {self.network.grape} --data-dir {last.data_dir}",
            "Ctrl-C stops everything.",
        ]

    async def watch(self, stop: asyncio.Event) -> Snapshot:
        deadline = None if self.args.duration is None else time.monotonic() + self.args.duration
        snapshot = await poll(self.readers, self.traders)
        last_log = 0.0
        live = None if self.args.no_dashboard else Live(console=self.console, auto_refresh=False)
        if live is not None:
            live.start()
        else:
            for hint in self.hints():
                self.say(hint)
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                snapshot = await poll(self.readers, self.traders)
                if live is not None:
                    live.update(render(snapshot, self.hints()), refresh=True)
                elif time.monotonic() - last_log >= _LOG_EVERY_S:
                    last_log = time.monotonic()
                    for line in summary_lines(snapshot):
                        self.say(line)
                try:
                    async with asyncio.timeout(_POLL_S):
                        await stop.wait()
                except TimeoutError:
                    pass
        finally:
            if live is not None:
                live.stop()
        return snapshot

    async def settle(self) -> bool:
        """Wait (bounded) until every running peer reports the same applied and digest."""
        deadline = time.monotonic() + _SETTLE_TIMEOUT_S
        while True:
            snapshot = await poll(self.readers, self.traders)
            agree, _ = agreement(snapshot)
            if agree or time.monotonic() > deadline:
                for summary in summary_lines(snapshot):
                    self.say(summary)
                return agree
            await asyncio.sleep(_POLL_S)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients:
            await client.close()
        statuses = await self.network.stop_all()
        self.say(f"stopped {len(statuses)} peers (exit statuses {statuses})")


async def _demo(args: argparse.Namespace) -> int:
    own_root = args.data_root is None
    root = Path(tempfile.mkdtemp(prefix="peerbook-demo-") if own_root else args.data_root)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    grape = EmbeddedGrape("127.0.0.1", 0)
    await grape.start()
    demo = _Demo(args, root, grape)
    demo.say(f"grape at {grape.url}; data under {root}")
    try:
        await demo.start_peers()
        demo.tasks = [asyncio.create_task(t.run()) for t in demo.traders.values()]
        await demo.watch(stop)
        for task in demo.tasks:
            task.cancel()
        if args.duration is None or stop.is_set():
            return 0
        demo.say("trading stopped; waiting for every peer to apply everything ...")
        return 0 if await demo.settle() else 1
    finally:
        await demo.close()
        await grape.stop()
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
