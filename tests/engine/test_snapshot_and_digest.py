"""Determinism of the digest and the snapshot/restore round trip."""

import json
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerbook.engine import Engine
from peerbook.engine.snapshot import restore, snapshot
from peerbook.errors import SnapshotError
from tests.engine.streams import random_stream

_DIGEST_IN_CHILD = """
import sys
from peerbook.engine import Engine
from tests.engine.streams import random_stream
engine = Engine()
for command in random_stream(int(sys.argv[1]), int(sys.argv[2])):
    engine.apply(command)
print(engine.sequence, engine.digest())
"""


def run(seed: int, length: int) -> Engine:
    engine = Engine()
    for command in random_stream(seed, length):
        engine.apply(command)
    return engine


def test_same_stream_gives_same_digest_in_separate_processes() -> None:
    outputs = set()
    for hash_seed in ("1", "2"):  # a different str hash seed must not matter
        result = subprocess.run(
            [sys.executable, "-c", _DIGEST_IN_CHILD, "7", "3000"],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PYTHONPATH": "."},
        )
        outputs.add(result.stdout.strip())
    engine = run(7, 3000)
    assert outputs == {f"{engine.sequence} {engine.digest()}"}


def test_different_streams_give_different_digests() -> None:
    digests = {run(seed, 300).digest() for seed in range(20)}
    assert len(digests) == 20


def test_digest_changes_with_every_command() -> None:
    engine = Engine()
    seen = {engine.digest()}
    for command in random_stream(3, 600):
        engine.apply(command)
        seen.add(engine.digest())
    assert len(seen) == 601


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(0, 1200), cut=st.floats(0, 1))
def test_restore_then_replay_rest_gives_same_state_and_digest(
    seed: int, length: int, cut: float
) -> None:
    commands = random_stream(seed, length)
    split = int(len(commands) * cut)
    whole = Engine()
    for command in commands:
        whole.apply(command)
    first = Engine()
    for command in commands[:split]:
        first.apply(command)
    restored = restore(snapshot(first))
    assert restored.digest() == first.digest()
    tail = [restored.apply(c) for c in commands[split:]]
    replayed = [first.apply(c) for c in commands[split:]]
    assert tail == replayed
    assert restored.digest() == whole.digest()
    assert snapshot(restored) == snapshot(whole)
    restored.check_invariants()


def test_snapshot_is_canonical_json() -> None:
    engine = run(11, 500)
    data = snapshot(engine)
    document = json.loads(data)
    assert document["format"] == "peerbook-engine-snapshot" and document["version"] == 3
    assert json.dumps(document, sort_keys=True, separators=(",", ":")).encode() == data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x03pickle",
        b"[]",
        b'{"format": "peerbook-engine-snapshot", "version": 2}',
        b'{"format": "peerbook-engine-snapshot", "version": 1}',
    ],
)
def test_restore_refuses_bytes_that_are_not_a_snapshot(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        restore(data)


def test_restore_refuses_tampered_state() -> None:
    document = json.loads(snapshot(run(5, 400)))
    rng = random.Random(0)
    resting = [o for o in document["orders"] if o[14] in (0, 1)]
    assert resting
    victim = rng.choice(resting)
    victim[10] = victim[9] + 1  # remaining above amount
    with pytest.raises(SnapshotError):
        restore(json.dumps(document).encode())


@pytest.mark.parametrize("fault", ["id above sequence", "duplicate id", "short chain"])
def test_restore_refuses_impossible_states(fault: str) -> None:
    document = json.loads(snapshot(run(9, 200)))
    if fault == "id above sequence":
        document["orders"][-1][0] = document["sequence"] + 1
    elif fault == "duplicate id":
        document["orders"][1][0] = document["orders"][0][0]
    else:
        document["digest"]["chain"] = "00"
    with pytest.raises(SnapshotError):
        restore(json.dumps(document).encode())


def test_restore_refuses_deeply_nested_json() -> None:
    with pytest.raises(SnapshotError):
        restore(b"[" * 100_000)


@pytest.mark.parametrize(
    ("field", "value"),
    [(0, -1), (0, "1"), (1, 7), (2, 3), (3, None), (4, 2), (5, -1), (6, 3), (7, 1),
     (8, 1.5), (9, -2), (10, "x"), (11, None), (12, True), (13, "t"), (14, 5)],
)  # fmt: skip
def test_restore_refuses_an_order_record_with_a_bad_field(field: int, value: object) -> None:
    document = json.loads(snapshot(run(3, 50)))
    document["orders"][0][field] = value
    with pytest.raises(SnapshotError):
        restore(json.dumps(document).encode())
