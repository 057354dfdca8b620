"""RetiredOrders: what the engine still knows of a closed order after its full record left memory.

A closed order (filled, canceled, expired) never changes again, and the engine itself needs
only three facts about it to answer every later command exactly as if the full record were
still there: its owner, market and final state (a cancel of it is refused with "order N is
filled, not open", "no open order N owned by peer P" or "order N is not in market S"). Its
client order id stays in the engine's deduplication map, which holds order ids, unless the
engine was given `RetiredClientIds`, a store that already holds it (the audit trail's
database, on a peer): then it leaves memory too, and a lookup that misses in memory asks
the store.

So a peer that has put the full record somewhere else (the audit trail on disk) may retire
the order (`Engine.retire`), and the engine keeps those three facts packed in four bytes,
in an array indexed by order id. Retiring changes no event and no digest, so every peer can
retire on its own schedule, and `peerbook replay` never needs to.
"""

from array import array
from collections.abc import Iterator, Sequence
from itertools import compress
from typing import NamedTuple, Protocol

from peerbook.engine.types import OrderState, Side

__all__ = ["Retired", "RetiredClientIds", "RetiredOrders"]

_STATES = tuple(OrderState)
_STATE_BITS, _SYMBOL_BITS = 3, 7
_OWNER_SHIFT = _STATE_BITS + _SYMBOL_BITS
MAX_SYMBOLS = 1 << _SYMBOL_BITS
MAX_OWNERS = 1 << (32 - _OWNER_SHIFT)


class RetiredClientIds(Protocol):
    """Where the engine finds the client order ids of retired orders once they left memory
    (`Engine.keep_client_ids_in`). Read only, and never the source of truth alone: the
    engine accepts an answer only for an order it retired, of the same owner."""

    def order_id(self, owner: str, client_order_id: str) -> int | None:
        """The id of the owner's order placed with this client order id, or None."""


class Retired(NamedTuple):
    """A retired order's facts; named like `Order`'s attributes so both answer a cancel."""

    order_id: int
    owner: str
    symbol: str
    state: OrderState

    @property
    def is_resting(self) -> bool:
        """Always false: only closed orders retire."""
        return False


class RetiredOrders:
    """Owner, market and final state of every retired order, four bytes each.

    Args:
        symbols: the engine's markets, in a fixed order (a retired order stores the index).
    """

    def __init__(self, symbols: Sequence[str]) -> None:
        self._symbols = tuple(symbols)
        self._symbol_index = {s: i for i, s in enumerate(self._symbols)}
        self._owners: list[str] = []
        self._owner_index: dict[str, int] = {}
        self._packed = array("I")
        self.count = 0
        self.filled: dict[tuple[str, Side], int] = {}
        """Lots filled by the retired orders, by market and side (so that the engine can
        still check that buy fills equal sell fills)."""

    def add(
        self, order_id: int, owner: str, symbol: str, side: Side, state: OrderState, filled: int
    ) -> bool:
        """Record a closed order; False (and nothing recorded) when it cannot be packed: an
        owner beyond the first `MAX_OWNERS`, a market beyond the first `MAX_SYMBOLS`, or an id
        already retired. The engine then simply keeps the full record."""
        symbol_index = self._symbol_index.get(symbol)
        if symbol_index is None or symbol_index >= MAX_SYMBOLS or self.get(order_id):
            return False
        owner_index = self._owner_index.get(owner)
        if owner_index is None:
            if len(self._owners) == MAX_OWNERS:
                return False
            owner_index = self._owner_index[owner] = len(self._owners)
            self._owners.append(owner)
        packed = self._packed
        if len(packed) <= order_id:
            packed.frombytes(bytes(packed.itemsize * (order_id + 1 - len(packed))))
        packed[order_id] = state | symbol_index << _STATE_BITS | owner_index << _OWNER_SHIFT
        self.count += 1
        if filled:
            self.filled[symbol, side] = self.filled.get((symbol, side), 0) + filled
        return True

    def remove(self, order_id: int, side: Side, filled: int) -> Retired | None:
        """Forget a retired order whose full record is back in memory (it had ``side`` and
        ``filled``); the facts it had, or None if it was not retired."""
        retired = self.get(order_id)
        if retired is not None:
            self._packed[order_id] = 0
            self.count -= 1
            if filled:
                self.filled[retired.symbol, side] -= filled
        return retired

    def get(self, order_id: int) -> Retired | None:
        """The retired order with this id, or None."""
        if not 0 <= order_id < len(self._packed):
            return None
        packed = self._packed[order_id]
        if not packed:
            return None
        return Retired(
            order_id,
            self._owners[packed >> _OWNER_SHIFT],
            self._symbols[packed >> _STATE_BITS & (MAX_SYMBOLS - 1)],
            _STATES[packed & ((1 << _STATE_BITS) - 1)],
        )

    def __iter__(self) -> Iterator[Retired]:
        """Every retired order, in id order."""
        for order_id, packed in enumerate(self._packed):
            if packed:
                retired = self.get(order_id)
                assert retired is not None
                yield retired

    def ids(self) -> Iterator[int]:
        """The ids of every retired order, in order (without unpacking their facts)."""
        return compress(range(len(self._packed)), self._packed)

    def nbytes(self) -> int:
        """The size of the packed array (the owner table is one entry per owner)."""
        return len(self._packed) * self._packed.itemsize
