"""The trade history as a snapshot part: what a peer rebuilds from a snapshot equals what it
built entry by entry, and a malformed dump is refused before anything changes."""

import json
from typing import Any

import pytest

from peerbook.engine import Engine
from peerbook.errors import SnapshotError
from peerbook.node.history import TradeHistory
from peerbook.replication import OrderStateMachine
from tests.replication.test_state_machine import entries_of, random_commands


def machine_with_history() -> tuple[OrderStateMachine, TradeHistory]:
    machine = OrderStateMachine(Engine())
    history = TradeHistory(machine.engine)
    machine.parts["trades"] = history
    machine.listeners.append(history.on_applied)
    return machine, history


def views(history: TradeHistory, owners: list[str]) -> Any:
    return (
        {s: list(t) for s, t in history.trades.items()},
        {o: [(f.trade, f.side) for f in history.fills_of_owner(o)] for o in owners},
        {o: history.orders_of_owner(o) for o in owners},
    )


def test_a_history_installed_from_a_snapshot_equals_the_one_built_live() -> None:
    live, live_history = machine_with_history()
    for index, text in enumerate(entries_of(random_commands(21, 2000), 20), start=1):
        live.apply(index, text)
    assert any(live_history.trades.values())
    copy, copy_history = machine_with_history()
    copy.install(live.snapshot())
    owners = ["p1", "p2", "p3"]
    assert views(copy_history, owners) == views(live_history, owners)
    assert copy.snapshot() == live.snapshot()


@pytest.mark.parametrize(
    "damage",
    ["not a list", "short row", "unknown market", "bad side", "negative", "unknown order",
     "ids not increasing"],
)  # fmt: skip
def test_a_malformed_trade_dump_is_refused(damage: str) -> None:
    live, live_history = machine_with_history()
    for index, text in enumerate(entries_of(random_commands(4, 600), 10), start=1):
        live.apply(index, text)
    rows = live_history.dump()
    assert len(rows) >= 2
    document: Any = rows
    if damage == "not a list":
        document = {"trades": rows}
    elif damage == "short row":
        rows[0] = rows[0][:-1]
    elif damage == "unknown market":
        rows[0][2] = "DOGE/USD"
    elif damage == "bad side":
        rows[0][5] = 2
    elif damage == "negative":
        rows[0][3] = -1
    elif damage == "unknown order":
        rows[0][6] = 10**9
    else:
        rows[1][1] = rows[0][1]
    snapshot = json.loads(live.snapshot())
    snapshot["parts"]["trades"] = document
    target, _ = machine_with_history()
    before = target.snapshot()
    with pytest.raises(SnapshotError):
        target.install(json.dumps(snapshot).encode())
    assert target.snapshot() == before
