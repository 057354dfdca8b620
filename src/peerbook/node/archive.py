"""The audit trail's SQLite database: its schema, and reading orders and trades back from it.

`AuditTrail` writes the database; `Archive` reads it. Each row keeps two forms of the same
record: columns an operator queries with ordinary SQL (prices, amounts and costs as the API's
exact decimal strings, never floating point), and ``record``, the engine's own JSON array of
the order or trade, from which `Archive` rebuilds the exact `Order` and `TradeExecuted`.

This is what lets closed orders and old trades leave memory: once a closed order's final row
is committed here (it never changes again), the engine retires it and the peer serves it from
here; trades are served from here once committed. `fills` lists the two sides of every trade
(``maker`` 0 for the taker's order, 1 for the maker's) with the order's owner, so one owner's
fills and one order's fills are an index range each.

A snapshot carries a copy of this database (`image`, read by `Archive.of_image`), so that
a peer that installs it holds the retired orders and old trades at once, as a file, instead
of rebuilding hundreds of thousands of rows from JSON records (what made a join behind a long
history take a minute and more). The copy may hold rows past the snapshot's state, written
after it: they are rows of the same log, which every peer applies alike, so they are the rows
the installing peer would write itself (the engine ignores client order ids of orders it has
not retired, and reads bound ids by the engine's state). Snapshots are written by a forked
child, and SQLite must not be used in a forked child (its per-process lock state is
inherited, and with the inherited descriptors closed it fails outright with "locking
protocol"), so `image` reads the database in a fresh interpreter (``python -m
peerbook.node.archive``).

The schema carries a version (``pragma user_version``). The database is derived data: the
peer rebuilds every row from its snapshot and journal when it starts, so a database of
another version is dropped and written again.
"""

import functools
import itertools
import json
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from peerbook.engine import Order, Side, TradeExecuted
from peerbook.engine.snapshot import decode_order
from peerbook.errors import SnapshotError

__all__ = [
    "SCHEMA_VERSION", "Archive", "Fill", "connect", "decode_trade", "encode_trade", "extent",
    "image",
]  # fmt: skip

SCHEMA_VERSION = 2

_CLOSED = "state in ('filled', 'canceled', 'expired')"
_SCHEMA = f"""
create table if not exists orders (
    id integer primary key, owner text not null, client_order_id text, symbol text not null,
    side text not null, type text not null, time_in_force text not null, post_only integer,
    price text, amount text not null, filled text not null, remaining text not null,
    cost text not null, average text, state text not null, status text not null,
    timestamp integer not null, last_trade_timestamp integer, record text not null
);
create index if not exists orders_owner on orders (owner, id);
create index if not exists orders_client on orders (owner, client_order_id)
    where client_order_id is not null;
create index if not exists orders_closed on orders (id) where {_CLOSED};
create table if not exists trades (
    id integer primary key, symbol text not null, price text not null, amount text not null,
    cost text not null, taker_side text not null, taker_order integer not null,
    maker_order integer not null, timestamp integer not null, record text not null
);
create index if not exists trades_symbol on trades (symbol, id);
create table if not exists fills (
    trade_id integer not null, maker integer not null, order_id integer not null,
    owner text not null, primary key (trade_id, maker)
) without rowid;
create index if not exists fills_owner on fills (owner, trade_id);
create index if not exists fills_order on fills (order_id, trade_id);
"""
_TABLES = ("orders", "trades", "fills")
_WAL_BYTES_KEPT = 64 * 2**20
# Every peer's database has pages of this size, whatever its SQLite build's default: a
# snapshot's copy of one is adopted by SQLite's backup, which cannot copy between page sizes
# into a database in write-ahead-log mode.
PAGE_BYTES = 4096
_SQLITE_HEADER = b"SQLite format 3\x00"
_ROLLBACK_JOURNAL = b"\x01\x01"
_SIDES = tuple(Side)
_TRADE_FIELDS = len(TradeExecuted._fields)


class Fill(NamedTuple):
    """One side of a trade, seen by one order's owner."""

    trade: TradeExecuted
    side: Side


def connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    """A connection to the database at ``path`` (autocommit: every read sees what is
    committed). With ``create``, the schema is made (a database of another version is
    dropped first), as the writer does before anyone reads."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    if create:
        db.execute(f"pragma page_size={PAGE_BYTES}")  # for a new database only
        db.execute("pragma journal_mode=wal")
        db.execute("pragma synchronous=normal")
        # The write-ahead log keeps its largest size unless limited: an install's copy of a
        # whole database passes through it (`AuditTrail.adopt`).
        db.execute(f"pragma journal_size_limit={_WAL_BYTES_KEPT}")
        if db.execute("pragma user_version").fetchone()[0] != SCHEMA_VERSION:
            for table in _TABLES:
                db.execute(f"drop table if exists {table}")
        db.executescript(_SCHEMA)  # also adds an index a database of this version lacks
        db.execute(f"pragma user_version={SCHEMA_VERSION}")
    return db


def _schema_of(db: sqlite3.Connection) -> list[tuple[str, str, str, str]]:
    """Every object of the database: type, name, table and its SQL with whitespace evened
    out (a database made by an earlier release may differ in nothing else)."""
    rows = db.execute("select type, name, tbl_name, sql from sqlite_schema order by type, name")
    return [(kind, name, table, " ".join((sql or "").split())) for kind, name, table, sql in rows]


@functools.cache
def _reference_schema() -> list[tuple[str, str, str, str]]:
    """The schema `connect` makes, as `_schema_of` lists it."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(_SCHEMA)
        return _schema_of(db)
    finally:
        db.close()


def extent(db: sqlite3.Connection) -> tuple[int, int]:
    """The highest trade id up to which every trade is in the database of ``db`` (0 when
    there is a gap), and the highest order id in it."""
    count, highest = db.execute("select count(*), coalesce(max(id), 0) from trades").fetchone()
    (orders,) = db.execute("select coalesce(max(id), 0) from orders").fetchone()
    return (highest if count == highest else 0), orders


def encode_trade(trade: TradeExecuted) -> list[Any]:
    """The trade as a JSON array of its fields (the side as its number)."""
    return [*trade[:5], int(trade.taker_side), *trade[6:]]


def decode_trade(row: Any) -> TradeExecuted:
    """A trade from its `encode_trade` array, its field types checked.

    Raises:
        SnapshotError: not such an array.
    """
    if type(row) is not list or len(row) != _TRADE_FIELDS:
        raise SnapshotError(f"not a trade: {row!r:.80}")
    (sequence, trade_id, symbol, price, quantity, side, taker, maker, taker_left, maker_left,
     timestamp) = row  # fmt: skip
    if not (
        type(sequence) is int and sequence >= 0 and type(trade_id) is int and trade_id > 0
        and type(symbol) is str and type(side) is int and side in (0, 1)
        and type(price) is int and price > 0 and type(quantity) is int and quantity > 0
        and type(taker) is int and type(maker) is int
        and type(taker_left) is int and taker_left >= 0
        and type(maker_left) is int and maker_left >= 0
        and type(timestamp) is int and timestamp >= 0
    ):  # fmt: skip
        raise SnapshotError(f"not a trade: {row!r:.80}")
    return TradeExecuted(sequence, trade_id, symbol, price, quantity, _SIDES[side], taker, maker,
                         taker_left, maker_left, timestamp)  # fmt: skip


