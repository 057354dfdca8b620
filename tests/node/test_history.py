"""The history a peer serves: the same answers whether closed orders and old trades are in
memory or only in the audit trail on disk, and the same history after a snapshot install.

A "keeper" machine keeps everything in memory; an "archiver" machine writes a real audit
trail (SQLite in a temporary directory) and lets what it has written leave memory, exactly as
a peer does. Every read must agree between the two, at every window.
"""

import asyncio
import base64
import json
import sqlite3
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from peerbook.engine import Engine
from peerbook.engine.snapshot import restore_document
from peerbook.errors import SnapshotError
from peerbook.node.archive import Archive, connect
from peerbook.node.audit import AuditTrail
from peerbook.node.command_log import CommandLog
from peerbook.node.history import History
from peerbook.replication import OrderStateMachine
from peerbook.replication.entries import encode_entry
from peerbook.replication.snapshot_store import SnapshotStore
from peerbook.replication.state_machine import snapshot_document
from tests.node.conftest import replay_lines
from tests.replication.test_state_machine import entries_of, random_commands

OWNERS = ["p1", "p2", "p3"]
WINDOWS = [(None, 1), (None, 7), (None, 500), (1_764_000_000_100, 5), (1_764_000_000_900, 500)]


def machine_with_history() -> tuple[OrderStateMachine, History]:
    machine = OrderStateMachine(Engine())
    history = History(machine.engine)
    machine.parts["history"] = history
    machine.listeners.append(history.on_applied)
    return machine, history


def machine_with_audit_trail(
    path: Path,
) -> tuple[OrderStateMachine, History, AuditTrail, Archive]:
    """A machine wired as a peer wires its history: an audit trail writing to ``path`` from
    the applied entries (and after installs), whose writes let closed orders leave memory,
    and the archive reading it back."""
    machine, history = machine_with_history()
    audit = AuditTrail(path, machine.engine)
    archive = Archive(path)
    history.attach(archive, audit.adopt)
    audit.on_written = history.archived
    machine.listeners.append(audit.on_applied)
    machine.installed.append(lambda source: audit.on_installed(history.every_trade()))
    return machine, history, audit, archive


def reads(history: History, machine: OrderStateMachine) -> Any:
    """Everything the API can ask the history, as comparable values."""

    def order(o: Any) -> Any:
        return None if o is None else (repr(o), o.cost, o.last_trade_timestamp, o.timestamp)

    answers: list[Any] = []
    for order_id in range(1, machine.engine.sequence + 2):
        answers.append((order(history.order(order_id)), history.fills_of_order(order_id)))
    for owner in OWNERS:
        for count in range(0, 1000, 37):
            answers.append(order(history.order_by_client_id(owner, f"c{count}")))
        for since, limit in WINDOWS:
            for symbol in (None, "BTC/USD", "ETH/USD"):
                for open_orders in (True, False):
                    listed = history.orders_of_owner(owner, open_orders, symbol, since, limit)
                    answers.append([order(o) for o in listed])
                answers.append(history.fills_of_owner(owner, symbol, since, limit))
    for since, limit in WINDOWS:
        answers.append(history.trades("BTC/USD", since, limit))
    return answers


def test_a_history_installed_from_a_snapshot_equals_the_one_built_live() -> None:
    live, live_history = machine_with_history()
    for index, text in enumerate(entries_of(random_commands(21, 2000), 20), start=1):
        live.apply(index, text)
    assert live_history.trades("BTC/USD", None, 10)
    copy, copy_history = machine_with_history()
    copy.install(live.snapshot())
    assert reads(copy_history, copy) == reads(live_history, live)
    assert copy.snapshot() == live.snapshot()


async def _archiving(
    directory: Path, entries: list[str], flush_every: int = 7
) -> tuple[Any, Any, OrderStateMachine]:
    """Apply ``entries`` to a keeper and to an archiver whose audit trail (in ``directory``)
    writes every ``flush_every`` entries; both machines' reads, the archiver's snapshot, and
    the keeper."""
    directory.mkdir(exist_ok=True)
    keeper, keeper_history = machine_with_history()
    archiver, history, audit, archive = machine_with_audit_trail(directory / "audit.sqlite3")
    checked_midway = False
    for index, text in enumerate(entries, start=1):
        keeper.apply(index, text)
        archiver.apply(index, text)
        if index % flush_every == 0:  # some of what was applied is on disk, some in memory
            await audit.flush()
        if index == len(entries) // 2:
            assert reads(history, archiver) == reads(keeper_history, keeper)
            checked_midway = True
    assert checked_midway
    assert archiver.engine.retired_count > 0
    # Client order ids of retired orders are found on disk only, with the same outcomes.
    assert archiver.engine.digest() == keeper.engine.digest()
    assert not list(archiver.engine.retired_client_order_ids())
    on_disk = (archive.order(r.order_id) for r in archiver.engine.retired_orders())
    assert any(o is not None and o.client_order_id is not None for o in on_disk)
    assert history.archived_trade_id > 0
    answers = reads(history, archiver), reads(keeper_history, keeper)
    snapshot = archiver.snapshot()
    await audit.close()
    archive.close()
    return answers, snapshot, keeper


