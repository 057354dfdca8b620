"""``peerbook leave`` and ``peerbook remove PEER``: an operator changes the membership.

Both prove the cluster secret, read from ``--data-dir`` (a member's data directory) or
``--secret-file``. ``leave`` asks the peer of ``--data-dir`` itself to leave for good: it
hands leadership over if it has it, has another member remove it, records in its data
directory that it left (a restart is then refused) and stops with status 0. ``remove``
takes a voting member that is gone (a dead machine) out of the membership, through any
other member, so that the rest need a majority of fewer peers. Exit status: 0 once the change
is committed, 1 if it was refused or timed out, 2 for a usage error.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from peerbook.errors import PeerbookError

__all__ = ["add_membership_commands", "run_membership_command"]

_TIMEOUT_S = 60.0


def add_membership_commands(commands: Any, common: Any) -> None:
    """Add ``leave`` and ``remove`` to the top-level parser's ``commands``."""
    leave = commands.add_parser("leave", help="make the peer of --data-dir leave its network")
    common(leave)
    remove = commands.add_parser("remove", help="take a (dead) peer out of the membership")
    common(remove)
    remove.add_argument("peer_id", help="the peer to remove")
    remove.add_argument("--secret-file", help="the cluster secret (hex), if not --data-dir's")


def _secret_and_peer(args: argparse.Namespace) -> tuple[bytes, str | None, str | None]:
    """The cluster secret, this data directory's peer id and network (when given)."""
    from peerbook.node.datadir import DataDir, read_secret

    secret_file = getattr(args, "secret_file", None)
    directory = DataDir(Path(args.data_dir)) if args.data_dir else None
    identity = None if directory is None else directory.identity()
    kept = None if directory is None else directory.cluster_secret()
    if secret_file:
        secret = read_secret(Path(secret_file))
    elif kept is not None:
        secret = kept
    else:
        raise ValueError("the cluster secret is needed: give --data-dir of a member")
    if identity is None:
        return secret, None, None
    return secret, identity.peer, identity.network


async def _change(args: argparse.Namespace) -> list[str]:
    """Carry out the change; the voting members' node ids afterwards."""
    # Imported here, not at the top: building the parser must not load the Raft library.
    from peerbook.grenache import Link, RpcClient
    from peerbook.node.join import request_join, request_leave

    secret, own_peer, own_network = _secret_and_peer(args)
    network = args.network or own_network or "main"
    link = Link(args.grape)
    client = RpcClient(link)
    try:
        if args.command == "leave":
            if own_peer is None:
                raise ValueError("leave acts on the peer of --data-dir: give it")
            answer = await request_leave(client, network, secret, own_peer, timeout_s=_TIMEOUT_S)
        else:
            answer = await request_join(client, network, secret, args.peer_id, "", "remove",
                                        timeout_s=_TIMEOUT_S)  # fmt: skip
        return answer.members
    finally:
        await client.close()
        await link.close()


def run_membership_command(args: argparse.Namespace) -> int:
    """Run ``leave`` or ``remove``; the exit status."""
    try:
        members = asyncio.run(_change(args))
    except (OSError, ValueError) as exc:
        print(f"peerbook {args.command}: {exc}", file=sys.stderr)
        return 2
    except PeerbookError as exc:
        print(f"peerbook {args.command}: {exc}", file=sys.stderr)
        return 1
    peers = sorted(m.partition("@")[0] for m in members)
    if args.json:
        print(json.dumps({"members": peers}))
    else:
        print("members now: " + ", ".join(peers))
    return 0
