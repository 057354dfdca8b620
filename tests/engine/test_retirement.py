"""Retiring closed orders (`Engine.retire`) is invisible to every outcome.

An engine that retires closed orders at random points must give the same events, digest and
answers as one that keeps every order, survive a snapshot round trip, and become the same
engine again when the full records are reinstated.
"""

import base64
import copy
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerbook.engine import CancelOrder, Command, Engine, OrderState
from peerbook.engine.snapshot import restore, snapshot
from peerbook.errors import InvalidCommand, SnapshotError
from tests.engine.streams import OWNERS, random_stream


def _with_late_cancels(seed: int, length: int) -> list[Command]:
    """The shared stream plus cancels by client order id, with wrong owners and markets."""
    rng = random.Random(seed)
    commands = random_stream(seed, length)
    for index in range(0, len(commands), 7):
        owner = rng.choice(OWNERS)
        symbol = rng.choice((None, "BTC/USD", "ETH/USD"))
        client_order_id = f"c{rng.randint(0, length)}"
        timestamp = 1_700_000_000_000 + index
        commands.insert(index, CancelOrder(owner, timestamp, None, client_order_id, symbol))
    return commands


def _retire_some(engine: Engine, rng: random.Random) -> None:
    for order_id in rng.sample(range(1, engine.sequence + 1), min(engine.sequence, 5)):
        order = engine.order(order_id)
        retired = engine.retire(order_id)
        assert retired == (order is not None and order.state >= OrderState.FILLED)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(0, 800))
def test_retiring_changes_no_event_digest_or_answer(seed: int, length: int) -> None:
    rng = random.Random(seed)
    keeper, retirer = Engine(), Engine()
    for command in _with_late_cancels(seed, length):
        assert retirer.apply(command) == keeper.apply(command)
        assert retirer.digest() == keeper.digest()
        _retire_some(retirer, rng)
    retirer.check_invariants()
    for order in keeper.orders():
        kept = retirer.order(order.order_id)
        retired = retirer.retired(order.order_id)
        assert (kept is None) != (retired is None)
        if retired is not None:
            assert retired == (order.order_id, order.owner, order.symbol, order.state)
        if order.client_order_id is not None:
            found = retirer.order_id_by_client_id(order.owner, order.client_order_id)
            assert found == order.order_id


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(1, 800))
def test_snapshot_carries_retired_orders(seed: int, length: int) -> None:
    rng = random.Random(seed)
    commands = _with_late_cancels(seed, length)
    half = len(commands) // 2
    keeper, retirer = Engine(), Engine()
    for command in commands[:half]:
        keeper.apply(command)
        retirer.apply(command)
        _retire_some(retirer, rng)
    restored = restore(snapshot(retirer))
    assert snapshot(restored) == snapshot(retirer)
    restored.check_invariants()
    for command in commands[half:]:
        assert restored.apply(command) == keeper.apply(command)
    assert restored.digest() == keeper.digest()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(1, 600))
def test_reinstating_the_full_records_gives_the_engine_that_kept_them(
    seed: int, length: int
) -> None:
    rng = random.Random(seed)
    keeper, retirer = Engine(), Engine()
    for command in _with_late_cancels(seed, length):
        keeper.apply(command)
        retirer.apply(command)
        _retire_some(retirer, rng)
    restored = restore(snapshot(retirer))
    records = [copy.copy(keeper.order(r.order_id)) for r in restored.retired_orders()]
    restored.reinstate(o for o in records if o is not None)
    restored.check_invariants()
    assert restored.retired_count == 0
    assert snapshot(restored) == snapshot(keeper)


class _Archive:
    """A `RetiredClientIds` as a peer's audit trail is one: it holds an order's client order
    id before the engine retires the order, and it may hold rows the engine must not believe
    (orders past the engine's state, after a peer went back to a snapshot)."""

    def __init__(self, length: int) -> None:
        self.rows = {(o, f"c{n}"): 10**6 + n for o in OWNERS for n in range(length + 1)}

    def order_id(self, owner: str, client_order_id: str) -> int | None:
        return self.rows.get((owner, client_order_id))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(1, 800))
def test_client_ids_kept_on_disk_change_no_event_digest_or_answer(seed: int, length: int) -> None:
    rng = random.Random(seed)
    archive = _Archive(length)
    keeper, retirer = Engine(), Engine()
    retirer.keep_client_ids_in(archive)
    for command in _with_late_cancels(seed, length):
        assert retirer.apply(command) == keeper.apply(command)
        for order_id in rng.sample(range(1, retirer.sequence + 1), min(retirer.sequence, 5)):
            order = retirer.order(order_id)
            if order is not None and order.client_order_id is not None:
                archive.rows[order.owner, order.client_order_id] = order_id  # written first
            retirer.retire(order_id)
    assert retirer.digest() == keeper.digest()
    retirer.check_invariants()
    assert not list(retirer.retired_client_order_ids())  # none left in memory
    for order in keeper.orders():
        if order.client_order_id is not None:
            found = retirer.order_id_by_client_id(order.owner, order.client_order_id)
            assert found == order.order_id
    # The snapshot lacks what left memory; reinstating the full records brings it back.
    restored = restore(snapshot(retirer))
    records = [copy.copy(keeper.order(r.order_id)) for r in restored.retired_orders()]
    restored.reinstate(o for o in records if o is not None)
    restored.check_invariants()
    assert snapshot(restored) == snapshot(keeper)


