"""The compiled hot path (`peerbook.engine._native`) against the engine in Python alone.

Every other engine test runs under both paths (tests/engine/conftest.py) and compares
outcomes with the contract or the naive reference. These tests compare the two paths with
each other, state and all: the same events (of the same classes), digests and order records
after every command, and at the end the same books down to each heap and each level's queue,
dead orders included, since a later command's outcome depends on them. Streams aim at what
the C code does differently from Python: 64-bit overflow of costs and level totals, strings
that are not ASCII in the digest record, client order ids, queues compacted by cancels and
heaps rebuilt by levels coming and going.
"""

import contextlib
import gc
import os
import random
import tracemalloc
from collections.abc import Callable, Iterator, Sequence

import pytest

from peerbook.engine import (
    QUANTITY_MAX,
    CancelOrder,
    Command,
    Event,
    Order,
    OrderState,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    snapshot,
)
from peerbook.engine.engine import COMPILED, Engine, PurePythonEngine
from peerbook.errors import SnapshotError
from tests.engine.streams import random_stream

pytestmark = pytest.mark.skipif(not COMPILED, reason="peerbook.engine._native is not built")

EPOCH_MS = 1_700_000_000_000
_FIELDS = Order.__slots__


@pytest.fixture(scope="module", autouse=True)
def engine_implementation() -> Iterator[str]:
    """Overrides the conftest's: this module compares both paths in every test."""
    yield "both"


def test_the_compiled_path_is_built_where_the_suite_requires_it() -> None:
    # scripts/test.sh builds it and sets this: a CI run on the Python path alone must fail.
    if os.environ.get("PEERBOOK_REQUIRE_COMPILED") == "1":
        assert COMPILED


def _order_state(order: Order) -> tuple[object, ...]:
    return tuple(getattr(order, name) for name in _FIELDS)


def _book_state(engine: Engine) -> list[object]:
    state: list[object] = []
    for symbol in engine.markets:
        book = engine.book(symbol)
        for side in (book.bids, book.asks):
            state.append(list(side.heap))
            for price, level in side.levels.items():
                queue = [(order.order_id, order.state) for order in level.orders]
                state.append((price, level.price, level.count, level.quantity, queue))
    return state


def _engines() -> tuple[Engine, Engine]:
    compiled, python = Engine(), PurePythonEngine()
    assert type(compiled).apply is not type(python).apply is PurePythonEngine.apply
    return compiled, python


def _events(events: tuple[Event, ...]) -> list[tuple[str, tuple[object, ...]]]:
    return [(type(event).__name__, tuple(event)) for event in events]


def assert_paths_agree(
    commands: Sequence[Command], between: Callable[[Engine], None] | None = None
) -> Engine:
    """Apply ``commands`` to both engines, comparing after every command and at the end;
    ``between`` runs on both after every command (retiring, say)."""
    compiled, python = _engines()
    for step, command in enumerate(commands, start=1):
        got, want = compiled.apply(command), python.apply(command)
        assert _events(got) == _events(want), f"step {step}: {command!r}"
        assert compiled.digest() == python.digest(), f"step {step}: {command!r}"
        if between is not None:
            between(compiled)
            between(python)
    assert (compiled.sequence, compiled.trade_count) == (python.sequence, python.trade_count)
    assert [_order_state(o) for o in compiled.orders()] == [
        _order_state(o) for o in python.orders()
    ]
    assert _book_state(compiled) == _book_state(python)
    assert compiled.digest_state() == python.digest_state()
    compiled.check_invariants()
    return compiled


@pytest.mark.parametrize("seed", range(40))
def test_both_paths_agree_on_the_shared_random_streams(seed: int) -> None:
    assert_paths_agree(random_stream(seed, 600))