class Archive:
    """Reads orders and trades back from the audit trail's database at ``path``.

    Every listing takes the API's window: with ``since``, the first ``limit`` items from that
    timestamp on; without, the most recent ``limit``; always returned oldest first.
    """

    def __init__(self, path: Path, db: sqlite3.Connection | None = None) -> None:
        self.path = path
        self._db = connect(path) if db is None else db

    @classmethod
    def of_image(cls, data: bytes) -> "Archive":
        """An archive held in memory, read from an `image` of one.

        Raises:
            SnapshotError: ``data`` is not an image of a database of this schema version.
        """
        try:
            database = zlib.decompress(data)
        except zlib.error as exc:
            raise SnapshotError(f"the archive image is not compressed data: {exc}") from exc
        if not database.startswith(_SQLITE_HEADER) or database[18:20] != _ROLLBACK_JOURNAL:
            raise SnapshotError("the archive image is not an SQLite database image")
        memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        archive = cls(Path(":memory:"), memory)
        try:
            archive._db.deserialize(database)
            (version,) = archive._db.execute("pragma user_version").fetchone()
            (pages,) = archive._db.execute("pragma page_count").fetchone()
            (page_bytes,) = archive._db.execute("pragma page_size").fetchone()
            schema = _schema_of(archive._db)
        except sqlite3.Error as exc:
            archive.close()
            raise SnapshotError(f"the archive image cannot be read: {exc}") from exc
        if pages * page_bytes != len(database):
            archive.close()
            raise SnapshotError("the archive image is not whole")
        # Exactly this schema: a trigger or view it brought along would come into the peer's
        # own database with it, and a missing index would fail its queries.
        if version != SCHEMA_VERSION or schema != _reference_schema():
            archive.close()
            raise SnapshotError(f"the archive image is not of schema version {SCHEMA_VERSION}")
        return archive

    def extent(self) -> tuple[int, int]:
        """`extent` of this database."""
        return extent(self._db)

    def page_bytes(self) -> int:
        """The size of this database's pages."""
        (size,) = self._db.execute("pragma page_size").fetchone()
        return int(size)

    def copy_to(self, db: sqlite3.Connection) -> None:
        """Make the database of connection ``db`` a copy of this one (in one transaction:
        readers of ``db`` see the old rows or the new, never a mix)."""
        self._db.backup(db)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def order(self, order_id: int) -> Order | None:
        """The order with this id as last written, or None."""
        row = self._db.execute("select record from orders where id = ?", (order_id,)).fetchone()
        return None if row is None else decode_order(json.loads(row[0]))

    def order_id(self, owner: str, client_order_id: str) -> int | None:
        """The id of the owner's order placed with this client order id, or None (the
        engine's `RetiredClientIds`: client order ids of retired orders are found here)."""
        rows = self._db.execute(
            "select id from orders where owner = ? and client_order_id = ?",
            (owner, client_order_id),
        ).fetchall()  # all: a statement left unfinished would hold an old read snapshot
        return None if not rows else int(rows[0][0])

    def client_order_ids(self) -> Iterator[tuple[str, str, int]]:
        """(owner, client order id, id) of every order placed with a client order id."""
        return iter(self._db.execute(
            "select owner, client_order_id, id from orders indexed by orders_client "
            "where client_order_id is not null"
        ).fetchall())  # fmt: skip

    def closed_orders(
        self, owner: str, symbol: str | None, since: int | None, limit: int, upto: int
    ) -> list[Order]:
        """The owner's closed (filled, canceled, expired) orders with ids up to ``upto``, in
        the window."""
        where, values = [f"owner = ? and id <= ? and {_CLOSED}"], [owner, upto]
        rows = self._window("orders", where, values, symbol, since, limit, "id")
        return [decode_order(json.loads(row[0])) for row in rows]

    def trades(self, symbol: str, since: int | None, limit: int, upto: int) -> list[TradeExecuted]:
        """The market's trades with ids up to ``upto``, in the window."""
        rows = self._window("trades", ["id <= ?"], [upto], symbol, since, limit, "id")
        return [decode_trade(json.loads(row[0])) for row in rows]

    def fills_of_owner(
        self, owner: str, symbol: str | None, since: int | None, limit: int, upto: int
    ) -> list[Fill]:
        """The fills of the owner's orders in trades with ids up to ``upto``, in the window."""
        rows = self._window(
            "fills join trades on trades.id = fills.trade_id",
            ["fills.owner = ? and fills.trade_id <= ?"], [owner, upto], symbol, since, limit,
            "fills.trade_id", ", maker",
        )  # fmt: skip
        return [self._fill(record, maker) for record, maker in rows]

    def fills_of_order(self, order_id: int, upto: int | None = None) -> list[Fill]:
        """The order's fills (in trades with ids up to ``upto``, if given), in execution
        order."""
        rows = self._db.execute(
            "select record, maker from fills join trades on trades.id = fills.trade_id "
            "where fills.order_id = ? and fills.trade_id <= ? order by fills.trade_id, maker",
            (order_id, upto if upto is not None else 2**63 - 1),
        )
        return [self._fill(record, maker) for record, maker in rows]

    @staticmethod
    def _fill(record: str, maker: int) -> Fill:
        trade = decode_trade(json.loads(record))
        return Fill(trade, trade.taker_side.opposite if maker else trade.taker_side)

    def _window(
        self,
        source: str,
        where: list[str],
        values: list[Any],
        symbol: str | None,
        since: int | None,
        limit: int,
        key: str,
        then: str = "",
    ) -> list[tuple[Any, ...]]:
        if symbol is not None:
            where, values = [*where, "symbol = ?"], [*values, symbol]
        if since is not None:
            where, values = [*where, "timestamp >= ?"], [*values, since]
        order = "asc" if since is not None else "desc"
        then = then and f"{then} {order}"
        columns = "record, maker" if source.startswith("fills") else "record"
        rows = self._db.execute(
            f"select {columns} from {source} where {' and '.join(where)} "
            f"order by {key} {order}{then} limit ?",
            (*values, limit),
        ).fetchall()
        return rows if since is not None else rows[::-1]

    def lacking(self, trade_count: int, closed_ids: Iterable[int]) -> list[int] | None:
        """The orders of ``closed_ids`` (in their order) that have no closed row here; None
        when the database does not hold every trade up to id ``trade_count``. Empty when a
        peer restarts from its own data directory: the snapshot's copy of the history is
        then left unread. Reads indexes only."""
        (trades,) = self._db.execute(
            "select count(*) from trades where id <= ?", (trade_count,)
        ).fetchone()
        if trades != trade_count:
            return None
        held = {order_id for (order_id,) in self._db.execute(
            f"select id from orders indexed by orders_closed where {_CLOSED}"
        ).fetchall()}  # fmt: skip
        return list(itertools.filterfalse(held.__contains__, closed_ids))

    def order_records(self, ids: Iterable[int]) -> Iterator[list[Any]]:
        """The records (`encode_order` arrays) of the closed orders with these ids (given in
        ascending order), in id order.

        Raises:
            SnapshotError: one of them has no closed row.
        """
        wanted = iter(ids)
        next_id = next(wanted, None)
        rows = self._db.execute(f"select id, record from orders where {_CLOSED} order by id")
        for order_id, record in rows:
            if next_id is None or order_id > next_id:
                break
            if order_id == next_id:
                yield _record(record)
                next_id = next(wanted, None)
        if next_id is not None:
            raise SnapshotError(f"closed order {next_id} is not in the audit trail")

    def trade_records(self, upto: int) -> Iterator[list[Any]]:
        """The records (`encode_trade` arrays) of every trade with an id up to ``upto``, in
        id order.

        Raises:
            SnapshotError: a trade in that range has no row.
        """
        expected = 1
        for (record,) in self._db.execute(
            "select record from trades where id <= ? order by id", (upto,)
        ):
            trade = _record(record)
            if trade[1] != expected:
                raise SnapshotError(f"trade {expected} is not in the audit trail")
            expected += 1
            yield trade
        if expected != upto + 1:
            raise SnapshotError(f"trade {expected} is not in the audit trail")


