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

A snapshot carries the array itself (`RetiredOrders.encode`): a settled peer behind a
million orders has retired nine in ten of them, and reading them back as one JSON array per
order was the larger part of its restart.
"""

import base64
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
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
        self.symbols = tuple(symbols)
        """The markets, in the order the packed facts index them."""
        self._symbol_index = {s: i for i, s in enumerate(self.symbols)}
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
            self.symbols[packed >> _STATE_BITS & (MAX_SYMBOLS - 1)],
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

    def encode(self) -> dict[str, object]:
        """What a snapshot carries, canonical (equal for equal sets of retired orders,
        whatever order they were retired in): the owners of retired orders, sorted, and the
        packed array, indexing them in that order, as base64 of little-endian 32-bit words
        without trailing zeros."""
        end = len(self._packed)
        while end and not self._packed[end - 1]:
            end -= 1
        words = self._packed[:end]
        distinct = set(words) - {0}
        owners = sorted({self._owners[word >> _OWNER_SHIFT] for word in distinct})
        index = {owner: position for position, owner in enumerate(owners)}
        low = (1 << _OWNER_SHIFT) - 1
        renamed = {
            word: word & low | index[self._owners[word >> _OWNER_SHIFT]] << _OWNER_SHIFT
            for word in distinct
        }  # fmt: skip
        if any(word != new for word, new in renamed.items()):
            renamed[0] = 0
            words = array(words.typecode, map(renamed.__getitem__, words))
        if sys.byteorder == "big":
            words.byteswap()
        return {"owners": owners, "packed": base64.b64encode(words).decode()}

    @classmethod
    def decode(cls, symbols: Sequence[str], owners: list[str], packed: str) -> "RetiredOrders":
        """The retired orders an `encode` describes (its owners and packed words), checked
        as `_checked` says.

        Raises:
            ValueError: it does not describe retired orders.
        """
        retired = cls(symbols)
        if len(set(owners)) != len(owners) or len(owners) > MAX_OWNERS:
            raise ValueError("the retired orders' owners repeat or are too many")
        words = base64.b64decode(packed, validate=True)
        if len(words) % retired._packed.itemsize:
            raise ValueError("the retired orders' packed array has a partial word")
        retired._packed.frombytes(words)
        if sys.byteorder == "big":
            retired._packed.byteswap()
        retired._owners = list(owners)
        retired._owner_index = {owner: index for index, owner in enumerate(owners)}
        return retired._checked()

    @classmethod
    def of(
        cls, symbols: Sequence[str], facts: Iterable[tuple[int, str, str, OrderState]]
    ) -> "RetiredOrders":
        """Retired orders from their facts (order id, owner, symbol, state), as snapshots
        before version 3 list them, checked as `_checked` says.

        Raises:
            ValueError: they do not describe retired orders.
        """
        retired = cls(symbols)
        for order_id, owner, symbol, state in facts:
            if order_id <= 0 or not retired.add(order_id, owner, symbol, Side.BUY, state, 0):
                raise ValueError(f"retired order {order_id} cannot be retired")
        return retired._checked()

    def _checked(self) -> "RetiredOrders":
        """This, once every packed word is known to name a known owner and market and a
        closed state, and order id 0 to be unused; its count set.

        Raises:
            ValueError: one does not.
        """
        if self._packed and self._packed[0]:
            raise ValueError("order id 0 is retired")
        # The facts of every order are among few distinct words (owners x markets x states):
        # checking those checks all of them.
        for word in set(self._packed):
            state = word & ((1 << _STATE_BITS) - 1)
            if word and not (
                OrderState.FILLED <= state < len(_STATES)
                and word >> _STATE_BITS & (MAX_SYMBOLS - 1) < len(self.symbols)
                and word >> _OWNER_SHIFT < len(self._owners)
            ):  # fmt: skip
                raise ValueError(f"a retired order's packed facts {word:#x} are not valid")
        self.count = len(self._packed) - self._packed.count(0)
        return self

    def intern_owners(self, interned: dict[str, str]) -> None:
        """Use the engine's copies of the owners' names (``interned``, which gains those it
        lacks), so that each name is held once."""
        self._owners = [interned.setdefault(owner, owner) for owner in self._owners]

    @property
    def highest_id(self) -> int:
        """The highest order id the array has room for (0 when empty): at least the highest
        retired id."""
        return max(len(self._packed) - 1, 0)

    def nbytes(self) -> int:
        """The size of the packed array (the owner table is one entry per owner)."""
        return len(self._packed) * self._packed.itemsize
