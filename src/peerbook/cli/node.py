"""``peerbook node``: run one peer until SIGINT or SIGTERM (contract section 1)."""

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from peerbook.errors import PeerbookError
from peerbook.node.peer import PeerConfig, run_peer

__all__ = ["run_node"]


def _ready(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def run_node(args: argparse.Namespace) -> int:
    """Run a peer; 0 after a graceful stop, 2 if it could not start."""
    if not args.grape or not args.data_dir:
        print("peerbook node: --grape and --data-dir are required", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = PeerConfig(
        grape=args.grape,
        data_dir=Path(args.data_dir),
        network=args.network,
        host=args.host,
        rpc_port=args.rpc_port,
        bootstrap=args.bootstrap,
        secret_file=None if args.secret_file is None else Path(args.secret_file),
        peer_id=args.peer_id,
        voters_max=args.voters,
    )
    try:
        asyncio.run(run_peer(config, _ready))
    except (PeerbookError, OSError, ValueError) as exc:
        print(f"peerbook node: {exc}", file=sys.stderr)
        return 2
    return 0