def _record(text: object) -> list[Any]:
    """A row's record, an array of at least an order's or trade's first two fields (what the
    reader looks at before `decode_order` or the trade checks, which check the rest).

    Raises:
        SnapshotError: it is not such an array (a damaged copy).
    """
    try:
        record = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        record = None
    if type(record) is not list or len(record) < 2:
        raise SnapshotError(f"a record of the archive is not an array: {text!r:.60}")
    return record


def image(path: Path) -> bytes:
    """A compressed copy of the database at ``path``, as one consistent read sees it (for
    `Archive.of_image`), made by a fresh interpreter (safe in a forked child).

    Raises:
        SnapshotError: the database could not be read.
    """
    # No timeout here: subprocess waits for one by sleeping in a loop, and under a faked
    # clock (libfaketime, the fault harness's clock faults) that sleep fails with EINVAL.
    # The snapshot child that calls this is bounded as a whole (`SnapshotStore`).
    done = subprocess.run(
        [sys.executable, "-m", "peerbook.node.archive", str(path)],
        capture_output=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise SnapshotError(f"reading the audit trail failed: {' '.join(reason)}")
    return done.stdout


def _image_main(path: Path) -> None:
    source = connect(path)
    copy = sqlite3.connect(":memory:")
    try:
        source.backup(copy)  # one step: one read transaction, so one consistent state
        database = bytearray(copy.serialize())
    finally:
        source.close()
        copy.close()
    # The header names the journal mode (bytes 18 and 19: 2 for write-ahead logging); an
    # image marked so cannot be opened in memory, so it is marked for a rollback journal.
    database[18:20] = _ROLLBACK_JOURNAL
    sys.stdout.buffer.write(zlib.compress(database, 1))


if __name__ == "__main__":
    _image_main(Path(sys.argv[1]))
