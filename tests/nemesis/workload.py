"""The clients of a fault run, one process inside the clients' namespace.

``python -m tests.nemesis.workload CONFIG.json`` runs, for every peer, ``clients`` tasks that
place crossing limit orders (each with a unique clientOrderId) and now and then cancel one of
their open orders, at that peer, for ``duration_s``. Every operation is recorded in the
history (JSONL, one object per event): ``invoke``, then ``ok`` (with the order id), ``fail``
(definitely not applied) or ``info`` (unknown outcome: timeout, lost connection). After an
``info`` the client retries the same clientOrderId, as a careful trader would, so a retry
can never create a second order. It also writes the current leader to ``leader`` every half
second, for the nemesis to aim at.
"""

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from peerbook.client import (
    AsyncClient,
    ExchangeNotAvailable,
    NetworkError,
    OrderNotFound,
    PeerbookClientError,
)


class History:
    """Appends events to a JSONL file."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def record(self, **event: Any) -> None:
        event["t"] = time.time()
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()


async def _client(config: dict[str, Any], peer: dict[str, str], task: int,
                  history: History, rng: random.Random) -> None:  # fmt: skip
    client = AsyncClient.from_data_dir(config["grape"], Path(peer["data_dir"]),
                                       network=config["network"], timeout_s=3)  # fmt: skip
    deadline = time.monotonic() + config["duration_s"]
    opened: list[str] = []
    n = 0
    try:
        while time.monotonic() < deadline:
            if opened and rng.random() < 0.2:
                order_id = opened.pop(rng.randrange(len(opened)))
                history.record(peer=peer["peer"], op="cancel", id=order_id, type="invoke")
                try:
                    await client.cancel_order(order_id)
                    history.record(peer=peer["peer"], op="cancel", id=order_id, type="ok")
                except PeerbookClientError as exc:
                    kind = "info" if isinstance(exc, NetworkError) else "fail"
                    history.record(peer=peer["peer"], op="cancel", id=order_id, type=kind,
                                   error=str(exc)[:200])  # fmt: skip
                continue
            n += 1
            cid = f"{peer['peer']}-{task}-{n}"
            side = rng.choice(("buy", "sell"))
            price = f"{30000 + rng.randint(-5, 5)}"
            while time.monotonic() < deadline + 10:
                history.record(peer=peer["peer"], op="create", cid=cid, type="invoke")
                try:
                    order = await client.create_order("BTC/USD", "limit", side, "0.001", price,
                                                      {"clientOrderId": cid})  # fmt: skip
                except (ExchangeNotAvailable, OrderNotFound) as exc:
                    history.record(peer=peer["peer"], op="create", cid=cid, type="fail",
                                   error=str(exc)[:200])  # fmt: skip
                    await asyncio.sleep(0.2)  # not applied: try again later, same id
                    continue
                except NetworkError as exc:
                    history.record(peer=peer["peer"], op="create", cid=cid, type="info",
                                   error=str(exc)[:200])  # fmt: skip
                    await asyncio.sleep(0.1)
                    continue
                except PeerbookClientError as exc:
                    history.record(peer=peer["peer"], op="create", cid=cid, type="fail",
                                   error=str(exc)[:200])  # fmt: skip
                    break
                history.record(peer=peer["peer"], op="create", cid=cid, type="ok",
                               id=order["id"])  # fmt: skip
                if order["status"] == "open":
                    opened.append(order["id"])
                break
    finally:
        await client.close()


async def _watch_leader(config: dict[str, Any], out: Path) -> None:
    clients = [AsyncClient(config["grape"], network=config["network"], peer=p["peer"],
                           timeout_s=1) for p in config["peers"]]  # fmt: skip
    try:
        while True:
            for client in clients:
                try:
                    info = (await client.fetch_status())["info"]
                except PeerbookClientError:
                    continue
                if info["role"] == "leader":
                    out.write_text(info["peer"])
                    break
            await asyncio.sleep(0.5)
    finally:
        for client in clients:
            await client.close()


async def main(config: dict[str, Any]) -> None:
    rng = random.Random(config["seed"])
    with open(config["history"], "a", encoding="utf-8") as file:
        history = History(file)
        watcher = asyncio.create_task(_watch_leader(config, Path(config["leader_file"])))
        await asyncio.gather(*(
            _client(config, peer, task, history, random.Random(rng.random()))
            for peer in config["peers"] for task in range(config["clients"])
        ))  # fmt: skip
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
