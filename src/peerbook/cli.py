"""The `peerbook` command line: parses arguments and calls into the package; no logic here.

Commands available in this version: ``replay`` (contract section 7). The network commands of
section 1 (``grape``, ``node``, ``demo`` and the client commands) arrive with the Grenache,
replication and node layers.
"""

import argparse
import json
import sys
from collections.abc import Sequence

from peerbook import __version__
from peerbook.engine import DEFAULT_MARKETS, Market
from peerbook.replay import load_markets, replay

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peerbook", description="A peer-to-peer exchange with one replicated order book."
    )
    parser.add_argument("--version", action="version", version=f"peerbook {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
            stream = sys.stdin
            replay(stream, markets, emit)
        else:
            with open(args.input, encoding="utf-8", errors="surrogateescape") as stream:
                replay(stream, markets, emit)
    except OSError as exc:
        print(f"peerbook replay: {exc}", file=sys.stderr)
        return 2
    out.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "replay":
        return _replay(args)
    raise AssertionError(f"unhandled command {args.command}")
