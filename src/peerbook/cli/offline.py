"""``peerbook replay`` (contract section 7) and ``peerbook grape`` (section 1): the commands
that need no network of peers."""

import argparse
import asyncio
import io
import json
import signal
import sys

from peerbook.engine import DEFAULT_MARKETS, Market
from peerbook.errors import SnapshotError
from peerbook.grenache import EmbeddedGrape
from peerbook.node.command_log import start_engine
from peerbook.replay import load_markets, replay

__all__ = ["run_grape", "run_replay"]


def _markets(path: str | None) -> list[Market]:
    if path is None:
        return list(DEFAULT_MARKETS)
    with open(path, encoding="utf-8") as file:
        return load_markets(json.load(file))


def run_replay(args: argparse.Namespace) -> int:
    """Replay a JSONL log to standard output; 2 if the input cannot be read."""
    try:
        markets = _markets(args.markets)
    except (OSError, ValueError) as exc:
        print(f"peerbook replay: cannot read markets: {exc}", file=sys.stderr)
        return 2
    start = None
    if args.snapshot is not None:
        try:
            with open(args.snapshot, "rb") as file:
                start = start_engine(file.read())
        except (OSError, SnapshotError) as exc:
            print(f"peerbook replay: cannot read the snapshot: {exc}", file=sys.stderr)
            return 2
    out = sys.stdout

    def emit(line: str) -> None:
        out.write(line + "\n")

    try:
        if args.input == "-":
            # Bad bytes become one error line each rather than failing the whole replay.
            stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
            replay(stdin, markets, emit, start)
        else:
            with open(args.input, encoding="utf-8", errors="surrogateescape") as stream:
                replay(stream, markets, emit, start)
    except OSError as exc:
        print(f"peerbook replay: {exc}", file=sys.stderr)
        return 2
    out.flush()
    return 0


async def _serve_grape(host: str, port: int) -> None:
    grape = EmbeddedGrape(host, port)
    await grape.start()
    print(grape.url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await grape.stop()


def run_grape(args: argparse.Namespace) -> int:
    """Serve an embedded grape until SIGINT or SIGTERM; 2 if the port cannot be bound."""
    try:
        asyncio.run(_serve_grape(args.host, args.port))
    except OSError as exc:
        print(f"peerbook grape: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0
