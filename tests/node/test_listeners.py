"""What the peer's listeners on the applied event stream cost: the feed builds nothing for
nobody, and the audit trail builds one row per order per write, from its latest state."""

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from peerbook.engine import Engine
from peerbook.node import audit, feed
from peerbook.node.archive import Archive, connect, image
from peerbook.node.audit import AuditTrail
from peerbook.node.feed import Feed
from peerbook.replication import OrderStateMachine
from peerbook.replication.entries import encode_entry


def order(owner: str, side: str, amount: str, price: str) -> dict[str, Any]:
    args = ["BTC/USD", "limit", side, amount, price]
    return {"op": "createOrder", "owner": owner, "timestamp": 1_764_000_000_000, "args": args}


def counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Count the calls of ``module.name`` (the name the module itself looks up)."""
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def resting_orders(count: int) -> OrderStateMachine:
    """A state machine that applied ``count`` orders that all rest (none trades)."""
    machine = OrderStateMachine(Engine())
    for index in range(1, count + 1):
        side, price = ("sell", "30001") if index % 2 else ("buy", "29999")
        machine.apply(index, encode_entry("p1", [order("p1", side, "1", price)]))
    return machine


def test_the_feed_builds_no_message_while_nobody_subscribes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checksums = counting(monkeypatch, feed, "engine_checksum")

    async def scenario() -> None:
        machine = OrderStateMachine(Engine())
        published = Feed(machine.engine)
        machine.listeners.append(published.on_applied)
        await published.start()
        machine.apply(1, encode_entry("p1", [order("p1", "sell", "1", "30000")]))
        assert checksums == []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{published.port}/") as socket,
        ):
            async with asyncio.timeout(5):
                while not published.subscribers:
                    await asyncio.sleep(0.01)
            machine.apply(2, encode_entry("p2", [order("p2", "buy", "0.4", "30000")]))
            assert len(checksums) == 1
            message = await socket.receive_json(timeout=5)
            assert message["channel"] == "trades" and message["nonce"] == 2
        await published.stop()

    asyncio.run(scenario())


def test_the_audit_trail_writes_one_row_per_order_with_its_latest_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = counting(monkeypatch, audit, "order_view")

    async def scenario() -> None:
        machine = OrderStateMachine(Engine())
        trail = AuditTrail(tmp_path / "audit.sqlite3", machine.engine)
        machine.listeners.append(trail.on_applied)
        machine.apply(1, encode_entry("p1", [order("p1", "sell", "1", "30000")]))
        for index in range(2, 6):  # the maker is filled a quarter at a time
            machine.apply(index, encode_entry("p2", [order("p2", "buy", "0.25", "30000")]))
        await trail.flush()
        assert len(views) == 5  # the maker and four takers, each once
        await trail.close()

    asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "audit.sqlite3") as db:
        rows = db.execute("select id, filled, remaining, state from orders order by id").fetchall()
    assert rows[0] == (1, "1", "0", "filled")
    assert rows[1:] == [(i, "0.25", "0", "filled") for i in range(2, 6)]


def test_a_stopping_peer_leaves_an_install_backlog_to_its_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A soak found peers that left right after joining and took over 20 s to stop: the
    audit trail was writing every order of the snapshot they had just installed. A stop now
    writes such a backlog for `CLOSE_S` at most (here none: one transaction, the first), and
    the next start, which installs the snapshot again, writes the rest."""
    monkeypatch.setattr(audit, "ORDERS_PER_WRITE", 100)
    monkeypatch.setattr(audit, "CLOSE_S", 0.0)
    machine = resting_orders(350)
    path = tmp_path / "audit.sqlite3"

    def rows() -> int:
        with sqlite3.connect(path) as db:
            return int(db.execute("select count(*) from orders").fetchone()[0])

    async def start_and_stop(expected_after_stop: int) -> None:
        trail = AuditTrail(path, machine.engine)
        trail.on_installed([])
        trail.start()
        await trail.close()
        assert rows() == expected_after_stop

    asyncio.run(start_and_stop(100))
    monkeypatch.setattr(audit, "CLOSE_S", 60.0)
    asyncio.run(start_and_stop(350))


