"""The checker of a fault run: the invariants of the research note on testing under faults.

``python -m tests.nemesis.checker CONFIG.json`` (inside the clients' namespace, after the
faults are healed) reads the history and asks every peer, and prints one JSON summary:

- converged: every peer reports the same (applied, digest), and an offline replay of a peer's
  command log gives that digest too;
- lost: acknowledged orders missing (or different) in the replayed log, or at some peer
  (every peer is asked for every acknowledged order, or for a seeded sample of
  `LOOKUP_SAMPLE` of them in a long run);
- duplicated: a clientOrderId with more than one order (in the replayed log: every order);
- phantoms: orders whose clientOrderId no client ever sent;
- unknowns: operations whose outcome was unknown, and how they resolved (present or absent);
- book_crossed: a book that rests crossed;
- liveness_ms: how long a new order took at each peer after healing;
- bad_input: malformed requests sent, and how many were answered with a contract error.

`check` is also called directly by the checker's own tests, with doctored answers, to prove
that it fails when it must (the negative controls).

``--offline CONFIG.json`` checks a run kept with ``--keep`` after its cluster is gone: every
peer's state is its command log replayed (the same digest it reported, by construction of
`peerbook replay`), and the live checks (liveness after healing, bad input) are left out.
"""

import asyncio
import json
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from peerbook.client import AsyncClient, NetworkError, PeerbookClientError
from peerbook.node.command_log import replay_arguments

__all__ = ["LOOKUP_SAMPLE", "Observed", "check", "observe"]

LOOKUP_SAMPLE = 20_000
"""How many acknowledged orders each peer is asked for, at most (the replayed log is checked
for all of them)."""

Observed = dict[str, Any]
"""What the peers answered: ``statuses``, ``orders`` (by peer: list of order dicts as that
peer's owner sees them), ``lookup`` (by peer: order id -> order or None, for every
acknowledged id looked up), ``by_cid`` (owner -> cid -> order or None, for unknown cids),
``books``, ``replayed`` (applied and digest of the offline replay, and ``orders``: every
order of the log by id, when known)."""


