"""A Hypothesis state machine over the Engine, checked against a model after every step.

Place rules add the ids of orders that rested to a bundle and cancel rules consume them, so
cancels name real orders (some filled since) far more often than random ids would. Beside
the engine runs the naive `ReferenceEngine`, and a small model built only from the events seen
so far: which orders rest where, and how much each order and each side has filled. After every
step the invariants check the engine against that model, against the reference and against
its own `check_invariants`.
"""

from collections import defaultdict
from typing import NamedTuple

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from peerbook.engine import (
    DEFAULT_MARKETS,
    CancelOrder,
    Command,
    DuplicateOrderIgnored,
    Engine,
    ErrorClass,
    Event,
    Market,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderRested,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    TradeExecuted,
)
from peerbook.testing import ReferenceEngine
from peerbook.testing.reference import comparable, record_of

OWNERS = st.sampled_from(("alice", "bob", "carol"))
SYMBOLS = st.sampled_from(("BTC/USD", "BTC/USD", "BTC/USD", "ETH/USD"))
SIDES = st.sampled_from(Side)
PRICES = st.integers(min_value=1, max_value=5)
AMOUNTS = st.integers(min_value=1, max_value=8)
TIMES_IN_FORCE = st.sampled_from((TimeInForce.GTC,) * 3 + (TimeInForce.IOC, TimeInForce.FOK))
POST_ONLY = st.sampled_from((False, False, False, True))
# "fresh" becomes an id not used before; "shared" is one id that every owner reuses, so the
# first use by each owner creates an order and later ones are duplicates.
CLIENT_IDS = st.sampled_from((None, None, "fresh", "shared"))

# One fault of a placement each (contract section 4), and the error class it must get.
_VALID = PlaceOrder("alice", 0, "BTC/USD", Side.BUY, OrderType.LIMIT, 1, 3)
FAULTS: dict[str, tuple[PlaceOrder, ErrorClass]] = {
    "empty owner": (_VALID._replace(owner=""), ErrorClass.BAD_REQUEST),
    "negative timestamp": (_VALID._replace(timestamp=-1), ErrorClass.BAD_REQUEST),
    "long client order id": (_VALID._replace(client_order_id="x" * 65), ErrorClass.BAD_REQUEST),
    "unknown symbol": (_VALID._replace(symbol="DOGE/USD", amount=0), ErrorClass.BAD_SYMBOL),
    "zero amount": (_VALID._replace(amount=0, price=0), ErrorClass.INVALID_ORDER),
    "negative amount": (_VALID._replace(amount=-1), ErrorClass.INVALID_ORDER),
    "zero price": (_VALID._replace(price=0), ErrorClass.INVALID_ORDER),
    "negative price": (_VALID._replace(price=-3), ErrorClass.INVALID_ORDER),
    "limit without price": (_VALID._replace(price=None), ErrorClass.INVALID_ORDER),
    "market with price": (_VALID._replace(type=OrderType.MARKET), ErrorClass.INVALID_ORDER),
    "post-only market": (
        _VALID._replace(type=OrderType.MARKET, price=None, post_only=True),
        ErrorClass.INVALID_ORDER,
    ),
    "post-only IOC": (
        _VALID._replace(time_in_force=TimeInForce.IOC, post_only=True),
        ErrorClass.INVALID_ORDER,
    ),
    "post-only FOK": (
        _VALID._replace(time_in_force=TimeInForce.FOK, post_only=True),
        ErrorClass.INVALID_ORDER,
    ),
}


class Resting(NamedTuple):
    """What the model knows of an order in the book."""

    symbol: str
    side: Side
    price: int


