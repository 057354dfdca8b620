"""Every answer of the API starts with a CCXT error class (contract section 4), also when
this peer fails on a request for a reason of its own."""

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from peerbook.engine import Engine
from peerbook.errors import RpcError
from peerbook.node.api import ApiService
from peerbook.node.auth import Authenticator, sign
from peerbook.node.datadir import Credentials
from peerbook.node.history import History
from peerbook.replication.state_machine import Outcome

CREDENTIALS = Credentials("key", "secret")


class Writable:
    role, leader, members, writable = "leader", "p1", ["p1"], True


def test_a_failure_of_this_peer_is_answered_with_a_ccxt_class(tmp_path: Path) -> None:
    async def broken(op: str, owner: str, args: list[Any]) -> Outcome:
        raise RuntimeError("a defect")

    engine = Engine()
    api = ApiService(
        peer="p1", network="main", engine=engine, history=History(engine),
        auth=Authenticator(CREDENTIALS, tmp_path / "nonces"), submit=broken, status=Writable(),
    )  # fmt: skip
    args = ["BTC/USD", "limit", "buy", "1", "30000"]
    nonce = str(time.time_ns() // 1000)
    auth = {"key": "key", "nonce": nonce,
            "signature": sign(CREDENTIALS.secret, nonce, "createOrder", args)}  # fmt: skip
    request = {"action": "createOrder", "args": args, "auth": auth}
    with pytest.raises(RpcError, match=r"^ExchangeError: this peer failed .*RuntimeError"):
        asyncio.run(api.handle("peerbook:main:rpc", request))