def test_reads_are_the_same_from_memory_and_from_the_audit_trail(tmp_path: Path) -> None:
    entries = entries_of(random_commands(8, 3000), 10)
    (archived, kept), _, _ = asyncio.run(_archiving(tmp_path, entries))
    assert archived == kept


def test_a_snapshot_carries_what_left_memory(tmp_path: Path) -> None:
    entries = entries_of(random_commands(9, 1500), 10)
    _, snapshot, keeper = asyncio.run(_archiving(tmp_path / "writer", entries))
    assert snapshot_document(snapshot)["parts"]["history"]["archive"]
    keeper_history = keeper.parts["history"]
    assert isinstance(keeper_history, History)
    target, target_history = machine_with_history()
    target.install(snapshot)
    assert target.engine.retired_count == 0  # reinstated: this target has no audit trail
    assert reads(target_history, target) == reads(keeper_history, keeper)
    assert target.snapshot() == keeper.snapshot()


def test_a_peer_that_installs_a_snapshot_takes_its_copy_of_the_audit_trail(
    tmp_path: Path,
) -> None:
    entries = entries_of(random_commands(10, 1500), 10)
    _, snapshot, keeper = asyncio.run(_archiving(tmp_path / "writer", entries))
    retired = list(restore_document(snapshot_document(snapshot)["engine"]).retired_ids())
    assert retired
    keeper_history = keeper.parts["history"]
    assert isinstance(keeper_history, History)

    async def join() -> None:
        target, history, audit, archive = machine_with_audit_trail(tmp_path / "joiner.sqlite3")
        target.install(snapshot)
        # Served from the copy at once, before the audit trail wrote anything: nothing put
        # back in memory.
        assert list(target.engine.retired_ids()) == retired
        assert archive.lacking(history.archived_trade_id, retired) == []
        assert reads(history, target) == reads(keeper_history, keeper)
        await audit.close()
        assert reads(history, target) == reads(keeper_history, keeper)
        archive.close()

    asyncio.run(join())


def _legacy(snapshot: bytes, archive: Archive) -> dict[str, Any]:
    """The snapshot with the history part of before 2026-11-27: every retired order's record
    and every trade, from ``archive`` (the writer's audit trail)."""
    document = snapshot_document(snapshot)
    engine = restore_document(document["engine"])
    part = document["parts"]["history"]
    document["parts"]["history"] = {
        "orders": list(archive.order_records(engine.retired_ids())),
        "trades": [*archive.trade_records(part["archived_trade_id"]), *part["trades"]],
    }
    return document


@pytest.mark.parametrize("archived", [False, True])
def test_a_snapshot_with_the_older_history_part_still_installs(
    tmp_path: Path, archived: bool
) -> None:
    entries = entries_of(random_commands(11, 1500), 10)
    _, snapshot, keeper = asyncio.run(_archiving(tmp_path / "writer", entries))
    archive = Archive(tmp_path / "writer" / "audit.sqlite3")
    document = _legacy(snapshot, archive)
    archive.close()
    assert document["parts"]["history"]["orders"]
    keeper_history = keeper.parts["history"]
    assert isinstance(keeper_history, History)

    async def install() -> None:
        target, history = machine_with_history()
        if archived:
            audit = AuditTrail(tmp_path / "target.sqlite3", target.engine)
            history.attach(Archive(tmp_path / "target.sqlite3"), audit.adopt)
        target.install(json.dumps(document).encode())
        assert target.engine.retired_count == 0  # every record back in memory
        assert reads(history, target) == reads(keeper_history, keeper)
        if archived:
            await audit.close()

    asyncio.run(install())