def _outcomes(history: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (peer, cid) of creates: the id if acknowledged, and whether any attempt was
    unknown."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for event in history:
        if event["op"] != "create":
            continue
        state = found.setdefault((event["peer"], event["cid"]), {"id": None, "unknown": False})
        if event["type"] == "ok":
            state["id"] = event["id"]
        elif event["type"] == "info":
            state["unknown"] = True
    return found


def check(history: list[dict[str, Any]], observed: Observed) -> dict[str, Any]:
    """The summary of one run; ``ok`` is true only if every invariant holds."""
    outcomes = _outcomes(history)
    statuses = observed["statuses"]
    states = {(s["applied"], s["digest"]) for s in statuses}
    replay_state = (observed["replayed"]["applied"], observed["replayed"]["digest"])
    converged = len(states) == 1 and replay_state in states
    lost = []
    logged = observed["replayed"].get("orders")
    places = list(observed["lookup"].items())
    if logged is not None:
        places.append(("log", logged))
    for (peer, cid), state in outcomes.items():
        if state["id"] is None:
            continue
        for where, lookup in places:
            if where != "log" and state["id"] not in lookup:
                continue  # not in this peer's sample
            order = lookup.get(state["id"])
            if order is None or order["clientOrderId"] != cid or order["info"]["peer"] != peer:
                lost.append({"peer": peer, "cid": cid, "id": state["id"], "missing_at": where})
    duplicated, phantoms = [], []
    for owner, orders in observed["orders"].items():
        seen: dict[str, int] = {}
        for order in orders:
            cid = order["clientOrderId"]
            seen[cid] = seen.get(cid, 0) + 1
            if (owner, cid) not in outcomes:
                phantoms.append({"peer": owner, "cid": cid, "id": order["id"]})
        duplicated += [{"peer": owner, "cid": c, "count": n} for c, n in seen.items() if n > 1]
    unknown_present = unknown_absent = 0
    for (peer, cid), state in outcomes.items():
        if state["unknown"] and state["id"] is None:
            if observed["by_cid"].get(peer, {}).get(cid) is None:
                unknown_absent += 1
            else:
                unknown_present += 1
    crossed = []
    for peer, book in observed["books"].items():
        bids, asks = book["bids"], book["asks"]
        if bids and asks and Decimal(bids[0][0]) >= Decimal(asks[0][0]):
            crossed.append(peer)
    creates = [e for e in history if e["op"] == "create"]
    summary = {
        "invoked": len({(e["peer"], e["cid"]) for e in creates}),
        "acknowledged": sum(1 for s in outcomes.values() if s["id"] is not None),
        "failed_attempts": sum(1 for e in creates if e["type"] == "fail"),
        "unknown_attempts": sum(1 for e in creates if e["type"] == "info"),
        "unknown_resolved_present": unknown_present,
        "unknown_resolved_absent": unknown_absent,
        "lost": len(lost),
        "duplicated": len(duplicated),
        "phantoms": len(phantoms),
        "converged": converged,
        "looked_up_per_peer": max(
            (len(lookup) for lookup in observed["lookup"].values()), default=0
        ),
        "book_crossed": crossed,
        "examples": {"lost": lost[:5], "duplicated": duplicated[:5], "phantoms": phantoms[:5]},
    }
    summary["ok"] = bool(converged and not lost and not duplicated and not phantoms
                         and not crossed)  # fmt: skip
    return summary


async def _retrying(call: Callable[..., Awaitable[Any]], *args: Any, timeout_s: float = 30) -> Any:
    """``call(*args)``, retried while the peer is unreachable or cannot commit (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call(*args)
        except NetworkError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def observe(config: dict[str, Any], history: list[dict[str, Any]]) -> Observed:
    """Ask every peer what the checker needs (after waiting for them to converge)."""
    grape, network = config["grape"], config["network"]
    peers = [p["peer"] for p in config["peers"]]
    readers = {p: AsyncClient(grape, network=network, peer=p, timeout_s=5) for p in peers}
    try:
        deadline = time.monotonic() + config.get("settle_s", 60)
        while True:
            statuses = [(await _retrying(r.fetch_status))["info"] for r in readers.values()]
            if len({(s["applied"], s["digest"]) for s in statuses}) == 1:
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        outcomes = _outcomes(history)
        acked = {s["id"] for s in outcomes.values() if s["id"] is not None}
        lookup: dict[str, dict[str, Any]] = {}
        gate = asyncio.Semaphore(32)

        async def find(reader: AsyncClient, order_id: str) -> Any:
            async with gate:
                try:
                    return await _retrying(reader.fetch_order, order_id)
                except PeerbookClientError:
                    return None

        ids = _sample(acked, config.get("seed", 0))
        for peer, reader in readers.items():
            found = await asyncio.gather(*(find(reader, i) for i in ids))
            lookup[peer] = dict(zip(ids, found, strict=True))
        owners = {p["peer"]: AsyncClient.from_data_dir(grape, Path(p["data_dir"]), network=network)
                  for p in config["peers"]}  # fmt: skip
        by_cid: dict[str, dict[str, Any]] = {}
        for peer, owner in owners.items():
            by_cid[peer] = {}
            for (who, cid), state in outcomes.items():
                if who == peer and state["unknown"] and state["id"] is None:
                    try:
                        by_cid[peer][cid] = await owner.fetch_order(None, "BTC/USD",
                                                                    {"clientOrderId": cid})  # fmt: skip
                    except PeerbookClientError:
                        by_cid[peer][cid] = None
            await owner.close()
        books = {p: await _retrying(r.fetch_order_book, "BTC/USD") for p, r in readers.items()}
    finally:
        for reader in readers.values():
            await reader.close()
    replayed = replay(Path(config["peers"][0]["data_dir"]))
    return {"statuses": statuses, "orders": _by_owner(replayed["orders"].values()),
            "lookup": lookup, "by_cid": by_cid, "books": books, "replayed": replayed}  # fmt: skip


def _sample(acked: set[str], seed: int) -> list[str]:
    ids = sorted(acked, key=int)
    if len(ids) <= LOOKUP_SAMPLE:
        return ids
    return sorted(random.Random(seed).sample(ids, LOOKUP_SAMPLE), key=int)


def _by_owner(orders: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    owned: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        owned.setdefault(order["info"]["peer"], []).append(order)
    return owned


def replay(data_dir: Path) -> dict[str, Any]:
    """A peer's command log replayed offline: ``applied``, ``digest`` and ``orders`` (every
    order of the log, by id, in its final state)."""
    arguments = replay_arguments(data_dir / "commands.jsonl")
    done = subprocess.run([sys.executable, "-m", "peerbook", "replay", *arguments],
                          capture_output=True, text=True, check=True, timeout=900)  # fmt: skip
    orders: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        if line.startswith('{"order"'):
            order = json.loads(line)["order"]
            orders[order["id"]] = order
        elif line.startswith('{"applied"'):
            last = json.loads(line)
    return {"applied": last["applied"], "digest": last["digest"], "orders": orders}


def observe_offline(config: dict[str, Any], history: list[dict[str, Any]]) -> Observed:
    """What the peers of a kept run held, from their command logs (the cluster is gone)."""
    outcomes = _outcomes(history)
    ids = _sample({s["id"] for s in outcomes.values() if s["id"] is not None},
                  config.get("seed", 0))  # fmt: skip
    statuses, lookup, books = [], {}, {}
    replayed: dict[str, Any] = {}
    for peer in config["peers"]:
        replayed = replay(Path(peer["data_dir"]))
        orders = replayed["orders"]
        statuses.append({"applied": replayed["applied"], "digest": replayed["digest"]})
        lookup[peer["peer"]] = {i: orders.get(i) for i in ids}
        books[peer["peer"]] = _book(orders.values())
    by_cid: dict[str, dict[str, Any]] = {}
    by_key = {(o["info"]["peer"], o["clientOrderId"]): o for o in replayed["orders"].values()}
    for (peer, cid), state in outcomes.items():
        if state["unknown"] and state["id"] is None:
            by_cid.setdefault(peer, {})[cid] = by_key.get((peer, cid))
    return {"statuses": statuses, "orders": _by_owner(replayed["orders"].values()),
            "lookup": lookup, "by_cid": by_cid, "books": books, "replayed": replayed}  # fmt: skip


def _book(orders: Iterable[dict[str, Any]]) -> dict[str, list[list[str]]]:
    """The best bid and ask of the resting BTC/USD orders (enough to see a crossed book)."""
    resting = [o for o in orders if o["status"] == "open" and o["symbol"] == "BTC/USD"]
    bids = sorted((o for o in resting if o["side"] == "buy"), key=lambda o: -Decimal(o["price"]))
    asks = sorted((o for o in resting if o["side"] == "sell"), key=lambda o: Decimal(o["price"]))
    return {"bids": [[o["price"]] for o in bids[:1]], "asks": [[o["price"]] for o in asks[:1]]}


async def liveness_and_bad_input(config: dict[str, Any]) -> dict[str, Any]:
    """Time a new order at each peer after healing; send malformed requests to each."""
    liveness: dict[str, int | None] = {}
    answered = sent = 0
    for peer in config["peers"]:
        client = AsyncClient.from_data_dir(config["grape"], Path(peer["data_dir"]),
                                           network=config["network"], timeout_s=5)  # fmt: skip
        started = time.monotonic()
        try:
            params = {"clientOrderId": f"live-{time.time_ns()}"}
            try:
                await _retrying(client.create_order, "BTC/USD", "limit", "buy", "0.001", "1",
                                params)  # fmt: skip
                liveness[peer["peer"]] = round((time.monotonic() - started) * 1000)
            except PeerbookClientError:
                liveness[peer["peer"]] = None  # no write within 30 s: not live
            for action, args in (("fetchOrderBook", ["NOPE/USD"]), ("fetchOrder", [None]),
                                 ("nonsense", []), ("createOrder", ["BTC/USD"])):  # fmt: skip
                sent += 1
                try:
                    await client.call(action, args, write=action == "createOrder")
                except PeerbookClientError as exc:
                    answered += str(exc).split(":", 1)[0] in (
                        "BadSymbol",
                        "BadRequest",
                        "InvalidOrder",
                        "OrderNotFound",
                    )
        finally:
            await client.close()
    return {"liveness_ms": liveness, "bad_input": {"sent": sent, "answered": answered}}


async def main(config: dict[str, Any]) -> None:
    history = [json.loads(line) for line in Path(config["history"]).read_text().splitlines()]
    observed = await observe(config, history)
    summary = check(history, observed)
    summary.update(await liveness_and_bad_input(config))
    summary["ok"] = (
        summary["ok"] and summary["bad_input"]["answered"] == summary["bad_input"]["sent"]
    )
    print(json.dumps(summary), flush=True)


def main_offline(config: dict[str, Any]) -> None:
    history = [json.loads(line) for line in Path(config["history"]).read_text().splitlines()]
    summary = check(history, observe_offline(config, history))
    summary.update({"offline": True, "liveness_ms": None, "bad_input": None})
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--offline":
        main_offline(json.loads(Path(sys.argv[2]).read_text()))
    else:
        asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
