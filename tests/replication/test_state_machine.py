"""Entries, the state machine and the batcher, with an in-memory log standing in for Raft."""

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerbook.engine import Engine, OrderAccepted, TradeExecuted
from peerbook.errors import SnapshotError, UnknownOutcomeError
from peerbook.replay import replay
from peerbook.replication import Batcher, OrderStateMachine, Outcome, decode_entry, encode_entry
from peerbook.replication.state_machine import snapshot_document


def random_commands(seed: int, count: int) -> list[dict[str, Any]]:
    """Section 7 commands: crossing limit and market orders, cancels, some bad ones."""
    rng = random.Random(seed)
    commands: list[dict[str, Any]] = []
    for index in range(count):
        owner = rng.choice(["p1", "p2", "p3"])
        roll = rng.random()
        if roll < 0.2 and index:
            args: list[Any] = [str(rng.randint(1, index))]
            op = "cancelOrder"
        else:
            op = "createOrder"
            price = f"{rng.randint(29_990, 30_010)}.{rng.randint(0, 9)}"
            amount = f"0.{rng.randint(0, 20):04d}"
            kind = "market" if roll > 0.95 else "limit"
            args = [
                "BTC/USD",
                kind,
                rng.choice(["buy", "sell"]),
                amount,
                None if kind == "market" else price,
            ]
            if rng.random() < 0.3:
                args.append({"clientOrderId": f"c{rng.randint(0, count // 2)}"})
        commands.append(
            {"op": op, "owner": owner, "timestamp": 1_764_000_000_000 + index, "args": args}
        )
    return commands


def entries_of(commands: list[dict[str, Any]], size: int) -> list[str]:
    return [encode_entry("p1", commands[i : i + size]) for i in range(0, len(commands), size)]


def replay_digest(commands: list[dict[str, Any]]) -> tuple[int, str]:
    lines: list[str] = []
    replay((json.dumps(c) for c in commands), Engine().markets.values(), lines.append)
    last = json.loads(lines[-1])
    return last["applied"], last["digest"]


def test_entry_round_trip_is_canonical() -> None:
    commands = random_commands(1, 5)
    text = encode_entry("p2", commands)
    entry = decode_entry(text)
    assert entry is not None and entry.proposer == "p2" and list(entry.commands) == commands
    assert encode_entry("p2", list(entry.commands)) == text


@given(st.text(max_size=200) | st.from_regex(r'\{"v":1,.*\}', fullmatch=True))
def test_decoding_any_text_never_raises(text: str) -> None:
    decode_entry(text)


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"v":2,"proposer":"p","commands":[]}', '{"v":1,"proposer":5,"commands":[]}',
     '{"v":1,"proposer":"p","commands":[1]}', '{"v":1,"proposer":"p","commands":[],"x":1}'],
)  # fmt: skip
def test_invalid_entries_are_rejected_and_change_nothing(text: str) -> None:
    machine = OrderStateMachine(Engine())
    digest = machine.engine.digest()
    assert machine.apply(1, text) == []
    assert (machine.rejected_entries, machine.applied_index, machine.engine.digest()) == (
        1,
        1,
        digest,
    )


def test_applying_entries_equals_replaying_their_commands() -> None:
    commands = random_commands(7, 2000)
    machine = OrderStateMachine(Engine())
    for index, text in enumerate(entries_of(commands, 37), start=1):
        machine.apply(index, text)
    assert (machine.engine.sequence, machine.engine.digest()) == replay_digest(commands)


def test_entries_are_applied_exactly_once() -> None:
    texts = entries_of(random_commands(3, 300), 10)
    once, twice = OrderStateMachine(Engine()), OrderStateMachine(Engine())
    for index, text in enumerate(texts, start=1):
        once.apply(index, text)
        twice.apply(index, text)
        assert twice.apply(index, text) == []  # a replayed entry
        assert twice.apply(max(1, index - 3), texts[max(0, index - 4)]) == []
    assert twice.engine.digest() == once.engine.digest()


def test_a_bad_command_is_refused_alone_without_a_sequence() -> None:
    good = [
        {"op": "createOrder", "owner": "p1", "timestamp": 1, "args": order_args(index)}
        for index in range(2)
    ]
    bad = {
        "op": "createOrder",
        "owner": "p1",
        "timestamp": 1,
        "args": ["BTC/USD", "limit", "buy", "1", "30000.05"],
    }
    machine = OrderStateMachine(Engine())
    outcomes = machine.apply(1, encode_entry("p1", [good[0], bad, good[1]]))
    assert [o.error for o in outcomes] == [
        None,
        "InvalidOrder: price 30000.05 is not a multiple of tick 0.1",
        None,
    ]
    assert machine.engine.sequence == 2