def _changed_copy(part: dict[str, Any], statement: str, *values: Any, then: str = "") -> None:
    """Run ``statement`` (and ``then``) on the history part's copy of the audit trail, as a
    file (an in-memory database keeps its page size through a vacuum)."""
    copy = Archive.of_image(base64.b64decode(part["archive"]))
    database = copy._db.serialize()
    copy.close()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "copy.sqlite3"
        path.write_bytes(database)
        db = sqlite3.connect(path, isolation_level=None)
        db.execute(statement, values)
        if then:
            db.execute(then)
        db.close()
        database = path.read_bytes()
    part["archive"] = base64.b64encode(zlib.compress(database)).decode()


@pytest.mark.parametrize(
    "damage", ["retired order missing", "retired order twice", "retired order forged",
               "retired fill forged"],
)  # fmt: skip
def test_an_older_history_part_with_false_records_is_refused(tmp_path: Path, damage: str) -> None:
    entries = entries_of(random_commands(5, 900), 10)
    _, snapshot, _ = asyncio.run(_archiving(tmp_path / "writer", entries))
    archive = Archive(tmp_path / "writer" / "audit.sqlite3")
    document = _legacy(snapshot, archive)
    archive.close()
    orders = document["parts"]["history"]["orders"]
    if damage == "retired order missing":
        del orders[0]
    elif damage == "retired order twice":
        orders[1] = orders[0]
    elif damage == "retired order forged":
        orders[0][1] = "someone else"
    else:
        filled = next(o for o in orders if o[10] < o[9])  # amount, remaining
        filled[10] += 1
    target, _ = machine_with_history()
    before = target.snapshot()
    with pytest.raises(SnapshotError):
        target.install(json.dumps(document).encode())
    assert target.snapshot() == before


def _without_row(part: dict[str, Any], table: str, row_id: int) -> None:
    """Delete one row from the history part's copy of the audit trail."""
    _changed_copy(part, f"delete from {table} where id = ?", row_id)