class EngineMachine(RuleBasedStateMachine):
    """Commands into an Engine and a ReferenceEngine; the model follows the engine's events."""

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()
        self.reference = ReferenceEngine()
        self.commands = 0
        self.events: tuple[Event, ...] = ()
        self.reference_events: tuple[Event, ...] = ()
        self.known: dict[int, Side] = {}  # the side of every order accepted
        self.resting: dict[int, Resting] = {}
        self.filled: defaultdict[int, int] = defaultdict(int)
        self.side_fills: defaultdict[tuple[str, Side], int] = defaultdict(int)
        self.client_ids: list[tuple[str, str]] = []
        self.failures: list[str] = []

    @initialize(markets=st.sampled_from((DEFAULT_MARKETS, DEFAULT_MARKETS[:1])))
    def create_markets(self, markets: tuple[Market, ...]) -> None:
        self.engine, self.reference = Engine(markets), ReferenceEngine(markets)

    # -- applying and following ---------------------------------------------------------------

    def _apply(self, command: Command) -> tuple[Event, ...]:
        self.commands += 1
        self.events = self.engine.apply(command)
        self.reference_events = self.reference.apply(command)
        for event in self.events:
            self._follow(event)
        return self.events

    def _apply_one(self, command: Command) -> Event:
        """Apply a command that must not create an order, so yields exactly one event."""
        events = self._apply(command)
        assert len(events) == 1, events
        return events[0]

    def _follow(self, event: Event) -> None:
        """Update the model from one engine event, checking what must hold at that moment."""
        if isinstance(event, OrderAccepted):
            self.known[event.order_id] = event.side
            if event.client_order_id is not None:
                self.client_ids.append((event.owner, event.client_order_id))
        elif isinstance(event, TradeExecuted):
            self._check_priority(event)
            for order_id in (event.taker_order_id, event.maker_order_id):
                self.filled[order_id] += event.quantity
                self.side_fills[event.symbol, self.known[order_id]] += event.quantity
            if event.maker_remaining == 0:
                self.resting.pop(event.maker_order_id, None)
        elif isinstance(event, OrderRested):
            self.resting[event.order_id] = Resting(event.symbol, event.side, event.price)
        elif isinstance(event, OrderCancelled):
            self.resting.pop(event.order_id, None)

    def _check_priority(self, trade: TradeExecuted) -> None:
        """The maker must be the best-priced, then oldest, resting order facing the taker."""
        facing = [
            (order.price if trade.taker_side is Side.BUY else -order.price, order_id)
            for order_id, order in self.resting.items()
            if order.symbol == trade.symbol and order.side is not trade.taker_side
        ]
        maker = self.resting.get(trade.maker_order_id)
        best = min(facing, default=None)
        if maker is None or best is None or best[1] != trade.maker_order_id:
            self.failures.append(f"trade {trade} is not with the best, oldest order {best}")
        elif trade.price != maker.price:
            self.failures.append(f"trade {trade} is not at the maker's price {maker.price}")

    def _rested_id(self, events: tuple[Event, ...]) -> object:
        """The new order's id for the bundle if it rested (so that most cancels find it),
        else nothing."""
        return multiple(*[e.order_id for e in events if isinstance(e, OrderRested)])

    # -- placing ------------------------------------------------------------------------------

    @rule(
        target=orders,
        owner=OWNERS,
        symbol=SYMBOLS,
        side=SIDES,
        price=PRICES,
        amount=AMOUNTS,
        time_in_force=TIMES_IN_FORCE,
        post_only=POST_ONLY,
        client_order_id=CLIENT_IDS,
    )
    def place_limit(
        self,
        owner: str,
        symbol: str,
        side: Side,
        price: int,
        amount: int,
        time_in_force: TimeInForce,
        post_only: bool,
        client_order_id: str | None,
    ) -> object:
        if client_order_id == "fresh":
            client_order_id = f"c{self.commands}"
        kind = OrderType.LIMIT
        command = PlaceOrder(
            owner, self.commands, symbol, side, kind, amount, price, time_in_force, post_only,
            client_order_id,
        )  # fmt: skip
        return self._rested_id(self._apply(command))

    @precondition(lambda self: self.resting)
    @rule(
        target=orders,
        owner=OWNERS,
        side=SIDES,
        amount=st.integers(min_value=1, max_value=30),
        time_in_force=st.sampled_from(TimeInForce),
    )
    def place_market(
        self, owner: str, side: Side, amount: int, time_in_force: TimeInForce
    ) -> object:
        """Takes from whatever rests (the precondition), the deeper the larger the amount."""
        kind = OrderType.MARKET
        command = PlaceOrder(
            owner, self.commands, "BTC/USD", side, kind, amount, None, time_in_force
        )
        return self._rested_id(self._apply(command))

    @rule(fault=st.sampled_from(sorted(FAULTS)))
    def place_faulty(self, fault: str) -> None:
        """One fault of the contract's list; the error class must be the one for that fault."""
        event = self._apply_one(FAULTS[fault][0])
        assert isinstance(event, OrderRejected), event
        assert event.error is FAULTS[fault][1], (fault, event)

    @precondition(lambda self: self.client_ids)
    @rule(index=st.integers(min_value=0), side=SIDES)
    def repeat_client_order_id(self, index: int, side: Side) -> None:
        """A repeat is recognised before validation, so even a command with an amount of 0 in
        an unknown market gets the original order's id back."""
        owner, client_order_id = self.client_ids[index % len(self.client_ids)]
        command = PlaceOrder(
            owner, self.commands, "DOGE/USD", side, OrderType.LIMIT, 0, None,
            client_order_id=client_order_id,
        )  # fmt: skip
        event = self._apply_one(command)
        assert isinstance(event, DuplicateOrderIgnored), event

    # -- cancelling ---------------------------------------------------------------------------

    @rule(order_id=consumes(orders), by_client_id=st.booleans(), name_symbol=st.booleans())
    def cancel(self, order_id: int, by_client_id: bool, name_symbol: bool) -> None:
        """The owner cancels its order: it works exactly when the order is still resting."""
        order = self.engine.order(order_id)
        assert order is not None
        was_resting = order.is_resting
        symbol = order.symbol if name_symbol else None
        if by_client_id and order.client_order_id is not None:
            command = CancelOrder(order.owner, self.commands, None, order.client_order_id, symbol)
        else:
            command = CancelOrder(order.owner, self.commands, order_id, None, symbol)
        event = self._apply_one(command)
        if was_resting:
            assert event == OrderCancelled(self.engine.sequence, order_id, order.remaining)
        else:
            assert isinstance(event, OrderRejected), event
            assert event.error is ErrorClass.ORDER_NOT_FOUND

    @rule(
        order_id=orders,
        offset=st.sampled_from((0, 0, 0, 1, 1_000)),
        owner=OWNERS,
        symbol=st.none() | SYMBOLS,
    )
    def cancel_as_anyone_anywhere(
        self, order_id: int, offset: int, owner: str, symbol: str | None
    ) -> None:
        """Cancels by any owner, in any market, of an order or of the id after it (any
        command's, maybe not an order's) or of an id not used yet; the reference decides."""
        self._apply(CancelOrder(owner, self.commands, order_id + offset, None, symbol))

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def engine_invariants_hold(self) -> None:
        self.engine.check_invariants()

    @invariant()
    def engine_events_equal_the_reference_engine_events(self) -> None:
        assert comparable(self.events) == comparable(self.reference_events)

    @invariant()
    def engine_orders_equal_the_reference_engine_orders(self) -> None:
        assert tuple(map(record_of, self.engine.orders())) == self.reference.orders()

    @invariant()
    def sequence_is_gap_free(self) -> None:
        assert self.engine.sequence == self.commands
        assert self.commands == 0 or self.events, "every command yields at least one event"
        assert all(event.sequence == self.commands for event in self.events)

    @invariant()
    def every_event_names_a_known_order(self) -> None:
        for event in self.events:
            if isinstance(event, TradeExecuted):
                ids = [event.taker_order_id, event.maker_order_id]
            elif isinstance(event, OrderRejected):
                ids = []
            else:
                ids = [event.order_id]
            assert all(i in self.known and self.engine.order(i) for i in ids), event

    @invariant()
    def book_is_never_crossed_at_rest(self) -> None:
        bids: dict[str, int] = {}
        asks: dict[str, int] = {}
        for order in self.engine.orders():
            if order.is_resting:
                assert order.price is not None
                if order.side is Side.BUY:
                    bids[order.symbol] = max(bids.get(order.symbol, 0), order.price)
                else:
                    asks[order.symbol] = min(asks.get(order.symbol, order.price), order.price)
        for symbol, bid in bids.items():
            assert symbol not in asks or bid < asks[symbol], (symbol, bid, asks[symbol])
        assert {o.order_id for o in self.engine.orders() if o.is_resting} == set(self.resting)

    @invariant()
    def every_lot_is_filled_or_remaining(self) -> None:
        for order in self.engine.orders():
            assert order.remaining >= 0, order
            assert self.filled[order.order_id] + order.remaining == order.amount, order

    @invariant()
    def buy_fills_equal_sell_fills(self) -> None:
        for symbol in self.engine.markets:
            assert self.side_fills[symbol, Side.BUY] == self.side_fills[symbol, Side.SELL]

    @invariant()
    def trades_respect_price_time_priority(self) -> None:
        assert not self.failures, self.failures


def test_engine_state_machine() -> None:
    # A function rather than EngineMachine.TestCase: a unittest case cannot take the fixture
    # that runs each engine module under both hot paths (tests/engine/conftest.py).
    run_state_machine_as_test(  # type: ignore[no-untyped-call]  # hypothesis leaves it untyped
        EngineMachine,
        settings=settings(
            max_examples=max(300, settings().max_examples),  # more if the profile asks
            stateful_step_count=50,
        ),
    )
