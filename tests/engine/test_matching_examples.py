"""Worked examples: one test per matching rule, each in three parts (given, when, then)."""

from peerbook.engine import (
    QUANTITY_MAX,
    TIMESTAMP_MAX,
    CancelOrder,
    DuplicateOrderIgnored,
    Engine,
    ErrorClass,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    OrderRested,
    OrderState,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    TradeExecuted,
)

BTC = "BTC/USD"
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET


def limit(
    owner: str,
    side: Side,
    amount: int,
    price: int,
    *,
    tif: TimeInForce = TimeInForce.GTC,
    post_only: bool = False,
    client_order_id: str | None = None,
    symbol: str = BTC,
) -> PlaceOrder:
    return PlaceOrder(
        owner, 1_700_000_000_000, symbol, side, LIMIT, amount, price, tif, post_only,
        client_order_id,
    )  # fmt: skip


def market(
    owner: str, side: Side, amount: int, *, tif: TimeInForce = TimeInForce.GTC
) -> PlaceOrder:
    return PlaceOrder(owner, 1_700_000_000_000, BTC, side, MARKET, amount, None, tif)


def trades(events: tuple[Event, ...]) -> list[tuple[int, int, int, int]]:
    """(maker id, taker id, price, quantity) of each trade."""
    return [
        (e.maker_order_id, e.taker_order_id, e.price, e.quantity)
        for e in events
        if isinstance(e, TradeExecuted)
    ]


def rejection(events: tuple[Event, ...]) -> tuple[ErrorClass, str]:
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, OrderRejected), event
    return event.error, event.message


def engine_with(*commands: PlaceOrder | CancelOrder) -> Engine:
    engine = Engine()
    for command in commands:
        engine.apply(command)
    engine.check_invariants()
    return engine


def test_order_that_does_not_cross_rests() -> None:
    engine = Engine()
    events = engine.apply(limit("p1", BUY, 10, 300_000))
    assert [type(e) for e in events] == [OrderAccepted, OrderRested]
    assert engine.book(BTC).bids.best() is not None
    order = engine.order(1)
    assert order is not None and order.state is OrderState.OPEN and order.remaining == 10


def test_taker_trades_at_maker_price() -> None:
    engine = engine_with(limit("p1", SELL, 10, 300_000))
    events = engine.apply(limit("p2", BUY, 10, 300_050))
    assert trades(events) == [(1, 2, 300_000, 10)]


def test_better_price_matches_first() -> None:
    engine = engine_with(limit("p1", SELL, 5, 300_010), limit("p1", SELL, 5, 300_000))
    events = engine.apply(limit("p2", BUY, 10, 300_010))
    assert trades(events) == [(2, 3, 300_000, 5), (1, 3, 300_010, 5)]


def test_older_order_at_same_price_matches_first() -> None:
    engine = engine_with(
        limit("p1", SELL, 5, 300_000), limit("p3", SELL, 5, 300_000), limit("p4", SELL, 5, 300_000)
    )
    events = engine.apply(limit("p2", BUY, 7, 300_000))
    assert trades(events) == [(1, 4, 300_000, 5), (2, 4, 300_000, 2)]


def test_partial_fill_leaves_limit_remainder_resting() -> None:
    engine = engine_with(limit("p1", SELL, 4, 300_000))
    events = engine.apply(limit("p2", BUY, 10, 300_000))
    assert isinstance(events[-1], OrderRested)
    assert events[-1].quantity_remaining == 6
    taker = engine.order(2)
    assert taker is not None
    assert (taker.state, taker.filled, taker.remaining) == (OrderState.PARTIALLY_FILLED, 4, 6)
    best = engine.book(BTC).bids.best()
    assert best is not None and (best.price, best.quantity) == (300_000, 6)