def _damaged_copy(part: dict[str, Any], damage: str) -> None:
    """The copy cut short, or with every page after the first (its schema) overwritten."""
    database = zlib.decompress(base64.b64decode(part["archive"]))
    if damage == "archive truncated":
        database = database[: len(database) // 2]
    else:
        database = database[:4096] + b"\xa5" * (len(database) - 4096)
    part["archive"] = base64.b64encode(zlib.compress(database)).decode()


@pytest.mark.parametrize("with_archive", [False, True])
@pytest.mark.parametrize(
    "damage",
    ["not an object", "short row", "unknown market", "bad side", "negative", "unknown order",
     "ids not increasing", "trade missing", "archived trade missing", "retired order missing",
     "archive not base64", "archive not compressed", "archive not a database",
     "archive truncated", "archive pages damaged", "archive with a trigger",
     "archived id without archive", "archived id negative"],
)  # fmt: skip
def test_a_malformed_history_dump_is_refused(
    tmp_path: Path, damage: str, with_archive: bool
) -> None:
    entries = entries_of(random_commands(4, 600), 10)
    _, snapshot, _ = asyncio.run(_archiving(tmp_path / "writer", entries, flush_every=25))
    document = snapshot_document(snapshot)
    part = document["parts"]["history"]
    rows = part["trades"]
    retired = list(restore_document(document["engine"]).retired_ids())
    assert len(rows) >= 2 and retired and part["archived_trade_id"]
    if damage == "not an object":
        document["parts"]["history"] = [part]
    elif damage == "short row":
        rows[0] = rows[0][:-1]
    elif damage == "unknown market":
        rows[0][2] = "DOGE/USD"
    elif damage == "bad side":
        rows[0][5] = 2
    elif damage == "negative":
        rows[0][3] = -1
    elif damage == "unknown order":
        rows[0][6] = 10**9
    elif damage == "ids not increasing":
        rows[1][1] = rows[0][1]
    elif damage == "trade missing":
        del rows[1]
    elif damage == "archived trade missing":
        _without_row(part, "trades", part["archived_trade_id"] // 2)
    elif damage == "retired order missing":
        _without_row(part, "orders", retired[len(retired) // 2])
    elif damage == "archive not base64":
        part["archive"] = "not base64!"
    elif damage == "archive not compressed":
        part["archive"] = base64.b64encode(b"SQLite format 3").decode()
    elif damage == "archive not a database":
        part["archive"] = base64.b64encode(zlib.compress(b"SQLite format 3" * 100)).decode()
    elif damage in ("archive truncated", "archive pages damaged"):
        _damaged_copy(part, damage)
    elif damage == "archive with a trigger":
        _changed_copy(part, "create trigger t after insert on orders begin delete from trades; end")
    elif damage == "archived id without archive":
        part["archive"] = None
    else:
        part["archived_trade_id"] = -1

    async def install() -> None:
        target, history = machine_with_history()
        archive = None
        if with_archive:
            audit = AuditTrail(tmp_path / "target.sqlite3", target.engine)
            archive = Archive(tmp_path / "target.sqlite3")
            history.attach(archive, audit.adopt)
        before = target.snapshot()
        with pytest.raises(SnapshotError):
            target.install(json.dumps(document).encode())
        assert target.snapshot() == before
        if with_archive:
            await audit.close()
            assert archive is not None
            assert archive.extent() == (0, 0)  # nothing copied

    asyncio.run(install())


def test_a_snapshot_from_before_the_history_part_still_installs() -> None:
    live, live_history = machine_with_history()
    for index, text in enumerate(entries_of(random_commands(3, 500), 10), start=1):
        live.apply(index, text)
    document = snapshot_document(live.snapshot())
    document["parts"] = {"trades": document["parts"]["history"]["trades"]}  # the old layout
    copy, copy_history = machine_with_history()
    copy.install(json.dumps(document).encode())
    assert reads(copy_history, copy) == reads(live_history, live)


async def _stopped_midway(path: Path, entries: list[str]) -> tuple[bytes, OrderStateMachine]:
    """A peer with an audit trail at ``path`` that snapshots halfway through ``entries``
    (also to the snapshot file ``raft.snapshot`` next to it, as its Raft log would), applies
    the rest (its audit trail writing on) and stops; its snapshot, and a machine that kept
    everything in memory."""
    keeper, _ = machine_with_history()
    writer, _, audit, archive = machine_with_audit_trail(path)
    store = SnapshotStore(path.with_name("raft.snapshot"), writer, pytest.fail)
    snapshot = b""
    for index, text in enumerate(entries, start=1):
        keeper.apply(index, text)
        writer.apply(index, text)
        if index % 7 == 0:
            await audit.flush()
        if index == len(entries) // 2:
            snapshot = writer.snapshot()
            store.serialize(str(store.path.with_suffix(".tmp")),
                            ((b"", index, 1), (b"", index - 1, 1), set()))  # fmt: skip
    async with asyncio.timeout(60):
        while not store.written:
            store.check()
            await asyncio.sleep(0.01)
    await audit.close()
    archive.close()
    return snapshot, keeper


@pytest.mark.parametrize(
    "archive_lacks", [None, "a trade", "a retired order", "the later retired orders"]
)
@pytest.mark.parametrize("from_file", [True, False])
def test_a_restart_takes_the_snapshot_history_only_where_its_audit_trail_lacks_it(
    tmp_path: Path, archive_lacks: str | None, from_file: bool
) -> None:
    path = tmp_path / "audit.sqlite3"
    entries = entries_of(random_commands(12, 3000), 10)
    snapshot, keeper = asyncio.run(_stopped_midway(path, entries))
    retired = list(restore_document(snapshot_document(snapshot)["engine"]).retired_ids())
    assert retired
    db = connect(path)
    if archive_lacks == "a trade":
        db.execute("delete from trades where id = 5")
    elif archive_lacks == "a retired order":
        db.execute("delete from orders where id = ?", (retired[-1],))
    elif archive_lacks == "the later retired orders":  # an older install's backlog cut short
        db.execute("delete from orders where id >= ?", (retired[len(retired) // 2],))
    db.close()

    async def restart() -> None:
        restarted, history = machine_with_history()
        audit = AuditTrail(path, restarted.engine)
        archive = Archive(path)
        history.attach(archive, audit.adopt)
        audit.on_written = history.archived
        commands = CommandLog(tmp_path / "commands.jsonl", restarted.engine,
                              archive.client_order_ids)  # fmt: skip
        restarted.listeners += [commands.on_applied, audit.on_applied]
        restarted.installed += [
            commands.on_installed,
            lambda source: audit.on_installed(history.every_trade()),
        ]
        adopted = []

        def adopt(copy: Archive) -> None:
            adopted.append(1)
            audit.adopt(copy)

        history.attach(archive, adopt)
        if from_file:  # as a peer restarts: the command log starts from that file, linked
            SnapshotStore(tmp_path / "raft.snapshot", restarted, pytest.fail).load(
                str(tmp_path / "raft.snapshot")
            )
            assert commands.start.samefile(tmp_path / "raft.snapshot")
            commands.on_installed(tmp_path / "raft.snapshot")  # the same file (change_role)
            assert commands.start.samefile(tmp_path / "raft.snapshot")
            assert not commands.start.with_suffix(".tmp").exists()  # no second name kept
        else:  # the command log starts from the engine's snapshot, written
            restarted.install(snapshot)
            assert commands.start.read_bytes().startswith(b"{")
        # The snapshot's copy of the audit trail replaces this one only where it lacks
        # something; the retired orders stay retired either way.
        assert adopted == ([] if archive_lacks is None else [1])
        assert list(restarted.engine.retired_ids()) == retired
        assert archive.lacking(history.archived_trade_id, retired) == []
        for index, text in enumerate(entries[len(entries) // 2 :], start=len(entries) // 2 + 1):
            restarted.apply(index, text)
            if index % 11 == 0:
                await audit.flush()
        keeper_history = keeper.parts["history"]
        assert isinstance(keeper_history, History)
        assert restarted.engine.digest() == keeper.engine.digest()
        assert reads(history, restarted) == reads(keeper_history, keeper)
        # The command log starts from a snapshot complete without the archive: replayed
        # offline, the commands after it (repeated client order ids of retired orders among
        # them) give the same state, and from the snapshot file every order ever accepted
        # is printed, those retired before it included (a soak found them missing: session
        # 10).
        commands.close()
        engine = restarted.engine
        lines = replay_lines(commands.path)
        assert lines[-1] == {"applied": engine.sequence, "digest": engine.digest()}
        if from_file:
            printed = [line["order"]["id"] for line in lines if "order" in line]
            assert printed == [str(order.order_id) for order in keeper.engine.orders()]
        await audit.close()
        archive.close()

    asyncio.run(restart())


@pytest.mark.parametrize("damage", ["order missing", "trade missing"])
def test_a_restart_refuses_a_snapshot_whose_copy_lacks_what_its_audit_trail_lacks(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "audit.sqlite3"
    snapshot, _ = asyncio.run(_stopped_midway(path, entries_of(random_commands(12, 2000), 10)))
    document = snapshot_document(snapshot)
    retired = list(restore_document(document["engine"]).retired_ids())
    part = document["parts"]["history"]
    db = connect(path)
    db.execute("delete from orders where id = ?", (retired[-1],))
    db.close()
    if damage == "order missing":
        _without_row(part, "orders", retired[-1])
    else:
        _without_row(part, "trades", 1)

    async def restart() -> None:
        restarted, history = machine_with_history()
        audit = AuditTrail(path, restarted.engine)
        archive = Archive(path)
        history.attach(archive, audit.adopt)
        before = restarted.snapshot()
        with pytest.raises(SnapshotError):
            restarted.install(json.dumps(document).encode())
        assert restarted.snapshot() == before
        await audit.close()
        archive.close()

    asyncio.run(restart())


def test_an_order_closed_by_a_trade_not_yet_on_disk_is_not_retired_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit trail builds an order's row from the order as it is when written: a trade
    applied while a write is under way closes the order in that row, but goes to disk with
    the next write. Until then the order must stay in memory, or a snapshot taken meanwhile
    holds it retired while that trade is only in memory (which an installing peer refuses:
    a smoke run in CI stopped a peer on it)."""

    def place(owner: str, side: str) -> str:
        args = ["BTC/USD", "limit", side, "1", "30000"]
        command = {"op": "createOrder", "owner": owner, "timestamp": 1_764_000_000_000,
                   "args": args}  # fmt: skip
        return encode_entry(owner, [command])

    async def scenario() -> None:
        machine, history, audit, archive = machine_with_audit_trail(tmp_path / "audit.sqlite3")
        machine.apply(1, place("p1", "sell"))
        machine.apply(2, place("p1", "sell"))  # two makers of 1 at 30000
        machine.apply(3, place("p2", "buy"))  # trade 1: fills the first maker (order 1)
        real = audit._closed_on_disk

        async def trade_meanwhile(orders: list[Any]) -> set[int]:
            if machine.applied_index == 3:
                machine.apply(4, place("p3", "buy"))  # trade 2 fills order 2, queued after
            return await real(orders)

        monkeypatch.setattr(audit, "_closed_on_disk", trade_meanwhile)
        await audit.flush()  # rows of orders 1-3, order 2's built after trade 2; trade 1
        assert history.archived_trade_id == 1
        assert machine.engine.retired(1) is not None  # closed by trade 1, on disk
        assert machine.engine.retired(2) is None  # trade 2 is not on disk yet
        peer, peer_history = machine_with_history()  # a peer this snapshot is sent to
        peer_audit = AuditTrail(tmp_path / "peer.sqlite3", peer.engine)
        peer_history.attach(Archive(tmp_path / "peer.sqlite3"), peer_audit.adopt)
        peer.install(machine.snapshot())
        await peer_audit.close()
        await audit.flush()  # trade 2, and order 2 again
        assert machine.engine.retired(2) is not None
        await audit.close()
        archive.close()

    asyncio.run(scenario())


def test_a_machine_sent_back_to_an_older_snapshot_drops_the_trades_it_had_queued(
    tmp_path: Path,
) -> None:
    """A member past a snapshot it is sent goes back to it (`SnapshotStore.load`); its own
    audit trail lacks nothing, so nothing is adopted. The trades it had queued past the
    snapshot belong to the state the install replaced: written afterwards, they told the
    history more trades were archived than the engine holds, and every snapshot taken before
    the log caught up again was refused by the peers it was sent to."""
    entries = entries_of(random_commands(12, 3000), 10)
    half = len(entries) // 2

    async def scenario() -> None:
        machine, history, audit, archive = machine_with_audit_trail(tmp_path / "a.sqlite3")
        for index, text in enumerate(entries[:half], start=1):
            machine.apply(index, text)
        await audit.flush()
        older, trades = machine.snapshot(), machine.engine.trade_count
        for index, text in enumerate(entries[half : half + 30], start=half + 1):
            machine.apply(index, text)  # past the snapshot; these trades stay queued
        assert machine.engine.trade_count > trades
        machine.install(older)
        await audit.flush()
        assert history.archived_trade_id <= machine.engine.trade_count == trades
        joiner, joiner_history, joiner_audit, joiner_archive = machine_with_audit_trail(
            tmp_path / "j.sqlite3"
        )
        joiner.install(machine.snapshot())  # refused: the history held more trades
        for index, text in enumerate(entries[half:], start=half + 1):
            machine.apply(index, text)
            joiner.apply(index, text)
        await audit.flush()
        await joiner_audit.flush()
        assert joiner.engine.digest() == machine.engine.digest()
        assert reads(joiner_history, joiner) == reads(history, machine)
        await audit.close()
        await joiner_audit.close()
        archive.close()
        joiner_archive.close()

    asyncio.run(scenario())


def test_a_copy_with_pages_of_another_size_is_refused_before_anything_changes(
    tmp_path: Path,
) -> None:
    """SQLite's backup cannot copy a database into one of another page size in write-ahead-
    log mode; found only as the copy was adopted, the engine was already replaced. A peer
    without an audit trail takes the records from such a copy as from any other."""
    entries = entries_of(random_commands(4, 600), 10)
    _, snapshot, keeper = asyncio.run(_archiving(tmp_path / "writer", entries))
    document = snapshot_document(snapshot)
    _changed_copy(document["parts"]["history"], "pragma page_size=8192", then="vacuum")
    data = json.dumps(document).encode()

    async def install() -> None:
        target, _, audit, archive = machine_with_audit_trail(tmp_path / "target.sqlite3")
        before = target.snapshot()
        with pytest.raises(SnapshotError, match="pages of 8192 bytes"):
            target.install(data)
        assert target.snapshot() == before
        await audit.close()
        archive.close()

    asyncio.run(install())
    reinstating, _ = machine_with_history()
    reinstating.install(data)
    assert reinstating.engine.digest() == keeper.engine.digest()


@pytest.mark.parametrize("table", ["orders", "trades"])
def test_a_copy_with_a_damaged_record_is_refused_where_its_records_are_read(
    tmp_path: Path, table: str
) -> None:
    """A peer without an audit trail (`peerbook replay --snapshot`) takes every record from
    the copy: one that is not an array is a damaged snapshot, said so."""
    entries = entries_of(random_commands(4, 600), 10)
    _, snapshot, _ = asyncio.run(_archiving(tmp_path / "writer", entries))
    document = snapshot_document(snapshot)
    _changed_copy(
        document["parts"]["history"],
        f"update {table} set record = ? where id = (select min(id) from {table})",
        "{not json",
    )
    target, _ = machine_with_history()
    before = target.snapshot()
    with pytest.raises(SnapshotError, match="not an array"):
        target.install(json.dumps(document).encode())
    assert target.snapshot() == before
