"""``peerbook node``: run one peer until SIGINT or SIGTERM (contract section 1)."""

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from peerbook.errors import PeerbookError
from peerbook.node.datadir import DataDir
from peerbook.node.peer import DEFAULT_SNAPSHOT_ENTRIES, PeerConfig, PeerFailed, run_peer

__all__ = ["run_node"]


_EXTRAS = ("request", "sequence", "order", "ms", "error")


class _JsonLines(logging.Formatter):
    """One JSON object per log record, with the peer and whatever structured fields the
    record carries (request id, sequence, order id, latency), for log pipelines."""

    peer: str | None = None

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "peer": self.peer,
            "message": record.getMessage(),
        }
        document.update((k, getattr(record, k)) for k in _EXTRAS if hasattr(record, k))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document)


def _network(args: argparse.Namespace) -> str:
    """``--network``; else the network of the peer whose data directory this is, so that a
    restart recovers it with the same command line as its first start; else ``main``."""
    if args.network:
        return str(args.network)
    directory = Path(args.data_dir)
    if not (directory / "peer.json").exists():
        return "main"
    try:
        known = DataDir(directory).identity()
    except (OSError, ValueError):
        known = None  # the peer says what is wrong with the directory as it starts
    return known.network if known is not None else "main"


def run_node(args: argparse.Namespace) -> int:
    """Run a peer; 0 after a graceful stop, 1 if it stopped on its own because its state
    cannot be trusted, 2 if it could not start."""
    if not args.grape or not args.data_dir:
        print("peerbook node: --grape and --data-dir are required", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    formatter = _JsonLines() if args.log_json else None
    handler.setFormatter(
        formatter or logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])

    def ready(line: dict[str, Any]) -> None:
        if formatter is not None:
            formatter.peer = line["peer"]
        print(json.dumps(line), flush=True)

    config = PeerConfig(
        grape=args.grape,
        data_dir=Path(args.data_dir),
        network=_network(args),
        host=args.host,
        rpc_port=args.rpc_port,
        bootstrap=args.bootstrap,
        secret_file=None if args.secret_file is None else Path(args.secret_file),
        peer_id=args.peer_id,
        voters_max=args.voters,
        metrics_port=args.metrics_port,
        snapshot_entries=(
            DEFAULT_SNAPSHOT_ENTRIES if args.snapshot_every is None else args.snapshot_every or None
        ),
    )
    try:
        asyncio.run(run_peer(config, ready))
    except PeerFailed as exc:
        print(f"peerbook node: stopped: {exc}", file=sys.stderr)
        return 1
    except (PeerbookError, OSError, ValueError) as exc:
        print(f"peerbook node: {exc}", file=sys.stderr)
        return 2
    return 0