def test_partially_filled_maker_keeps_its_place() -> None:
    engine = engine_with(limit("p1", SELL, 10, 300_000), limit("p3", SELL, 10, 300_000))
    engine.apply(limit("p2", BUY, 4, 300_000))
    events = engine.apply(limit("p2", BUY, 8, 300_000))
    assert trades(events) == [(1, 4, 300_000, 6), (2, 4, 300_000, 2)]


def test_filled_order_stays_on_record_with_remaining_zero() -> None:
    engine = engine_with(limit("p1", SELL, 10, 300_000), limit("p2", BUY, 10, 300_000))
    for order_id in (1, 2):
        order = engine.order(order_id)
        assert order is not None
        assert (order.state, order.remaining, order.filled) == (OrderState.FILLED, 0, 10)
        assert order.cost == 300_000 * 10
    assert engine.book(BTC).asks.best() is None and engine.book(BTC).bids.best() is None


def test_market_order_remainder_expires_and_never_rests() -> None:
    engine = engine_with(limit("p1", SELL, 3, 300_000), limit("p1", SELL, 3, 310_000))
    events = engine.apply(market("p2", BUY, 10))
    assert trades(events) == [(1, 3, 300_000, 3), (2, 3, 310_000, 3)]
    assert events[-1] == OrderExpired(3, 3, 4) and isinstance(events[-1], OrderExpired)
    order = engine.order(3)
    assert order is not None and order.state is OrderState.EXPIRED
    assert engine.book(BTC).bids.best() is None


def test_market_order_on_empty_book_expires_unfilled() -> None:
    engine = Engine()
    events = engine.apply(market("p2", SELL, 10))
    assert [type(e) for e in events] == [OrderAccepted, OrderExpired]


def test_ioc_remainder_expires() -> None:
    engine = engine_with(limit("p1", SELL, 3, 300_000))
    events = engine.apply(limit("p2", BUY, 10, 300_000, tif=TimeInForce.IOC))
    assert trades(events) == [(1, 2, 300_000, 3)]
    assert isinstance(events[-1], OrderExpired) and events[-1].quantity_remaining == 7
    assert engine.book(BTC).bids.best() is None


def test_fok_fills_completely_when_liquidity_suffices() -> None:
    engine = engine_with(limit("p1", SELL, 6, 300_000), limit("p1", SELL, 6, 300_010))
    events = engine.apply(limit("p2", BUY, 10, 300_010, tif=TimeInForce.FOK))
    assert sum(q for *_, q in trades(events)) == 10
    order = engine.order(3)
    assert order is not None and order.state is OrderState.FILLED


def test_fok_that_cannot_fill_is_rejected_and_creates_no_order() -> None:
    engine = engine_with(limit("p1", SELL, 6, 300_000), limit("p1", SELL, 6, 300_020))
    events = engine.apply(limit("p2", BUY, 10, 300_010, tif=TimeInForce.FOK))
    error, message = rejection(events)
    assert error is ErrorClass.ORDER_NOT_FILLABLE
    assert message == "fill-or-kill buy of 0.001 at 30001 can fill only 0.0006"
    assert engine.order(3) is None
    assert engine.book(BTC).asks.best() is not None and engine.book(BTC).asks.best().quantity == 6  # type: ignore[union-attr]


def test_post_only_that_would_cross_is_rejected() -> None:
    engine = engine_with(limit("p1", SELL, 6, 300_000))
    events = engine.apply(limit("p2", BUY, 1, 300_000, post_only=True))
    assert rejection(events) == (
        ErrorClass.ORDER_IMMEDIATELY_FILLABLE,
        "post-only buy at 30000 would cross best ask 30000",
    )
    assert engine.order(2) is None


def test_post_only_that_does_not_cross_rests() -> None:
    engine = engine_with(limit("p1", SELL, 6, 300_000))
    events = engine.apply(limit("p2", BUY, 1, 299_999, post_only=True))
    assert [type(e) for e in events] == [OrderAccepted, OrderRested]