def test_reinstating_a_record_that_does_not_match_changes_nothing() -> None:
    engine = Engine()
    for command in random_stream(5, 400):
        engine.apply(command)
    closed = next(o for o in engine.orders() if o.state >= OrderState.FILLED)
    forged = copy.copy(closed)
    forged.owner = "someone else"
    before = snapshot(engine)
    assert engine.retire(closed.order_id)
    retired = snapshot(engine)
    with pytest.raises(InvalidCommand, match="is not retired as"):
        engine.reinstate([forged])
    assert snapshot(engine) == retired != before


def test_open_and_unknown_orders_do_not_retire() -> None:
    engine = Engine()
    for command in random_stream(9, 300):
        engine.apply(command)
    resting = next(o for o in engine.orders() if o.is_resting)
    assert not engine.retire(resting.order_id)
    assert not engine.retire(engine.sequence + 10)
    assert engine.retired_count == 0


def _retired_engine(seed: int, length: int, order: str = "ascending") -> Engine:
    """An engine that applied a random stream and then retired every closed order, in
    ascending or descending id order."""
    engine = Engine()
    for command in random_stream(seed, length):
        engine.apply(command)
    closed = [o.order_id for o in engine.orders() if o.state >= OrderState.FILLED]
    for order_id in closed if order == "ascending" else closed[::-1]:
        assert engine.retire(order_id)
    return engine


def test_a_snapshot_of_retired_orders_does_not_depend_on_the_order_they_retired_in() -> None:
    ascending, descending = _retired_engine(3, 500), _retired_engine(3, 500, "descending")
    assert ascending.retired_count > 50
    assert snapshot(ascending) == snapshot(descending)


def test_a_version_2_snapshot_listing_each_retired_order_is_still_read() -> None:
    engine = _retired_engine(4, 500)
    document = json.loads(snapshot(engine))
    retired = document["retired"]
    del retired["owners"], retired["packed"]
    retired["orders"] = [
        [r.order_id, r.owner, r.symbol, int(r.state)] for r in engine.retired_orders()
    ]
    document["version"] = 2
    restored = restore(json.dumps(document).encode())
    assert snapshot(restored) == snapshot(engine)
    assert list(restored.retired_orders()) == list(engine.retired_orders())


def _words(document: dict[str, Any]) -> list[int]:
    packed = base64.b64decode(document["retired"]["packed"])
    return [int.from_bytes(packed[i : i + 4], "little") for i in range(0, len(packed), 4)]


def _with_words(document: dict[str, Any], words: list[int]) -> bytes:
    packed = b"".join(word.to_bytes(4, "little") for word in words)
    document["retired"]["packed"] = base64.b64encode(packed).decode()
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "fault",
    ["open state", "unknown owner", "unknown market", "order id 0", "above the sequence",
     "also on record", "partial word", "not base64", "owner twice"],
)  # fmt: skip
def test_restore_refuses_packed_retired_orders_that_cannot_be(fault: str) -> None:
    engine = _retired_engine(6, 400)
    document = json.loads(snapshot(engine))
    words = _words(document)
    first = next(i for i, word in enumerate(words) if word)
    owners = document["retired"]["owners"]
    if fault == "open state":
        words[first] = words[first] & ~0b111 | int(OrderState.PARTIALLY_FILLED)
    elif fault == "unknown owner":
        words[first] = words[first] & 0x3FF | len(owners) << 10
    elif fault == "unknown market":
        words[first] = words[first] & ~(0x7F << 3) | 5 << 3
    elif fault == "order id 0":
        words[0] = words[first]
    elif fault == "above the sequence":
        words += [0] * (engine.sequence - len(words) + 1) + [words[first]]
    elif fault == "also on record":
        words[document["orders"][0][0]] = words[first]
    data = _with_words(document, words)
    if fault == "partial word":
        document["retired"]["packed"] = base64.b64encode(base64.b64decode(
            document["retired"]["packed"]) + b"\0").decode()  # fmt: skip
        data = json.dumps(document).encode()
    elif fault == "not base64":
        document["retired"]["packed"] = "!!!!"
        data = json.dumps(document).encode()
    elif fault == "owner twice":
        owners.append(owners[0])
        data = json.dumps(document).encode()
    with pytest.raises(SnapshotError):
        restore(data)
    intact = json.loads(snapshot(engine))  # the faults above, not the rewriting, are refused
    assert snapshot(restore(_with_words(intact, _words(intact)))) == snapshot(engine)