def test_snapshot_then_rest_of_log_gives_same_state() -> None:
    texts = entries_of(random_commands(11, 1500), 25)
    whole = OrderStateMachine(Engine())
    for index, text in enumerate(texts, start=1):
        whole.apply(index, text)
    first = OrderStateMachine(Engine())
    for index, text in enumerate(texts[:30], start=1):
        first.apply(index, text)
    restored = OrderStateMachine(Engine())
    engine, installs = restored.engine, []
    restored.installed.append(lambda source: installs.append(restored.applied_index))
    restored.install(first.snapshot())
    assert restored.engine is engine, "installed in place: holders of the engine keep it"
    assert installs == [30]
    for index, text in enumerate(texts, start=1):
        restored.apply(index, text)  # entries up to 30 are skipped
    assert restored.snapshot() == whole.snapshot()
    head, body = whole.snapshot().split(b"\n", 1)
    pieces, start = [head], 0
    for _, size in json.loads(head)["sections"]:
        pieces.append(body[start : start + size])
        start += size
    for piece in pieces:  # each is canonical JSON
        assert (
            json.dumps(json.loads(piece), sort_keys=True, separators=(",", ":")).encode() == piece
        )


class Tally:
    """A snapshot part for the tests: counts applied entries."""

    legacy_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.count = 0

    def dump(self) -> int:
        return self.count

    def parse(self, read: Callable[[], Any], engine: Engine) -> int:
        document = read()
        if type(document) is not int:
            raise SnapshotError("not a count")
        return document

    def load(self, parsed: int) -> None:
        self.count = parsed


def test_an_invalid_snapshot_is_refused_and_changes_nothing() -> None:
    texts = entries_of(random_commands(5, 300), 10)
    source, target = OrderStateMachine(Engine()), OrderStateMachine(Engine())
    source.parts["tally"], target.parts["tally"] = Tally(), Tally()
    for index, text in enumerate(texts, start=1):
        source.apply(index, text)
    target.apply(1, texts[0])
    before = target.snapshot()
    good = snapshot_document(source.snapshot())
    head, body = source.snapshot().split(b"\n", 1)
    header = json.loads(head)

    def framed(**changes: Any) -> bytes:
        return json.dumps({**header, **changes}).encode() + b"\n" + body

    broken = [
        b"not json",
        b'{"format": "something else"}',
        framed(version=3),
        framed(sections=[["engine", len(body)]]),  # the part's bytes read as the engine's
        framed(sections=[*header["sections"][:-1], ["tally", header["sections"][-1][1] + 1]]),
        framed(sections=[header["sections"][1], header["sections"][0]]),  # engine not first
        framed(sections=[["engine", 2], ["tally", len(body) - 2]]),  # neither is JSON
        framed(sections=[*header["sections"], ["tally", 0]]),  # a section twice
        head + b"\n" + body.replace(b"}", b"]", 1),  # the engine's bytes are not JSON
        json.dumps({**good, "version": 2}).encode(),  # a version but no sections
        json.dumps({**good, "applied_index": -1}).encode(),
        json.dumps({**good, "parts": {}}).encode(),  # lacks a registered part
        json.dumps({**good, "parts": {"tally": "seven"}}).encode(),
        json.dumps({**good, "engine": {**good["engine"], "sequence": "x"}}).encode(),
    ]
    for data in broken:
        with pytest.raises(SnapshotError):
            target.install(data)
        assert target.snapshot() == before
    target.install(source.snapshot())
    assert target.snapshot() == source.snapshot()


class MemoryLog:
    """An ordered log on one machine: appends entries and applies them to a state machine,
    standing in for the Raft adapter (which also commits them on a majority of peers)."""

    def __init__(self, machine: OrderStateMachine) -> None:
        self.machine = machine
        self.entries: list[str] = []

    async def propose(self, text: str) -> list[Outcome]:
        await asyncio.sleep(0)
        self.entries.append(text)
        return self.machine.apply(len(self.entries), text)