def test_repeated_client_order_id_returns_original_order() -> None:
    engine = engine_with(limit("p1", BUY, 5, 300_000, client_order_id="abc"))
    events = engine.apply(limit("p1", BUY, 9, 299_000, client_order_id="abc"))
    assert events == (DuplicateOrderIgnored(2, 1, "p1", "abc"),)
    assert engine.order(2) is None
    assert engine.order_by_client_id("p1", "abc") is engine.order(1)


def test_same_client_order_id_from_another_owner_is_a_new_order() -> None:
    engine = engine_with(limit("p1", BUY, 5, 300_000, client_order_id="abc"))
    events = engine.apply(limit("p2", BUY, 5, 300_000, client_order_id="abc"))
    assert isinstance(events[0], OrderAccepted) and events[0].order_id == 2


def test_cancel_removes_remainder_and_keeps_order_on_record() -> None:
    engine = engine_with(limit("p1", SELL, 10, 300_000), limit("p2", BUY, 4, 300_000))
    events = engine.apply(CancelOrder("p1", 0, 1))
    assert events == (OrderCancelled(3, 1, 6),)
    order = engine.order(1)
    assert order is not None and (order.state, order.filled, order.remaining) == (
        OrderState.CANCELED,
        4,
        6,
    )
    assert engine.book(BTC).asks.best() is None


def test_cancel_by_client_order_id() -> None:
    engine = engine_with(limit("p1", SELL, 10, 300_000, client_order_id="x-1"))
    events = engine.apply(CancelOrder("p1", 0, None, "x-1"))
    assert events == (OrderCancelled(2, 1, 10),)


def test_cancelled_order_is_skipped_by_matching() -> None:
    engine = engine_with(
        limit("p1", SELL, 5, 300_000), limit("p3", SELL, 5, 300_000), CancelOrder("p1", 0, 1)
    )
    events = engine.apply(limit("p2", BUY, 5, 300_000))
    assert trades(events) == [(2, 4, 300_000, 5)]


def test_cancel_of_someone_elses_order_is_refused() -> None:
    engine = engine_with(limit("p1", SELL, 10, 300_000))
    assert rejection(engine.apply(CancelOrder("p2", 0, 1))) == (
        ErrorClass.ORDER_NOT_FOUND,
        "no open order 1 owned by peer p2",
    )
    order = engine.order(1)
    assert order is not None and order.is_resting


def test_cancel_of_unknown_order_is_refused() -> None:
    assert rejection(Engine().apply(CancelOrder("p1", 0, 77))) == (
        ErrorClass.ORDER_NOT_FOUND,
        "order 77 does not exist",
    )


def test_cancel_of_filled_order_is_refused() -> None:
    engine = engine_with(limit("p1", SELL, 10, 300_000), limit("p2", BUY, 10, 300_000))
    assert rejection(engine.apply(CancelOrder("p1", 0, 1))) == (
        ErrorClass.ORDER_NOT_FOUND,
        "order 1 is filled, not open",
    )


