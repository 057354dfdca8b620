"""Differential tests: the same command streams into `Engine` and the naive `ReferenceEngine`.

The two must agree on every event (``OrderRejected.message`` aside: only the error class is
contract) and on every order's final state. Streams come from a seeded generator, so a failure
names the seed that reproduces it, and from Hypothesis, which shrinks a failure to a short
program. Stream shapes aim at different code paths: a shallow book where nearly every order
crosses, a deep book with many orders queued per level, a wide book of many sparse levels, and
two shapes whose drain phases cancel faster than orders match, so that the engine's lazily
deleted orders and levels pile up until it compacts its queues and rebuilds its heaps.
"""

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerbook.engine import (
    CancelOrder,
    Command,
    Engine,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
)
from peerbook.testing.reference import ReferenceEngine, comparable, record_of

OWNERS = ("alice", "bob", "carol")
SYMBOLS = ("BTC/USD", "ETH/USD")
UNKNOWN_SYMBOL = "DOGE/USD"
EPOCH_MS = 1_700_000_000_000
NIGHTLY = os.environ.get("HYPOTHESIS_PROFILE") == "nightly"


# -- comparing ---------------------------------------------------------------------------------


def assert_engines_agree(
    commands: Sequence[Command], label: str, check_invariants: bool = False
) -> Engine:
    """Apply ``commands`` to both engines, comparing after every command and at the end."""
    engine, reference = Engine(), ReferenceEngine()
    for step, command in enumerate(commands, start=1):
        got, want = comparable(engine.apply(command)), comparable(reference.apply(command))
        assert got == want, (
            f"{label}: step {step} {command!r}\n engine:    {got}\n reference: {want}"
        )
        if check_invariants:
            engine.check_invariants()
    assert engine.sequence == reference.sequence == len(commands), label
    assert engine.trade_count == reference.trade_count, label
    assert tuple(map(record_of, engine.orders())) == reference.orders(), label
    return engine