def _stream(
    seed: int,
    length: int,
    *,
    prices: tuple[int, int],
    amounts: tuple[int, int],
    owners: tuple[str, ...] = ("p1", "p2", "p3"),
    client_ids: tuple[str, ...] = (),
    cancel_share: float = 0.25,
) -> list[Command]:
    """Limit orders of every time in force, market orders, cancels of earlier ids (most of
    them resting, some not, some by the wrong owner) and repeated client order ids."""
    rng = random.Random(seed)
    commands: list[Command] = []
    placed: list[tuple[int, str]] = []
    for index in range(length):
        timestamp = EPOCH_MS + index
        owner = rng.choice(owners)
        roll = rng.random()
        if roll < cancel_share and placed:
            order_id, placer = rng.choice(placed)
            who = placer if rng.random() < 0.9 else owner
            commands.append(CancelOrder(who, timestamp, order_id))
            continue
        side = rng.choice((Side.BUY, Side.SELL))
        amount = rng.randint(*amounts)
        client_order_id = rng.choice(client_ids) if client_ids and rng.random() < 0.5 else None
        if roll < cancel_share + 0.08:
            command = PlaceOrder(owner, timestamp, "BTC/USD", side, OrderType.MARKET, amount, None,
                                 client_order_id=client_order_id)  # fmt: skip
        else:
            tif = rng.choice((TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK))
            command = PlaceOrder(owner, timestamp, "BTC/USD", side, OrderType.LIMIT, amount,
                                 rng.randint(*prices), tif, rng.random() < 0.05,
                                 client_order_id)  # fmt: skip
        placed.append((index + 1, owner))
        commands.append(command)
    return commands