def order_args(index: int) -> list[Any]:
    side = "buy" if index % 2 else "sell"
    return ["BTC/USD", "limit", side, "0.001", "30000", {"clientOrderId": f"o{index}"}]


def test_batcher_groups_concurrent_commands_and_answers_each_caller() -> None:
    async def scenario() -> None:
        log = MemoryLog(OrderStateMachine(Engine()))
        clock = iter(range(1000, 2000, 7))
        batcher = Batcher(
            "p1", log.propose, linger_s=0.01, batch_max=64, clock_ms=lambda: next(clock)
        )
        outcomes = await asyncio.gather(
            *(batcher.submit("createOrder", "p1", order_args(i)) for i in range(200))
        )
        await batcher.close()
        assert len(log.entries) == 4  # 64 + 64 + 64 + 8
        for index, outcome in enumerate(outcomes):
            accepted = outcome.events[0]
            assert isinstance(accepted, OrderAccepted) and accepted.client_order_id == f"o{index}"
        assert sum(isinstance(e, TradeExecuted) for o in outcomes for e in o.events) == 100
        stamps = [c["timestamp"] for text in log.entries for c in json.loads(text)["commands"]]
        assert stamps == sorted(stamps)

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_batcher_proposes_a_lone_command_after_linger() -> None:
    async def scenario() -> None:
        log = MemoryLog(OrderStateMachine(Engine()))
        batcher = Batcher("p1", log.propose, linger_s=0.002)
        outcome = await asyncio.wait_for(batcher.submit("createOrder", "p1", order_args(1)), 1)
        assert outcome.error is None and len(log.entries) == 1
        await batcher.close()

    asyncio.run(scenario())


def test_proposal_failure_reaches_every_caller_of_the_batch() -> None:
    async def failing(text: str) -> list[Outcome]:
        raise TimeoutError("no quorum")

    async def scenario() -> None:
        batcher = Batcher("p1", failing, linger_s=0.001)
        results = await asyncio.gather(
            *(batcher.submit("createOrder", "p1", order_args(i)) for i in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(r, TimeoutError) for r in results)
        await batcher.close()

    asyncio.run(scenario())


def test_an_entry_applied_without_its_outcomes_leaves_its_callers_outcome_unknown() -> None:
    """The index applied as something else (another term's entry there, or an install
    passed over it): the callers cannot know whether their commands were applied, which is
    what `UnknownOutcomeError` tells a client (query by clientOrderId), not an internal
    error."""

    async def applied_as_another(text: str) -> list[Outcome]:
        return []

    async def scenario() -> None:
        batcher = Batcher("p1", applied_as_another, linger_s=0.001)
        with pytest.raises(UnknownOutcomeError, match="applied with 0 outcomes"):
            await batcher.submit("createOrder", "p1", order_args(1))
        await batcher.close()

    asyncio.run(scenario())


hostile_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.text("0123456789.", max_size=60),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=15,
)


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(["createOrder", "cancelOrder", "x"]),
                "owner": st.text(max_size=4),
                "timestamp": st.integers(),
                "args": st.lists(hostile_values, max_size=7),
            }
        )
        | st.dictionaries(st.text(max_size=5), hostile_values, max_size=4),
        max_size=5,
    )
)
def test_applying_any_entry_never_raises(commands: list[dict[str, Any]]) -> None:
    machine = OrderStateMachine(Engine())
    outcomes = machine.apply(1, encode_entry("p1", commands))
    assert len(outcomes) == len(commands)
    assert machine.apply(2, "[" * 100_000) == [] and machine.rejected_entries == 1
    machine.engine.check_invariants()


def test_batcher_keeps_entries_under_the_byte_budget_and_refuses_huge_commands() -> None:
    async def scenario() -> None:
        log = MemoryLog(OrderStateMachine(Engine()))
        batcher = Batcher("p1", log.propose, linger_s=0.01, batch_bytes_max=2000)
        padded = ["BTC/USD", "limit", "buy", "0.0001", "30000", {"clientOrderId": "x" * 60}]
        await asyncio.gather(*(batcher.submit("createOrder", f"p{i}", padded) for i in range(40)))
        assert all(len(text) <= 2000 + 100 for text in log.entries) and len(log.entries) > 1
        with pytest.raises(ValueError, match="exceeds"):
            await batcher.submit("createOrder", "p1", ["x" * 70_000])
        await batcher.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))