# -- seeded streams ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What a stream's book looks like.

    Attributes:
        bids, asks: inclusive ranges of the prices resting buy and sell orders are placed at.
        amount_max: largest amount of an ordinary order.
        sweep_rate: share of orders that cross the whole spread with up to ``sweep_max`` lots.
        cancel_rate: share of commands that are cancels.
        drain_every: if not 0, the second half of every period of this many commands is a
            drain phase of mostly cancels spread over all orders, which empties queues and
            levels faster than matching does (the engine's lazy-deletion compaction paths).
    """

    bids: tuple[int, int]
    asks: tuple[int, int]
    amount_max: int
    sweep_rate: float
    sweep_max: int
    cancel_rate: float
    drain_every: int = 0


SHALLOW = Shape(bids=(98, 102), asks=(98, 102), amount_max=10, sweep_rate=0.05, sweep_max=30,
                cancel_rate=0.2)  # fmt: skip
DEEP = Shape(bids=(97, 99), asks=(101, 103), amount_max=4, sweep_rate=0.08, sweep_max=80,
             cancel_rate=0.15)  # fmt: skip
WIDE = Shape(bids=(1, 500), asks=(300, 800), amount_max=50, sweep_rate=0.02, sweep_max=500,
             cancel_rate=0.25)  # fmt: skip
QUEUE = Shape(bids=(100, 100), asks=(101, 101), amount_max=3, sweep_rate=0.01, sweep_max=150,
              cancel_rate=0.1, drain_every=600)  # fmt: skip
CHURN = Shape(bids=(1, 1_000), asks=(1_001, 2_000), amount_max=5, sweep_rate=0.003,
              sweep_max=300, cancel_rate=0.1, drain_every=800)  # fmt: skip
SHAPES = (SHALLOW, DEEP, WIDE, QUEUE, CHURN)


@dataclass
class StreamGenerator:
    """Random but valid-looking commands, with a small share of every kind of fault.

    It remembers what it placed (sequence, owner, symbol) and which client order ids it used,
    so that cancels and repeats name real orders often; it does not know which placements
    were accepted, so some of those cancels are rightly refused.
    """

    rng: random.Random
    shape: Shape
    sequence: int = 0
    placed: list[tuple[int, str, str]] = field(default_factory=list)
    client_ids: list[tuple[str, str, str]] = field(default_factory=list)

    def stream(self, length: int) -> list[Command]:
        return [self.next() for _ in range(length)]

    def next(self) -> Command:
        self.sequence += 1
        if self.rng.random() < (0.95 if self._draining() else self.shape.cancel_rate):
            return self._cancel()
        return self._place()

    def _draining(self) -> bool:
        period = self.shape.drain_every
        return period > 0 and self.sequence % period >= period // 2

    def _chance(self, p: float) -> bool:
        return self.rng.random() < p

    def _timestamp(self) -> int:
        return -1 if self._chance(0.005) else EPOCH_MS + self.sequence

    def _place(self) -> PlaceOrder:
        rng, shape = self.rng, self.shape
        owner = "" if self._chance(0.005) else rng.choice(OWNERS)
        symbol = UNKNOWN_SYMBOL if self._chance(0.01) else rng.choice((*SYMBOLS, SYMBOLS[0]))
        side = rng.choice((Side.BUY, Side.SELL))
        kind = OrderType.MARKET if self._chance(0.1) else OrderType.LIMIT
        tif = rng.choice((TimeInForce.GTC,) * 6 + (TimeInForce.IOC, TimeInForce.FOK))
        amount = rng.randint(1, shape.amount_max)
        low, high = shape.bids if side is Side.BUY else shape.asks
        price: int | None = rng.randint(low, high)
        if self._chance(shape.sweep_rate):
            price = shape.asks[1] if side is Side.BUY else shape.bids[0]
            amount = rng.randint(1, shape.sweep_max)
        if kind is OrderType.MARKET:
            price = None
        post_only = self._chance(0.1)
        fault = rng.random()
        if fault < 0.01:
            amount = rng.choice((0, -1, -amount))
        elif fault < 0.02:
            price = rng.choice((0, -1))
        elif fault < 0.03:
            price = None if price is not None else rng.randint(low, high)
        client_order_id = self._client_order_id(owner, symbol)
        return PlaceOrder(
            owner, self._timestamp(), symbol, side, kind, amount, price, tif, post_only,
            client_order_id,
        )  # fmt: skip

    def _client_order_id(self, owner: str, symbol: str) -> str | None:
        """None (60%), a bad id (1%), a repeat of this owner's (up to 9%), else a new one."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.6:
            self.placed.append((self.sequence, owner, symbol))
            return None
        if roll < 0.61:
            return rng.choice(("", "x" * 65))  # refused: not 1 to 64 characters
        if roll < 0.7 and self.client_ids:
            owner_used, client_order_id, _ = rng.choice(self.client_ids)
            if owner_used == owner:
                return client_order_id  # a repeat: the original order's id comes back
        # Mostly new, but drawn at random so that an owner sometimes repeats one by chance.
        client_order_id = f"c{rng.randrange(10 * self.sequence + 10)}"
        self.placed.append((self.sequence, owner, symbol))
        self.client_ids.append((owner, client_order_id, symbol))
        return client_order_id

    def _cancel(self) -> CancelOrder:
        rng = self.rng
        roll = rng.random()
        if roll < (0.9 if self._draining() else 0.6) and self.placed:
            if self._draining():
                index = rng.randrange(len(self.placed))
            else:  # mostly recent orders, which are likelier to be resting still
                index = max(0, len(self.placed) - 1 - int(rng.expovariate(1 / 15)))
            # Usually forget it, so later cancels find other orders; sometimes cancel it again.
            order_id, owner, symbol = (
                self.placed[index] if self._chance(0.1) else self.placed.pop(index)
            )
            if self._chance(0.03):
                order_id = self.sequence + rng.randint(0, 100)  # not (yet) an order
        elif roll < 0.9 and self.client_ids:
            owner, client_order_id, symbol = rng.choice(self.client_ids)
            if self._chance(0.05):
                client_order_id = "never-used"
            return CancelOrder(owner, self._timestamp(), None, client_order_id,
                               self._cancel_symbol(symbol))  # fmt: skip
        else:
            return CancelOrder(rng.choice(OWNERS), self._timestamp(), None, None, None)
        if self._chance(0.05):
            owner = rng.choice(OWNERS)  # maybe someone else's order
        return CancelOrder(owner, self._timestamp(), order_id, None, self._cancel_symbol(symbol))

    def _cancel_symbol(self, symbol: str) -> str | None:
        roll = self.rng.random()
        if roll < 0.7:
            return None
        if roll < 0.95:
            return symbol
        return self.rng.choice((*SYMBOLS, UNKNOWN_SYMBOL))


def seeded_stream(seed: int, shape: Shape, length: int) -> list[Command]:
    return StreamGenerator(random.Random(seed), shape).stream(length)


def test_engines_agree_on_two_thousand_short_seeded_streams() -> None:
    for seed in range(2_000):
        rng = random.Random(seed)
        shape = SHAPES[seed % len(SHAPES)]
        commands = StreamGenerator(rng, shape).stream(rng.randint(1, 80))
        assert_engines_agree(commands, f"seed {seed} {shape}")


@pytest.mark.parametrize(
    ("shape", "seed"),
    [
        pytest.param(SHALLOW, 1, id="shallow-most-orders-cross"),
        pytest.param(SHALLOW, 2, id="shallow-most-orders-cross-2"),
        pytest.param(DEEP, 3, id="deep-many-orders-per-level"),
        pytest.param(DEEP, 4, id="deep-many-orders-per-level-2"),
        pytest.param(WIDE, 5, id="wide-sparse-levels"),
        pytest.param(QUEUE, 6, id="queues-drained-by-cancels"),
        pytest.param(CHURN, 7, id="levels-emptied-by-cancels"),
    ],
)
def test_engines_agree_on_long_streams(shape: Shape, seed: int) -> None:
    assert_engines_agree(seeded_stream(seed, shape, 5_000), f"seed {seed} {shape}")


def test_generated_streams_reach_every_outcome() -> None:
    """Guards the generator: a stream that never trades or never rejects proves little."""
    seen: set[str] = set()
    errors: set[str] = set()
    for shape in SHAPES:
        engine = Engine()
        for command in seeded_stream(7, shape, 3_000):
            for event in engine.apply(command):
                seen.add(type(event).__name__)
                if isinstance(event, OrderRejected):
                    errors.add(event.error.name)
    assert seen == {
        "OrderAccepted", "TradeExecuted", "OrderRested", "OrderExpired", "OrderCancelled",
        "OrderRejected", "DuplicateOrderIgnored",
    }  # fmt: skip
    assert errors == {
        "BAD_REQUEST", "BAD_SYMBOL", "INVALID_ORDER", "ORDER_NOT_FOUND",
        "ORDER_IMMEDIATELY_FILLABLE", "ORDER_NOT_FILLABLE",
    }  # fmt: skip


def test_invariants_hold_after_every_command_of_a_long_fixed_seed_stream() -> None:
    """exchange-core's long replay. `check_invariants` is O(orders) and orders are kept for
    ever, so the whole replay is quadratic: 2,500 commands by default, 20,000 nightly."""
    length = 20_000 if NIGHTLY else 2_500
    commands = StreamGenerator(random.Random(20_000), DEEP).stream(length // 2)
    commands += StreamGenerator(random.Random(20_001), SHALLOW, sequence=len(commands)).stream(
        length - len(commands)
    )
    engine = assert_engines_agree(commands, "fixed seed 20000", check_invariants=True)
    assert engine.trade_count > 0


def test_engines_agree_on_ill_typed_commands_and_non_commands() -> None:
    """Commands are not checked when built, so wrong types reach `apply`; both engines must
    refuse them with the same error class (BadRequest or InvalidOrder, by field)."""
    resting = [
        PlaceOrder("alice", 1, "BTC/USD", Side.SELL, OrderType.LIMIT, 5, 101, client_order_id="a"),
        PlaceOrder("bob", 2, "BTC/USD", Side.BUY, OrderType.LIMIT, 5, 99),
    ]
    place: Any = resting[1]  # Any: the point is to build values the annotations forbid
    cancel: Any = CancelOrder("alice", 3, 1)
    bad: list[Any] = [
        *(place._replace(owner=v) for v in (None, 7, b"bob")),
        *(place._replace(timestamp=v) for v in (1.0, "2", True, None)),
        *(place._replace(client_order_id=v) for v in (7, b"a")),
        *(place._replace(symbol=v) for v in (None, 7)),
        *(place._replace(side=v) for v in (0, "BUY", None)),
        *(place._replace(type=v) for v in (0, None)),
        *(place._replace(time_in_force=v) for v in (0, None)),
        *(place._replace(post_only=v) for v in (0, 1, None)),
        *(place._replace(amount=v) for v in (1.0, "5", True, None)),
        *(place._replace(price=v) for v in (101.0, "101", True)),
        place._replace(type=OrderType.MARKET, price=1.5),
        *(cancel._replace(owner=v) for v in (None, 7)),
        *(cancel._replace(order_id=v) for v in (1.0, "1", True)),
        cancel._replace(order_id=None, client_order_id=7),
        cancel._replace(order_id=None, client_order_id="a", symbol=7),
        "not a command",
        None,
        (place, cancel),
    ]
    for command in bad:
        assert_engines_agree([*resting, command], f"ill-typed {command!r}")


# -- Hypothesis streams ------------------------------------------------------------------------

_owners = st.sampled_from((*OWNERS[:2], ""))
_symbols = st.sampled_from((*SYMBOLS, UNKNOWN_SYMBOL))
_client_ids = st.none() | st.sampled_from(("a", "b", "c", "", "x" * 65))
_timestamps = st.integers(min_value=-1, max_value=5)

_places = st.builds(
    PlaceOrder,
    owner=_owners,
    timestamp=_timestamps,
    symbol=_symbols,
    side=st.sampled_from(Side),
    type=st.sampled_from(OrderType),
    amount=st.integers(min_value=-1, max_value=8),
    price=st.none() | st.integers(min_value=-1, max_value=6),
    time_in_force=st.sampled_from(TimeInForce),
    post_only=st.booleans(),
    client_order_id=_client_ids,
)
_cancels = st.builds(
    CancelOrder,
    owner=_owners,
    timestamp=_timestamps,
    order_id=st.none() | st.integers(min_value=0, max_value=40),
    client_order_id=_client_ids,
    symbol=st.none() | _symbols,
)
_streams = st.lists(st.one_of(_places, _places, _cancels), max_size=40)


@settings(
    max_examples=max(500, settings().max_examples),  # more if the profile asks
    suppress_health_check=[HealthCheck.too_slow],
)
@given(commands=_streams)
def test_engines_agree_on_hypothesis_streams(commands: list[Command]) -> None:
    assert_engines_agree(commands, "hypothesis stream")