@pytest.mark.parametrize("seed", range(10))
def test_both_paths_agree_where_costs_and_level_totals_pass_64_bits(seed: int) -> None:
    # Prices and amounts near 10**15: one fill's cost is near 10**30, and a level of a few
    # thousand maximal orders totals more than 2**63 lots.
    top = QUANTITY_MAX
    engine = assert_paths_agree(
        _stream(seed, 400, prices=(top - 3, top), amounts=(top // 2, top), cancel_share=0.1)
    )
    assert any(order.cost >= 2**63 for order in engine.orders())


def test_both_paths_agree_when_a_level_totals_more_than_64_bits() -> None:
    resting = [
        PlaceOrder("p1", EPOCH_MS + i, "BTC/USD", Side.SELL, OrderType.LIMIT, QUANTITY_MAX, 7)
        for i in range(10_000)
    ]
    taker = PlaceOrder("p2", EPOCH_MS, "BTC/USD", Side.BUY, OrderType.LIMIT, QUANTITY_MAX, 7)
    cancels = [CancelOrder("p1", EPOCH_MS, order_id) for order_id in range(2, 9_000)]
    full = assert_paths_agree(resting).book("BTC/USD").asks.levels[7]
    assert full.quantity == 10_000 * QUANTITY_MAX > 2**63
    engine = assert_paths_agree([*resting, taker, *cancels])
    assert engine.book("BTC/USD").asks.levels[7].count == 10_000 - 1 - 8_998


@pytest.mark.parametrize("seed", range(10))
def test_both_paths_agree_on_strings_that_are_not_ascii(seed: int) -> None:
    # The C record writer takes ASCII only and hands anything else to the Python formatter.
    owners = ("p1", "pé", "ピア", "p\ud800")
    client_ids = ("c1", "c-é", "\ud83d", "注文")
    assert_paths_agree(
        _stream(seed, 500, prices=(95, 105), amounts=(1, 20), owners=owners, client_ids=client_ids)
    )


@pytest.mark.parametrize("seed", range(10))
def test_both_paths_agree_on_repeated_client_order_ids(seed: int) -> None:
    client_ids = tuple(f"id-{n}" for n in range(30))
    assert_paths_agree(_stream(seed, 800, prices=(90, 110), amounts=(1, 30), client_ids=client_ids))


@pytest.mark.parametrize("seed", range(5))
def test_both_paths_agree_while_closed_orders_retire(seed: int) -> None:
    def retire_some(engine: Engine) -> None:
        # the same ids on both engines: a generator seeded by where the engine is
        picks = random.Random(engine.sequence * 7 + seed)
        for order_id in picks.sample(range(1, engine.sequence + 1), min(engine.sequence, 4)):
            engine.retire(order_id)

    client_ids = tuple(f"id-{n}" for n in range(50))
    assert_paths_agree(
        _stream(seed, 800, prices=(95, 105), amounts=(1, 30), client_ids=client_ids),
        between=retire_some,
    )


def test_both_paths_agree_when_cancels_compact_queues_and_levels_rebuild_heaps() -> None:
    # Many orders at few prices, most cancelled before they match (queues compacted); then
    # levels placed and emptied across a wide range (stale heap keys, heaps rebuilt).
    rng = random.Random(11)
    commands: list[Command] = []
    for i in range(3_000):
        commands.append(
            PlaceOrder("p1", EPOCH_MS + i, "BTC/USD", Side.SELL, OrderType.LIMIT, 5, 100 + i % 3)
        )
    commands += [
        CancelOrder("p1", EPOCH_MS, order_id) for order_id in rng.sample(range(1, 3_001), 2_900)
    ]
    for i in range(3_000):
        price = rng.randint(1_000, 3_000)
        commands.append(PlaceOrder("p2", EPOCH_MS, "BTC/USD", Side.BUY, OrderType.LIMIT, 2, price))
        if i % 3 == 0:
            commands.append(CancelOrder("p2", EPOCH_MS, len(commands) - rng.randint(0, 5)))
    commands.append(PlaceOrder("p3", EPOCH_MS, "BTC/USD", Side.SELL, OrderType.MARKET, 10**6, None))
    engine = assert_paths_agree(commands)
    assert all(
        order.state is not OrderState.OPEN or order.side is Side.BUY for order in engine.orders()
    )


def test_the_compiled_path_frees_what_it_no_longer_holds() -> None:
    # A reference the C code forgot to release would keep orders, events or levels alive
    # after the engine is gone; orders are also left untracked by the cyclic collector, so
    # reference counting alone must free them.
    commands = random_stream(3, 3_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        engine, _ = _engines()
        for command in commands:
            engine.apply(command)
        assert engine.order_count > 1_000
        del engine
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, f"{after - before} bytes still held"


def test_the_compiled_path_hands_misuse_to_python_which_raises_instead_of_crashing() -> None:
    # The C code reads slots at fixed offsets: anything not a whole Engine, or an order
    # record missing a field, must reach the Python method (found by a reviewing helper:
    # each of these crashed the process before).
    place = PlaceOrder("p1", EPOCH_MS, "BTC/USD", Side.SELL, OrderType.LIMIT, 5, 100)
    with pytest.raises(AttributeError):
        Engine.apply(object(), place)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        Engine.__new__(Engine).apply(place)
    engine, _ = _engines()
    engine.apply(place)
    order = engine.order(1)
    assert order is not None
    del order.symbol
    with pytest.raises(AttributeError):
        engine.apply(CancelOrder("p1", EPOCH_MS, 1))
    assert [type(e).__name__ for e in _engines()[0].apply(command=place)] == [
        "OrderAccepted",
        "OrderRested",
    ]


@pytest.mark.parametrize("engine_class", [Engine, PurePythonEngine])
def test_a_store_of_client_order_ids_that_raises_leaves_the_engine_as_it_was(
    engine_class: type[Engine],
) -> None:
    # The C path asks the store before it takes a sequence number; the Python path took one
    # first and kept it (found by a reviewing helper). Now neither does.
    class Failing:
        def order_id(self, owner: str, client_order_id: str) -> int | None:
            raise OSError("database is locked")

    engine = engine_class()
    engine.keep_client_ids_in(Failing())
    digest = engine.digest()
    for command in (
        PlaceOrder(
            "p1", EPOCH_MS, "BTC/USD", Side.SELL, OrderType.LIMIT, 5, 100, client_order_id="c"
        ),
        CancelOrder("p1", EPOCH_MS, None, "c"),
    ):
        with pytest.raises(OSError, match="locked"):
            engine.apply(command)
        assert (engine.sequence, engine.digest(), engine.order_count) == (0, digest, 0)


def test_orders_of_a_snapshot_are_read_in_c_as_python_reads_them() -> None:
    # Every record the engine writes, and records one field from well formed, which the C
    # reader must hand to Python (whose error names the field).
    assert snapshot.decode_order is not snapshot._decode_order
    engine = assert_paths_agree(random_stream(5, 800))
    records = [snapshot.encode_order(order) for order in engine.orders()]
    big = [*records[0][:11], 2**80, *records[0][12:]]  # a cost past 64 bits
    for record in [*records, big]:
        got, want = snapshot.decode_order(record), snapshot._decode_order(record)
        assert _order_state(got) == _order_state(want), record
        assert type(got) is Order
    wrong: list[tuple[int, object]] = [
        (0, -1), (0, True), (1, 5), (2, 7), (3, None), (4, 2), (5, -1), (6, 3), (7, 0),
        (8, -5), (9, "1"), (10, 1.0), (11, -(2**80)), (12, None), (13, "t"), (14, 5),
    ]  # fmt: skip
    for field, value in wrong:
        record = list(records[0])
        record[field] = value
        with pytest.raises((SnapshotError, ValueError)) as from_c:
            snapshot.decode_order(record)
        with pytest.raises((SnapshotError, ValueError)) as from_python:
            snapshot._decode_order(record)
        assert (type(from_c.value), str(from_c.value)) == (
            type(from_python.value),
            str(from_python.value),
        )
    malformed: list[object] = [[], records[0][:14], tuple(records[0]), "x"]
    for value in malformed:
        with pytest.raises(SnapshotError):
            snapshot.decode_order(value)


class _Finalizer:
    """An object in a reference cycle whose finalizer runs ``action`` when a garbage
    collection frees it: set up to run inside the next allocation the C code makes."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.cycle = self

    def __del__(self) -> None:
        self.action()


@contextlib.contextmanager
def _collect_at_the_next_allocation(action: Callable[[], None]) -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.collect()
    gc.disable()
    _Finalizer(action)
    gc.set_threshold(1)
    gc.enable()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def test_the_compiled_path_holds_what_a_collection_during_its_allocations_could_free() -> None:
    # A garbage collection can run inside any allocation, and a finalizer there can change
    # what the C code read before it (found by a reviewing helper): the event must still
    # carry the sequence the cancel took, and a record changed under the reader goes to
    # Python, which reads what the record has become.
    engine, _ = _engines()
    for _ in range(300):  # sequence numbers past CPython's cached small integers
        engine.apply(CancelOrder("p1", EPOCH_MS, 10**9))
    engine.apply(PlaceOrder("p1", EPOCH_MS, "BTC/USD", Side.SELL, OrderType.LIMIT, 5, 100))

    def reset_sequence() -> None:
        engine.sequence = 0
        _ = [10**9 + i for i in range(1_000)]

    # Everything the call needs is built first, so that the C code makes the next allocation;
    # Engine.apply read from the class is the C function itself, with no method to bind.
    apply, cancel = Engine.apply, CancelOrder("p1", EPOCH_MS, 301)
    with _collect_at_the_next_allocation(reset_sequence):
        events = apply(engine, cancel)
    assert [tuple(event) for event in events] == [(302, 301, 5)]

    record = snapshot.encode_order(engine.order(301) or pytest.fail("no order 301"))
    record[1] = "".join(["own", "er"])  # held by the list alone

    def replace_record() -> None:
        record.clear()
        record.extend([[0]] * 1_000)

    with (
        _collect_at_the_next_allocation(replace_record),
        pytest.raises(SnapshotError, match="1000 fields"),
    ):
        snapshot.decode_order(record)
