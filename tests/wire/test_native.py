"""The compiled reading of log entries (`peerbook.wire._native`) against the Python one.

`requests.decode_entry` is the C function where it is built; it must give exactly what
`requests._decode_entry` gives for every JSON value: the same command (class and fields) for
a valid entry, and the same refusal (which the C function leaves to Python) for any other.
Hypothesis draws entries near the valid ones, where a single wrong field decides.
"""

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerbook.engine import DEFAULT_MARKETS, TIMESTAMP_MAX, CancelOrder, PlaceOrder
from peerbook.wire import requests


def test_the_compiled_reader_is_built_where_the_suite_requires_it() -> None:
    # scripts/test.sh builds it and sets this: a run on the Python reader alone must fail.
    if os.environ.get("PEERBOOK_REQUIRE_COMPILED") == "1":
        assert requests.COMPILED


compiled = pytest.mark.skipif(not requests.COMPILED, reason="peerbook.wire._native is not built")

MARKETS = {m.symbol: m for m in DEFAULT_MARKETS}
_ANY: list[Any] = [None, True, False, 0, 1, -1, 1.5, "", "x", [], {}, 2**70, -(2**70)]
_DECIMALS = [
    "0.5",
    "1",
    "30000.5",
    "30000.05",
    "0.0001",
    "0.00001",
    "0",
    "-1",
    "1e3",
    " 1",
    "\u0663",
]
_CLIENT_IDS = [None, "a", "é", "x" * 64, "x" * 65, "", 5]


def _params(create: bool) -> st.SearchStrategy[Any]:
    keys = (
        ["clientOrderId", "timeInForce", "postOnly", "other"] if create else ["clientOrderId", "x"]
    )
    values = {
        "clientOrderId": st.sampled_from(_CLIENT_IDS),
        "timeInForce": st.sampled_from(["GTC", "IOC", "FOK", "PO", "gtc", 1, None]),
        "postOnly": st.sampled_from([True, False, 0, 1, None, "true"]),
        "other": st.sampled_from(_ANY),
        "x": st.sampled_from(_ANY),
    }
    chosen = st.fixed_dictionaries({}, optional={key: values[key] for key in keys})
    return st.one_of(st.none(), chosen, st.sampled_from(_ANY))


_SYMBOL = st.sampled_from(["BTC/USD", "ETH/USD", "DOGE/USD", None, 5, "btc/usd"])
_CREATE_ARGS = st.tuples(
    _SYMBOL,
    st.sampled_from(["limit", "market", "stop", None, 1]),
    st.sampled_from(["buy", "sell", "BUY", None]),
    st.one_of(st.sampled_from(_DECIMALS), st.sampled_from(_ANY), st.integers(-2, 10**16)),
    st.one_of(st.sampled_from(_DECIMALS), st.none(), st.sampled_from(_ANY)),
    _params(create=True),
).flatmap(lambda full: st.integers(0, 7).map(lambda n: list(full[:n]) + [None] * (n - 6)))
_CANCEL_ARGS = st.tuples(
    st.one_of(
        st.integers(-(2**65), 2**65),
        st.sampled_from(["1", "007", "", "12a", "9" * 19, "9" * 20, "\u0661", None, 1.0, True]),
    ),
    _SYMBOL,
    _params(create=False),
).flatmap(lambda full: st.integers(0, 4).map(lambda n: list(full[:n]) + [None] * (n - 3)))


@st.composite
def entries(draw: st.DrawFn) -> Any:
    op = draw(st.sampled_from(["createOrder", "cancelOrder", "fetchOrder", 5]))
    entry: dict[str, Any] = {
        "op": op,
        "owner": draw(st.sampled_from(["p1", "pé", "", 5, None])),
        "timestamp": draw(
            st.sampled_from(
                [0, 1_700_000_000_000, TIMESTAMP_MAX, TIMESTAMP_MAX + 1, -1, 1.0, True, "1"]
            )
        ),
        "args": draw(_CREATE_ARGS if op == "createOrder" else _CANCEL_ARGS),
    }
    shape = draw(st.integers(0, 9))
    if shape == 0:
        entry["extra"] = 1
    elif shape == 1:
        del entry[draw(st.sampled_from(sorted(entry)))]
    elif shape == 2:
        entry["args"] = tuple(entry["args"])
    elif shape == 3:
        return draw(st.sampled_from(_ANY))
    return entry


