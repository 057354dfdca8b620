"""The `peerbook` command line (contract section 1): parses arguments and hands each command
to its module; no logic here.

``grape`` and ``replay`` are in `peerbook.cli.offline`, ``node`` in `peerbook.cli.node`,
``demo`` in `peerbook.cli.demo`, ``leave`` and ``remove`` in `peerbook.cli.membership`, and the
client commands in `peerbook.cli.client_commands` (their arguments in
`peerbook.cli.client_arguments`).
The connection options (``--grape``, ``--network``, ``--peer``, ``--data-dir``, ``--json``)
may be given before or after the command and default to the ``PEERBOOK_*`` environment
variables.
"""

import argparse
import os
from collections.abc import Sequence

from peerbook import __version__

__all__ = ["main"]

_DEFAULT_GRAPE = "http://127.0.0.1:30001"


def _connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every networked command takes. On the top-level parser they carry the
    defaults; on a command's parser they are suppressed unless given, so that a value given
    before the command is not overwritten by the command's default."""

    def default(value: str | None) -> str | None:
        return value if top else argparse.SUPPRESS

    env = os.environ.get
    parser.add_argument(
        "--grape", default=default(env("PEERBOOK_GRAPE", _DEFAULT_GRAPE)), help="grape URL"
    )
    parser.add_argument(
        "--network",
        default=default(env("PEERBOOK_NETWORK")),
        help="network name (default: the data directory's, else main)",
    )
    parser.add_argument(
        "--peer", default=default(env("PEERBOOK_PEER")), help="address one peer by its id"
    )
    parser.add_argument(
        "--data-dir", default=default(env("PEERBOOK_DATA_DIR")), help="a peer's data directory"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print the raw JSON result",
    )


def _offline_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    grape = commands.add_parser(
        "grape",
        help="run an embedded single-machine grape (the grape HTTP API, no DHT)",
        description="Run an embedded grape: announce, lookup, put and get as grenache-grape "
        "1.0.0 answers them with --dpa 120000. Prints its URL; runs until SIGINT or SIGTERM.",
    )
    grape.add_argument("--host", default="127.0.0.1", help="address to bind")
    grape.add_argument("--port", type=int, default=30001, help="API port (0: any free)")
    replay = commands.add_parser(
        "replay",
        help="apply a JSONL log of commands to a fresh engine and print the outcome",
        description="Apply a JSONL log of commands to a fresh engine, offline, and print "
        "errors, trades, final orders and the applied sequence and digest (one JSON per line).",
    )
    replay.add_argument(
        "--markets",
        metavar="FILE",
        help="JSON list of markets shaped like fetchMarkets (default: BTC/USD and ETH/USD)",
    )
    replay.add_argument(
        "--snapshot",
        metavar="FILE",
        help="start from this snapshot instead of a fresh engine (a peer's "
        "commands.snapshot, or an engine snapshot; its markets replace --markets)",
    )
    replay.add_argument(
        "input", nargs="?", default="-", metavar="INPUT.jsonl", help="the log; - for stdin"
    )


def _node_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    node = commands.add_parser(
        "node",
        help="run one peer",
        description="Run one peer. Prints one JSON line when ready; SIGTERM or SIGINT stops "
        "it gracefully. Restarting with the same --data-dir recovers it from disk.",
    )
    _connection_options(node, top=False)
    node.add_argument("--host", default="127.0.0.1", help="address to bind and announce")
    node.add_argument("--rpc-port", type=int, default=0, help="API port (0: any free)")
    node.add_argument("--bootstrap", action="store_true", help="create a new network")
    node.add_argument("--secret-file", help="file holding the cluster secret (hex)")
    node.add_argument("--peer-id", help="this peer's id on first start (default: random)")
    node.add_argument(
        "--voters", type=int, default=5, help="most voting members this peer admits (default 5)"
    )
    node.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (0: any free)"
    )
    node.add_argument(
        "--snapshot-every",
        type=int,
        metavar="ENTRIES",
        help="snapshot the state and compact the log after this many log entries "
        "(default: peerbook.node.peer.DEFAULT_SNAPSHOT_ENTRIES, 20,000; 0: never)",
    )
    node.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    node.add_argument("--log-json", action="store_true", help="log JSON lines (structured)")
    demo = commands.add_parser(
        "demo",
        help="run a grape and several peers on this machine and watch them trade",
        description="Start an embedded grape and N peers as separate processes; every peer "
        "places random orders; a live view shows every peer's book, trades, applied sequence "
        "and digest. Ctrl-C stops everything.",
    )
    demo.add_argument("--peers", type=int, default=3, help="how many peers (default 3)")
    demo.add_argument(
        "--rate", type=float, default=0.2, help="orders per second per peer (default 0.2)"
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--no-dashboard", action="store_true", help="plain log lines instead")
    demo.add_argument("--data-root", help="where the peers' data directories go (default: temp)")


def _parser() -> argparse.ArgumentParser:
    from peerbook.cli.client_arguments import add_client_commands
    from peerbook.cli.membership import add_membership_commands

    parser = argparse.ArgumentParser(
        prog="peerbook", description="A peer-to-peer exchange with one replicated order book."
    )
    parser.add_argument("--version", action="version", version=f"peerbook {__version__}")
    _connection_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _offline_commands(commands)
    _node_commands(commands)
    add_client_commands(commands, lambda p: _connection_options(p, top=False))
    add_membership_commands(commands, lambda p: _connection_options(p, top=False))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "replay":
        from peerbook.cli.offline import run_replay

        return run_replay(args)
    if args.command == "grape":
        from peerbook.cli.offline import run_grape

        return run_grape(args)
    if args.command == "node":
        from peerbook.cli.node import run_node

        return run_node(args)
    if args.command == "demo":
        from peerbook.cli.demo import run_demo

        return run_demo(args)
    if args.command in ("leave", "remove"):
        from peerbook.cli.membership import run_membership_command

        return run_membership_command(args)
    from peerbook.cli.client_commands import run_client_command

    return run_client_command(args)
