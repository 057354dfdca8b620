"""The `peerbook` command line: parses arguments and calls into the package; no logic here.

Commands available in this version: ``grape`` (contract section 1) and ``replay`` (section 7).
The other commands of section 1 (``node``, ``demo`` and the client commands) arrive with the
replication and node layers.
"""

import argparse
import asyncio
import io
import json
import signal
import sys
from collections.abc import Sequence

from peerbook import __version__
from peerbook.engine import DEFAULT_MARKETS, Market
from peerbook.grenache import EmbeddedGrape
from peerbook.replay import load_markets, replay

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peerbook", description="A peer-to-peer exchange with one replicated order book."
    )
    parser.add_argument("--version", action="version", version=f"peerbook {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    grape_parser = commands.add_parser(
        "grape",
        help="run an embedded single-machine grape (the grape HTTP API, no DHT)",
        description="Run an embedded grape: announce, lookup, put and get as grenache-grape "
        "1.0.0 answers them with --dpa 120000. Prints its URL; runs until SIGINT or SIGTERM.",
    )
    grape_parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    grape_parser.add_argument("--port", type=int, default=30001, help="API port (0: any free)")
    replay_parser = commands.add_parser(
        "replay",
        help="apply a JSONL log of commands to a fresh engine and print the outcome",
        description="Apply a JSONL log of commands to a fresh engine, offline, and print "
        "errors, trades, final orders and the applied sequence and digest (one JSON per line).",
    )
    replay_parser.add_argument(
        "--markets",
        metavar="FILE",
        help="JSON list of markets shaped like fetchMarkets (default: BTC/USD and ETH/USD)",
    )
    replay_parser.add_argument(
        "input", nargs="?", default="-", metavar="INPUT.jsonl", help="the log; - for stdin"
    )
    return parser


def _markets(path: str | None) -> list[Market]:
    if path is None:
        return list(DEFAULT_MARKETS)
    with open(path, encoding="utf-8") as file:
        return load_markets(json.load(file))


def _replay(args: argparse.Namespace) -> int:
    try:
        markets = _markets(args.markets)
    except (OSError, ValueError) as exc:
        print(f"peerbook replay: cannot read markets: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout

    def emit(line: str) -> None:
        out.write(line + "\n")

    try:
        if args.input == "-":
            # Bad bytes become one error line each rather than failing the whole replay.
            stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
            replay(stdin, markets, emit)
        else:
            with open(args.input, encoding="utf-8", errors="surrogateescape") as stream:
                replay(stream, markets, emit)
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


def _grape(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_serve_grape(args.host, args.port))
    except OSError as exc:
        print(f"peerbook grape: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "replay":
        return _replay(args)
    if args.command == "grape":
        return _grape(args)
    raise AssertionError(f"unhandled command {args.command}")