def _same(entry: Any) -> Any:
    # Python first: it remembers the decimals it reads, so that the C reader, which only
    # counts decimals read before, takes the entry itself instead of handing it back.
    want = requests._decode_entry(entry, MARKETS)
    got = requests.decode_entry(entry, MARKETS)
    assert (type(got), got) == (type(want), want), entry
    return got


@compiled
@settings(max_examples=3_000, deadline=None)
@given(entry=entries())
def test_both_readers_agree_on_entries_near_the_valid_ones(entry: Any) -> None:
    _same(entry)


@compiled
def test_both_readers_agree_on_every_kind_of_valid_entry() -> None:
    valid = [
        ["BTC/USD", "limit", "buy", "0.5", "30000.5"],
        ["BTC/USD", "limit", "sell", "0.5", "30000.5", {"clientOrderId": "a"}],
        ["ETH/USD", "market", "buy", "2", None, {"timeInForce": "IOC"}],
        ["ETH/USD", "market", "sell", "2"],
        ["BTC/USD", "limit", "buy", "1", "1", {"timeInForce": "PO", "postOnly": True}],
        ["BTC/USD", "limit", "buy", "1", "1", {"postOnly": True, "clientOrderId": None}],
        ["BTC/USD", "limit", "buy", "1", "1", {"timeInForce": "FOK"}],
    ]
    cancels = [[7], ["7"], [7, "BTC/USD"], [None, "ETH/USD", {"clientOrderId": "a"}], [7, None, {}],
               ["9" * 19], [2**64]]  # fmt: skip
    for args in valid:
        entry = {"op": "createOrder", "owner": "p1", "timestamp": 5, "args": args}
        assert isinstance(_same(entry), PlaceOrder)
    for args in cancels:
        entry = {"op": "cancelOrder", "owner": "p1", "timestamp": 5, "args": args}
        assert isinstance(_same(entry), CancelOrder)


@compiled
@pytest.mark.parametrize(
    "args",
    [
        ["BTC/USD", "limit", "buy", "1", "1", {"timeInForce": "IOC", "postOnly": True}],
        ["BTC/USD", "limit", "buy", "1", "1", {"timeInForce": "PO", "postOnly": False}],
        ["BTC/USD", "market", "buy", "1", None, {"postOnly": True}],
        ["BTC/USD", "market", "buy", "1", "1"],
        ["BTC/USD", "limit", "buy", "1", None],
        ["BTC/USD", "limit", "buy", "1"],
        ["BTC/USD", "limit", "buy", "1", "1", {"clientOrderId": "x" * 65}],
        ["BTC/USD", "limit", "buy", "1", "1", {"clientOrderId": ""}],
        ["BTC/USD", "limit", "buy", "1", "1", {"other": 1}],
        ["BTC/USD", "limit", "buy", "1", "1", {"postOnly": 1}],
        ["BTC/USD", "limit", "buy", "1", "1", []],
        ["BTC/USD", "limit", "buy", "1", "1", {}, None],
        ["BTC/USD", "limit", "buy", 1, "1"],
    ],
)
def test_both_readers_agree_on_entries_one_field_from_valid(args: list[Any]) -> None:
    _same({"op": "createOrder", "owner": "p1", "timestamp": 5, "args": args})


@compiled
def test_the_compiled_reader_builds_valid_commands_without_python() -> None:
    from peerbook.wire import _native

    handed_over: list[object] = []

    def python(entry: object, markets: object) -> object:
        handed_over.append(entry)
        return requests._decode_entry(entry, MARKETS)

    decode = _native.decoder(python)
    create = {"op": "createOrder", "owner": "p1", "timestamp": 5,
              "args": ["BTC/USD", "limit", "buy", "0.25", "100.1", {"clientOrderId": "c"}]}  # fmt: skip
    cancel = {"op": "cancelOrder", "owner": "p1", "timestamp": 5, "args": ["12", "BTC/USD"]}
    first = decode(create, MARKETS)  # the decimals are new: read in Python, then remembered
    assert decode(create, MARKETS) == first and decode(cancel, MARKETS) == CancelOrder(
        "p1", 5, 12, None, "BTC/USD"
    )
    assert handed_over == [create]
    bad = {**create, "args": ["BTC/USD", "limit", "buy", "0.25", "100.15"]}
    assert isinstance(decode(bad, MARKETS), requests.RequestError) and handed_over[-1] is bad
