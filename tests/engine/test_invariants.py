"""The invariant checker finds each kind of broken state it is there for, and says which.

Every other test calls `Engine.check_invariants` on states that hold; these break one rule
each (writing to the engine's records directly, which nothing outside a test may do) and
check that the checker names it. A checker that found nothing would fail here.
"""

from collections.abc import Callable

import pytest

from peerbook.engine import Engine, Order, OrderState, Side
from peerbook.errors import EngineInvariantError
from tests.engine.test_matching_examples import BUY, SELL, limit

# Orders 1 and 2 trade in full; 3 rests partly filled after 4 took part of it; 5 rests open.
FILLED_SELL, FILLED_BUY, PARTLY_FILLED_SELL, TAKER_BUY, OPEN_BUY = 1, 2, 3, 4, 5


def engine_with_every_kind_of_order() -> Engine:
    engine = Engine()
    engine.apply(limit("p1", SELL, 10, 300_000))
    engine.apply(limit("p2", BUY, 10, 300_000))
    engine.apply(limit("p1", SELL, 10, 300_010))
    engine.apply(limit("p2", BUY, 4, 300_010))
    engine.apply(limit("p3", BUY, 7, 299_990, client_order_id="c5"))
    engine.check_invariants()
    return engine


def order(engine: Engine, order_id: int) -> Order:
    found = engine.order(order_id)
    assert found is not None
    return found


def break_remaining(engine: Engine) -> None:
    order(engine, FILLED_BUY).remaining = 11


def break_cost(engine: Engine) -> None:
    order(engine, FILLED_SELL).cost = 0


def break_state_of_filled(engine: Engine) -> None:
    order(engine, FILLED_SELL).state = OrderState.CANCELED


def break_state_of_partly_filled(engine: Engine) -> None:
    order(engine, PARTLY_FILLED_SELL).state = OrderState.OPEN


def break_filing(engine: Engine) -> None:
    order(engine, TAKER_BUY).order_id = 40


def break_fills(engine: Engine) -> None:
    order(engine, TAKER_BUY).amount = 5  # a fifth lot bought from nobody


def break_retirement(engine: Engine) -> None:
    engine._retired.add(FILLED_BUY, "p2", "BTC/USD", Side.BUY, OrderState.FILLED, 0)


def break_client_order_id(engine: Engine) -> None:
    engine._by_client_id["p1", "c5"] = OPEN_BUY


@pytest.mark.parametrize(
    ("corrupt", "sentence"),
    [
        (break_remaining, "order 2: remaining 11 outside 0..10"),
        (break_cost, "order 1: cost 0 disagrees with filled 10"),
        (break_state_of_filled, "order 1 is CANCELED with remaining 0"),
        (break_state_of_partly_filled, "order 3 is OPEN with 4 filled"),
        (break_filing, "order 40 is filed under 4"),
        (break_fills, "BTC/USD: buy fills 15 != sell fills 14"),
        (break_retirement, "order 2 is both retired and on record"),
        (break_client_order_id, "client order id 'c5' of p1 maps to order 5"),
    ],
)
def test_the_checker_names_the_rule_a_state_breaks(
    corrupt: Callable[[Engine], None], sentence: str
) -> None:
    engine = engine_with_every_kind_of_order()
    corrupt(engine)
    with pytest.raises(EngineInvariantError, match=sentence.replace(".", r"\.")):
        engine.check_invariants()