def test_bad_commands_are_rejected_and_change_nothing_but_sequence_and_digest() -> None:
    bad = [
        (limit("p1", BUY, 0, 300_000), ErrorClass.INVALID_ORDER, "amount 0 must be positive"),
        (
            limit("p1", BUY, -3, 300_000),
            ErrorClass.INVALID_ORDER,
            "amount -0.0003 must be positive",
        ),
        (limit("p1", BUY, 1, 0), ErrorClass.INVALID_ORDER, "price 0 must be positive"),
        (limit("p1", BUY, 1, -5), ErrorClass.INVALID_ORDER, "price -0.5 must be positive"),
        (
            limit("p1", BUY, 1, 5, symbol="DOGE/USD"),
            ErrorClass.BAD_SYMBOL,
            "unknown market DOGE/USD",
        ),
        (
            PlaceOrder("p1", 0, BTC, BUY, MARKET, 1, 300_000),
            ErrorClass.INVALID_ORDER,
            "a market order takes no price",
        ),
        (
            PlaceOrder("p1", 0, BTC, BUY, LIMIT, 1, None),
            ErrorClass.INVALID_ORDER,
            "a limit order needs a price",
        ),
        (
            limit("p1", BUY, 1, 5, tif=TimeInForce.IOC, post_only=True),
            ErrorClass.INVALID_ORDER,
            "a post-only order cannot be IOC",
        ),
        (
            PlaceOrder("p1", 0, BTC, "up", LIMIT, 1, 5),  # type: ignore[arg-type]
            ErrorClass.INVALID_ORDER,
            "unknown side 'up'",
        ),
        (
            PlaceOrder("p1", 0, BTC, BUY, LIMIT, "1", 5),  # type: ignore[arg-type]
            ErrorClass.INVALID_ORDER,
            "amount '1' is not a whole number of steps",
        ),
        (
            limit("", BUY, 1, 5),
            ErrorClass.BAD_REQUEST,
            "owner '' is not a non-empty string",
        ),
    ]
    engine = engine_with(limit("p1", SELL, 10, 300_000))
    for command, error, message in bad:
        before = [repr(o) for o in engine.orders()]
        digest = engine.digest()
        assert rejection(engine.apply(command)) == (error, message)
        assert [repr(o) for o in engine.orders()] == before
        assert engine.digest() != digest
        engine.check_invariants()
    assert engine.sequence == 1 + len(bad)


def test_engine_rejects_unknown_command_type_without_raising() -> None:
    events = Engine().apply(("not", "a", "command"))  # type: ignore[arg-type]
    assert rejection(events)[0] is ErrorClass.BAD_REQUEST


def test_order_ids_are_sequences_including_rejected_commands() -> None:
    engine = engine_with(limit("p1", SELL, 0, 300_000), limit("p1", SELL, 1, 300_000))
    assert engine.order(1) is None
    order = engine.order(2)
    assert order is not None and order.amount == 1


def test_trade_ids_count_up_across_commands() -> None:
    engine = engine_with(limit("p1", SELL, 1, 300_000), limit("p1", SELL, 1, 300_000))
    first = engine.apply(limit("p2", BUY, 1, 300_000))
    second = engine.apply(limit("p2", BUY, 1, 300_000))
    ids = [e.trade_id for e in (*first, *second) if isinstance(e, TradeExecuted)]
    assert ids == [1, 2]


def test_self_trade_is_allowed() -> None:
    engine = engine_with(limit("p1", SELL, 1, 300_000))
    assert trades(engine.apply(limit("p1", BUY, 1, 300_000))) == [(1, 2, 300_000, 1)]


def test_markets_are_independent() -> None:
    engine = engine_with(limit("p1", SELL, 1, 300_000))
    events = engine.apply(limit("p2", BUY, 1, 300_000, symbol="ETH/USD"))
    assert trades(events) == []


def test_amounts_prices_and_timestamps_beyond_the_bounds_are_rejected() -> None:
    engine = Engine()
    huge = QUANTITY_MAX + 1
    assert rejection(engine.apply(limit("p1", BUY, huge, 300_000)))[1] == (
        f"amount exceeds the maximum of {QUANTITY_MAX} steps"
    )
    assert rejection(engine.apply(limit("p1", BUY, 1, huge)))[1] == (
        f"price exceeds the maximum of {QUANTITY_MAX} ticks"
    )
    late = PlaceOrder("p1", TIMESTAMP_MAX + 1, BTC, BUY, LIMIT, 1, 300_000)
    assert rejection(engine.apply(late))[0] is ErrorClass.BAD_REQUEST
    engine.check_invariants()


def test_lone_surrogates_in_ids_keep_the_engine_and_digest_total() -> None:
    engine = Engine()
    engine.apply(limit("p\ud800", SELL, 1, 300_000, client_order_id="\udfff"))
    assert len(engine.digest()) == 64
    assert engine.order_by_client_id("p\ud800", "\udfff") is engine.order(1)