def test_a_closing_trail_still_writes_a_backlog_an_install_queued_during_its_last_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install that replaces the queue while a flush is writing cuts that flush short;
    a trail that is closing meanwhile goes on writing the new backlog within `CLOSE_S`
    (the ten-minute fault run after the soak showed a stop that left 1,259 orders at once)."""
    monkeypatch.setattr(audit, "ORDERS_PER_WRITE", 100)
    monkeypatch.setattr(audit, "CLOSE_S", 60.0)
    machine = resting_orders(300)
    path = tmp_path / "audit.sqlite3"

    async def scenario() -> None:
        trail = AuditTrail(path, machine.engine)
        loop = asyncio.get_running_loop()
        real_write, writes = trail._write, []

        def write(*rows: Any) -> None:  # on the worker thread
            writes.append(1)
            if len(writes) == 1:  # an install arrives while the first write is under way
                loop.call_soon_threadsafe(trail.on_installed, [])
            real_write(*rows)

        monkeypatch.setattr(trail, "_write", write)
        trail.on_installed([])
        trail.start()
        await trail.close()
        assert len(writes) == 4  # the cut flush's first 100, then the new 300

    asyncio.run(scenario())
    with sqlite3.connect(path) as db:
        assert db.execute("select count(*) from orders").fetchone()[0] == 300


def test_a_closing_trail_whose_database_refuses_writes_retries_at_a_pace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails leaves its rows queued for the next flush; a trail that is closing
    retries every `FLUSH_S` until its `CLOSE_S` are spent, not back to back (which logged an
    error each time, thousands in its last seconds)."""
    monkeypatch.setattr(audit, "CLOSE_S", 1.0)
    machine = resting_orders(10)

    async def scenario() -> int:
        trail = AuditTrail(tmp_path / "audit.sqlite3", machine.engine)
        writes = []

        def refuse(*rows: Any) -> None:
            writes.append(1)
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(trail, "_write", refuse)
        trail.on_installed([])
        trail.start()
        await trail.close()
        return len(writes)

    attempts = asyncio.run(scenario())
    assert 2 <= attempts <= audit.CLOSE_S / audit.FLUSH_S + 2


def test_a_restarted_trail_writes_again_only_what_its_database_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-applying the journal after a restart queues every order and trade again: the
    closed orders and the trades already on disk are reported as written (so they leave
    memory) without being built or written again; the order still open is rewritten, and
    what is new is written."""
    path = tmp_path / "audit.sqlite3"
    entries = [
        encode_entry("p1", [order("p1", "sell", "1", "30000")]),
        encode_entry("p2", [order("p2", "buy", "0.25", "30000")]),
        encode_entry("p2", [order("p2", "buy", "0.25", "30000")]),
    ]

    async def run(count: int) -> list[tuple[int, list[int]]]:
        machine = OrderStateMachine(Engine())
        trail = AuditTrail(path, machine.engine)
        written: list[tuple[int, list[int]]] = []
        trail.on_written = lambda trade_id, closed: written.append((trade_id, sorted(closed)))
        machine.listeners.append(trail.on_applied)
        for index, entry in enumerate(entries[:count], start=1):
            machine.apply(index, entry)
        await trail.flush()
        await trail.close()
        return written

    assert asyncio.run(run(2)) == [(1, [2])]
    with sqlite3.connect(path) as db:
        before = db.execute("select * from orders order by id").fetchall()
    views = counting(monkeypatch, audit, "order_view")
    assert asyncio.run(run(3)) == [(2, [2, 3])]
    assert len(views) == 2  # the maker, still open, and the new taker: order 2 is not rebuilt
    with sqlite3.connect(path) as db:
        after = db.execute("select * from orders order by id").fetchall()
        trades = db.execute("select id, taker_order, maker_order from trades").fetchall()
        fills = db.execute("select count(*) from fills").fetchone()[0]
    assert after[1] == before[1] and after[0][10:12] == ("0.5", "0.5")
    assert trades == [(1, 2, 1), (2, 3, 1)] and fills == 4


def test_rows_built_before_an_install_adopted_a_copy_are_not_written_into_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An install that adopts a snapshot's copy of the database (`AuditTrail.adopt`) while a
    flush has built rows of the state it replaces: those rows must not land in the copy,
    where they could overwrite the final row of an order retired in the new state."""
    machine = resting_orders(10)
    empty = tmp_path / "empty.sqlite3"
    connect(empty, create=True).close()
    copy = Archive.of_image(image(empty))
    path = tmp_path / "audit.sqlite3"

    async def scenario() -> None:
        trail = AuditTrail(path, machine.engine)
        real_write = trail._write

        def write(*rows: Any) -> None:  # on the worker thread, the rows built
            trail.adopt(copy)  # the install lands before they are written
            real_write(*rows)

        monkeypatch.setattr(trail, "_write", write)
        trail.on_installed([])
        assert await trail.flush()
        await trail.close()

    asyncio.run(scenario())
    copy.close()
    with sqlite3.connect(path) as db:
        assert db.execute("select count(*) from orders").fetchone()[0] == 0
