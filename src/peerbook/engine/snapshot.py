"""Engine snapshots: a canonical, versioned JSON encoding of the whole engine state.

The encoding is JSON with sorted keys and no whitespace, so equal states give equal bytes.
It holds the markets, the counters, the digest chain, every order on record and what the
engine keeps of retired ones (`peerbook.engine.retired`); the books are not stored, because
they are exactly the resting orders rejoined in id (time) order.
Decoding checks every field's type and the cross-field rules, because a snapshot may arrive
from another peer: bytes that do not describe a valid engine raise `SnapshotError`, never
anything else. No pickle is involved anywhere.
"""

import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from peerbook.engine.engine import Engine, RetiredState, compiled_order_decoder
from peerbook.engine.markets import Market
from peerbook.engine.order import Order
from peerbook.engine.retired import RetiredOrders
from peerbook.engine.types import OrderState, OrderType, Side, TimeInForce
from peerbook.errors import EngineInvariantError, InvalidCommand, SnapshotError

__all__ = [
    "FORMAT", "VERSION", "decode_order", "encode_order", "restore", "restore_document", "snapshot",
]  # fmt: skip

FORMAT = "peerbook-engine-snapshot"
VERSION = 3
"""Version 2 added ``retired``, listing each retired order; version 3 carries them packed
(`RetiredOrders.encode`). Snapshots of versions 1 (no retired orders) and 2 are still read."""

_ORDER_FIELDS = 15


def snapshot(engine: Engine, kept_client_ids: Iterable[tuple[str, str, int]] = ()) -> bytes:
    """The canonical encoding of ``engine``'s state.

    An engine that keeps retired orders' client order ids in a store
    (`Engine.keep_client_ids_in`) encodes only those still in memory, unless the caller
    passes the store's (owner, client order id, order id) triples as ``kept_client_ids``:
    then the encoding restores an engine that needs no store (`peerbook replay`'s)."""
    chain, open_block = engine.digest_state()
    document = {
        "format": FORMAT,
        "version": VERSION,
        "markets": [
            [m.symbol, m.price_tick.text, m.amount_step.text] for m in engine.markets.values()
        ],
        "sequence": engine.sequence,
        "trade_count": engine.trade_count,
        "digest": {"chain": chain.hex(), "open": list(open_block)},
        "orders": [encode_order(o) for o in engine.orders()],
        "retired": {
            **engine.retired_packed(),
            "client_order_ids": [
                list(c)
                for c in sorted(
                    engine.retired_client_order_ids(kept_client_ids), key=lambda c: c[2]
                )
            ],
            "fills": sorted(
                [symbol, int(side), lots]
                for (symbol, side), lots in engine.retired_fills.items() if lots
            ),
        },
    }  # fmt: skip
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def restore(data: bytes) -> Engine:
    """An engine in the state ``data`` describes.

    Raises:
        SnapshotError: ``data`` is not a valid snapshot of this format and version.
    """
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SnapshotError(f"snapshot is not JSON: {type(exc).__name__}") from exc
    return restore_document(document)


def restore_document(document: object) -> Engine:
    """An engine in the state the already parsed snapshot ``document`` describes (for
    snapshots embedded in a larger JSON document).

    Raises:
        SnapshotError: as `restore`.
    """
    if not isinstance(document, dict):
        raise SnapshotError("snapshot is not a JSON object")
    if document.get("format") != FORMAT or document.get("version") not in (1, 2, VERSION):
        raise SnapshotError(
            f"snapshot format {document.get('format')!r} version {document.get('version')!r} "
            f"is not {FORMAT} version {VERSION}"
        )
    try:
        markets = [Market.of(*_strings(m, 3)) for m in _list(document["markets"])]
        digest = document["digest"]
        if not isinstance(digest, dict):
            raise SnapshotError("digest is not an object")
        chain = bytes.fromhex(_string(digest["chain"]))
        if len(chain) != 32:
            raise SnapshotError(f"digest chain has {len(chain)} bytes, not 32")
        open_block = [_string(r) for r in _list(digest["open"])]
        orders = [decode_order(o) for o in _list(document["orders"])]
        sequence = _natural(document["sequence"])
        ids = [o.order_id for o in orders]
        if any(a >= b for a, b in itertools.pairwise(ids)) or (ids and ids[-1] > sequence):
            raise SnapshotError("order ids are not increasing and at most the sequence")
        engine = Engine.restored(
            markets,
            sequence,
            _natural(document["trade_count"]),
            orders,
            (chain, open_block),
            _decode_retired(document["retired"], [m.symbol for m in markets], document["version"])
            if document["version"] > 1 else (None, (), ()),
        )  # fmt: skip
        engine.check_invariants()
    except (KeyError, ValueError, TypeError, InvalidCommand, EngineInvariantError) as exc:
        raise SnapshotError(f"snapshot is inconsistent: {exc!r}") from exc
    return engine


def _decode_retired(value: object, symbols: list[str], version: int) -> RetiredState:
    if not isinstance(value, dict):
        raise SnapshotError("retired is not an object")
    if version > 2:
        orders = RetiredOrders.decode(
            symbols, [_string(owner) for owner in _list(value["owners"])], _string(value["packed"])
        )
    else:
        orders = RetiredOrders.of(symbols, _retired_facts(_list(value["orders"])))
    client_order_ids = []
    for record in _list(value["client_order_ids"]):
        owner, client_order_id, order_id = _list(record) if len(_list(record)) == 3 else [None] * 3
        client_order_ids.append((_string(owner), _string(client_order_id), _natural(order_id)))
    fills = []
    for record in _list(value["fills"]):
        symbol, side, lots = _list(record) if len(_list(record)) == 3 else [None] * 3
        fills.append((_string(symbol), Side(_natural(side)), _natural(lots)))
    return orders, client_order_ids, fills


