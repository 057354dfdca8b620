"""Decoding of contract requests: every refusal carries the right class and sentence."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerbook.engine import DEFAULT_MARKETS, CancelOrder, OrderType, PlaceOrder, Side, TimeInForce
from peerbook.engine.types import ErrorClass
from peerbook.wire import RequestError, decode_cancel, decode_create, decode_entry, requests

MARKETS = {m.symbol: m for m in DEFAULT_MARKETS}


def create(*args: object) -> PlaceOrder | RequestError:
    return decode_create("p1", 5, list(args), MARKETS)


def test_limit_order_decodes_to_ticks_and_lots() -> None:
    assert create("BTC/USD", "limit", "buy", "0.5", "30000.5", {"clientOrderId": "a"}) == (
        PlaceOrder("p1", 5, "BTC/USD", Side.BUY, OrderType.LIMIT, 5000, 300005,
                   TimeInForce.GTC, False, "a")
    )  # fmt: skip


def test_integer_json_numbers_are_accepted() -> None:
    command = create("ETH/USD", "limit", "sell", 2, 2500)
    assert isinstance(command, PlaceOrder) and (command.amount, command.price) == (2000, 250000)


def test_a_decimal_read_before_is_counted_in_each_market_s_own_increments() -> None:
    # Counts are remembered per increment: "0.01" is 100 lots of BTC (step 0.0001) but 10
    # of ETH (step 0.001), and an off-step text stays refused however often it comes.
    for _ in range(2):
        btc, eth = (
            create("BTC/USD", "limit", "buy", "0.01", "0.1"),
            create("ETH/USD", "limit", "buy", "0.01", "0.01"),
        )
        assert isinstance(btc, PlaceOrder) and (btc.amount, btc.price) == (100, 1)
        assert isinstance(eth, PlaceOrder) and (eth.amount, eth.price) == (10, 1)
        assert create("BTC/USD", "limit", "buy", "0.01", "0.01") == RequestError(
            ErrorClass.INVALID_ORDER, "price 0.01 is not a multiple of tick 0.1"
        )


def test_the_memory_of_decimals_read_stays_bounded() -> None:
    for i in range(requests._COUNTS_MAX + 10):
        assert isinstance(create("BTC/USD", "limit", "buy", "1", f"{i + 1}"), PlaceOrder)
    tick = requests._COUNTS["0.1"]  # BTC/USD's price tick: every price above went here
    assert 0 < len(tick) <= requests._COUNTS_MAX
    again = create("BTC/USD", "limit", "buy", "1", "7")
    assert again == create("BTC/USD", "limit", "buy", "1", "7")


def test_po_time_in_force_means_post_only_gtc() -> None:
    command = create("BTC/USD", "limit", "buy", "1", "1", {"timeInForce": "PO"})
    assert isinstance(command, PlaceOrder)
    assert (command.time_in_force, command.post_only) == (TimeInForce.GTC, True)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("BTC/USD", "limit", "buy", "1", "30000.05"),
         "InvalidOrder: price 30000.05 is not a multiple of tick 0.1"),
        (("ETH/USD", "limit", "buy", "1", "3000.005"),
         "InvalidOrder: price 3000.005 is not a multiple of tick 0.01"),
        (("BTC/USD", "limit", "buy", "0.00005", "1"),
         "InvalidOrder: amount 0.00005 is not a multiple of step 0.0001"),
        (("BTC/USD", "limit", "buy", "0", "1"), "InvalidOrder: amount 0 must be positive"),
        (("BTC/USD", "limit", "buy", "-1", "1"), "InvalidOrder: amount -1 must be positive"),
        (("BTC/USD", "limit", "buy", "1", "0"), "InvalidOrder: price 0 must be positive"),
        (("BTC/USD", "limit", "buy", "1e3", "1"), "InvalidOrder: amount 1e3 is not a decimal number"),
        (("BTC/USD", "limit", "buy", 0.5, "1"), "BadRequest: amount 0.5 is not a decimal string"),
        (("BTC/USD", "limit", "buy", True, "1"), "BadRequest: amount True is not a decimal string"),
        (("DOGE/USD", "limit", "buy", "1", "1"), "BadSymbol: unknown market DOGE/USD"),
        ((7, "limit", "buy", "1", "1"), "BadRequest: symbol 7 is not a string"),
        (("BTC/USD", "stop", "buy", "1", "1"),
         "InvalidOrder: unknown order type stop (one of limit, market)"),
        (("BTC/USD", "limit", "up", "1", "1"), "InvalidOrder: unknown side up (one of buy, sell)"),
        (("BTC/USD", "limit", "buy", "1", "1", {"timeInForce": "GTD"}),
         "InvalidOrder: unknown timeInForce GTD (one of GTC, IOC, FOK, PO)"),
        (("BTC/USD", "limit", "buy", "1", "1", {"leverage": 5}),
         "BadRequest: unknown params leverage (allowed: clientOrderId, postOnly, timeInForce)"),
        (("BTC/USD", "limit", "buy", "1", "1", {"postOnly": "yes"}),
         "BadRequest: postOnly 'yes' is not a boolean"),
        (("BTC/USD", "limit", "buy", "1", "1", {"timeInForce": "PO", "postOnly": False}),
         "InvalidOrder: timeInForce PO contradicts postOnly false"),
        (("BTC/USD", "limit", "buy", "1", "1", {"clientOrderId": ""}),
         "BadRequest: clientOrderId '' is not a string of 1 to 64 characters"),
        (("BTC/USD", "limit", "buy", "1." + "0" * 5000, "1"),
         "InvalidOrder: amount 1.00000000000000000000000000000000000000... is longer than 40 characters"),
        (("BTC/USD", "limit", "buy", "1" * 30, "1"),
         "InvalidOrder: amount 111111111111111111111111111111 exceeds the maximum of 1000000000000000 steps"),
        (("BTC/USD", "limit", "buy", "1"), "InvalidOrder: a limit order needs a price"),
        (("BTC/USD", "market", "buy", "1", "5"), "InvalidOrder: a market order takes no price"),
        (("BTC/USD", "limit", "buy", "1", "1", {"timeInForce": "IOC", "postOnly": True}),
         "InvalidOrder: a post-only order cannot be IOC"),
        (("BTC/USD", "limit", "buy"),
         "BadRequest: createOrder takes 4 to 6 arguments (symbol, type, side, amount, price, "
         "params), got 3"),
    ],
)  # fmt: skip
def test_bad_create_arguments_are_refused_with_class_and_sentence(
    args: tuple[object, ...], expected: str
) -> None:
    result = create(*args)
    assert isinstance(result, RequestError)
    assert str(result) == expected


def test_cancel_by_id_and_by_client_order_id() -> None:
    assert decode_cancel("p1", 5, ["12"], MARKETS) == CancelOrder("p1", 5, 12)
    assert decode_cancel("p1", 5, [None, "BTC/USD", {"clientOrderId": "a"}], MARKETS) == (
        CancelOrder("p1", 5, None, "a", "BTC/USD")
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["abc"], "OrderNotFound: order abc does not exist"),
        ([1.5], "BadRequest: order id 1.5 is not a string"),
        ([None], "BadRequest: cancelOrder needs an order id or params.clientOrderId"),
        (["1", "DOGE/USD"], "BadSymbol: unknown market DOGE/USD"),
        ([], "BadRequest: cancelOrder takes 1 to 3 arguments (id, symbol, params), got 0"),
    ],
)
def test_bad_cancel_arguments_are_refused(args: list[object], expected: str) -> None:
    result = decode_cancel("p1", 5, args, MARKETS)
    assert isinstance(result, RequestError) and str(result) == expected


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ([], "BadRequest: entry is not a JSON object"),
        ({"op": "createOrder"}, "BadRequest: entry has missing or extra fields: args, owner, timestamp"),
        ({"op": "x", "owner": "p", "timestamp": 1, "args": []}, "BadRequest: unknown op 'x'"),
        ({"op": "cancelOrder", "owner": "p", "timestamp": -1, "args": []},
         "BadRequest: timestamp -1 is not an integer from 0 to 253402300799999"),
        ({"op": "cancelOrder", "owner": 3, "timestamp": 1, "args": []},
         "BadRequest: owner 3 is not a non-empty string"),
    ],
)  # fmt: skip
def test_bad_log_entries_are_refused(entry: object, expected: str) -> None:
    result = decode_entry(entry, MARKETS)
    assert isinstance(result, RequestError) and str(result) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.text(alphabet="0123456789.-", max_size=6000),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    entry=json_values
    | st.fixed_dictionaries(
        {
            "op": st.sampled_from(["createOrder", "cancelOrder"]),
            "owner": st.text(max_size=5),
            "timestamp": st.integers() | st.just(10**16),
            "args": st.lists(json_values, max_size=7),
        }
    )
)
def test_decoding_arbitrary_json_never_raises(entry: object) -> None:
    result = decode_entry(entry, MARKETS)
    assert isinstance(result, RequestError | PlaceOrder | CancelOrder)