def _retired_facts(records: list[object]) -> Iterator[tuple[int, str, str, OrderState]]:
    """The retired orders of a version 2 snapshot, one record each, in increasing id order."""
    last = 0
    for record in records:
        order_id, owner, symbol, state = _list(record) if len(_list(record)) == 4 else [None] * 4
        order_id = _natural(order_id)
        if order_id <= last:
            raise SnapshotError(f"retired order ids are not increasing at {order_id}")
        last = order_id
        yield order_id, _string(owner), _string(symbol), OrderState(_natural(state))


def encode_order(order: Order) -> list[Any]:
    """One order as the snapshot's JSON array of its fields (also the audit trail's record)."""
    return [
        order.order_id, order.owner, order.client_order_id, order.symbol, int(order.side),
        int(order.type), int(order.time_in_force), order.post_only, order.price, order.amount,
        order.remaining, order.cost, order.timestamp, order.last_trade_timestamp,
        int(order.state),
    ]  # fmt: skip


# Enum members by value (each enum's values are 0, 1, ...): indexing a tuple is about ten
# times cheaper than calling the enum, which counts when a snapshot holds millions of orders.
_SIDES, _TYPES, _TIFS, _STATES = (
    tuple(Side),
    tuple(OrderType),
    tuple(TimeInForce),
    tuple(OrderState),
)
_N_SIDES, _N_TYPES, _N_TIFS, _N_STATES = len(_SIDES), len(_TYPES), len(_TIFS), len(_STATES)


def _decode_order(value: object) -> Order:
    """One order from its `encode_order` array. A record that passes the one cheap check
    below (the common case) is built directly; any other goes through
    `_decode_order_checked`, which says what is wrong with it. `decode_order` is this
    function with well-formed records read in C where the engine's C module is built."""
    if type(value) is not list or len(value) != _ORDER_FIELDS:
        return _decode_order_checked(value)
    (order_id, owner, client_order_id, symbol, side, type_, time_in_force, post_only, price,
     amount, remaining, cost, timestamp, last_trade_timestamp, state) = value  # fmt: skip
    if not (
        type(order_id) is int and order_id >= 0 and type(owner) is str
        and type(symbol) is str and (client_order_id is None or type(client_order_id) is str)
        and type(side) is int and 0 <= side < _N_SIDES
        and type(type_) is int and 0 <= type_ < _N_TYPES
        and type(time_in_force) is int and 0 <= time_in_force < _N_TIFS
        and type(state) is int and 0 <= state < _N_STATES
        and type(post_only) is bool and (price is None or (type(price) is int and price >= 0))
        and type(amount) is int and amount >= 0 and type(remaining) is int and remaining >= 0
        and type(cost) is int and cost >= 0 and type(timestamp) is int and timestamp >= 0
        and (last_trade_timestamp is None
             or (type(last_trade_timestamp) is int and last_trade_timestamp >= 0))
    ):  # fmt: skip
        return _decode_order_checked(value)
    order = Order(order_id, owner, client_order_id, symbol, _SIDES[side], _TYPES[type_],
                  _TIFS[time_in_force], post_only, price, amount, timestamp)  # fmt: skip
    order.remaining, order.cost = remaining, cost
    order.last_trade_timestamp, order.state = last_trade_timestamp, _STATES[state]
    return order


decode_order = compiled_order_decoder(_decode_order)


def _decode_order_checked(value: object) -> Order:
    fields = _list(value)
    if len(fields) != _ORDER_FIELDS:
        raise SnapshotError(f"order record has {len(fields)} fields, not {_ORDER_FIELDS}")
    (order_id, owner, client_order_id, symbol, side, type_, time_in_force, post_only, price,
     amount, remaining, cost, timestamp, last_trade_timestamp, state) = fields  # fmt: skip
    if not isinstance(post_only, bool):
        raise SnapshotError(f"post_only {post_only!r} is not a boolean")
    order = Order(
        _natural(order_id), _string(owner),
        None if client_order_id is None else _string(client_order_id), _string(symbol),
        Side(_natural(side)), OrderType(_natural(type_)), TimeInForce(_natural(time_in_force)),
        post_only, None if price is None else _natural(price), _natural(amount),
        _natural(timestamp),
    )  # fmt: skip
    order.remaining = _natural(remaining)
    order.cost = _natural(cost)
    order.last_trade_timestamp = (
        None if last_trade_timestamp is None else _natural(last_trade_timestamp)
    )
    order.state = OrderState(_natural(state))
    return order


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise SnapshotError(f"{value!r:.60} is not a list")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise SnapshotError(f"{value!r:.60} is not a string")
    return value


def _strings(value: object, count: int) -> list[str]:
    items = [_string(v) for v in _list(value)]
    if len(items) != count:
        raise SnapshotError(f"{items!r:.60} does not hold {count} strings")
    return items


def _natural(value: object) -> int:
    if type(value) is not int or value < 0:
        raise SnapshotError(f"{value!r:.60} is not a non-negative integer")
    return value
