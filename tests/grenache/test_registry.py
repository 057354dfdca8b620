"""The embedded grape's answers and expiry, without sockets (research note section 3)."""

import json
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peerbook.grenache.registry import GrapeState
from peerbook.grenache.signing import public_key_hex, sign_item, signable, target_of

IP = "127.0.0.1"


def call(state: GrapeState, verb: str, data: object, now_ms: int = 0) -> tuple[int, object]:
    status, body = state.handle(verb, data, IP, now_ms)
    return status, (json.loads(body) if body else None)


@pytest.mark.parametrize(
    ("verb", "data", "answer"),
    [
        ("announce", "svc", "ERR_GRAPE_ANNOUNCE"),
        ("announce", ["svc"], "ERR_GRAPE_SERVICE_PORT"),
        ("get", 5, "ERR_GRAPE_GENERIC"),
        ("put", {"v": "é" * 501}, "All queries failed"),
        ("announce", ["svc", "5001"], "ERR_GRAPE_SERVICE_PORT"),
        ("announce", ["svc", 5001.5], "ERR_GRAPE_SERVICE_PORT"),
        ("announce", ["svc", 70000], "All queries failed"),
        ("lookup", ["svc"], "ERR_GRAPE_LOOKUP"),
        ("lookup", "", "ERR_GRAPE_LOOKUP"),
        ("put", {"v": "x" * 1000}, "v must be less than 1000 bytes in put()"),
        ("put", {"v": "x", "k": "ab" * 32, "seq": 1, "sig": "00" * 64}, "All queries failed"),
        ("put", {"v": "x", "k": "zz", "seq": 1, "sig": "00"}, "All queries failed"),
        ("unknown", None, "ERR_REQ_NOTFOUND"),
    ],
)
def test_errors_are_json_strings_with_status_200(verb: str, data: object, answer: str) -> None:
    assert call(GrapeState(), verb, data) == (200, answer)


def test_announce_then_lookup_returns_source_ip_and_port() -> None:
    state = GrapeState()
    assert call(state, "announce", ["svc", 5001]) == (200, 1)
    assert call(state, "announce", ["svc", 5001]) == (200, 1)  # idempotent
    assert call(state, "lookup", "svc") == (200, ["127.0.0.1:5001"])
    assert call(state, "lookup", "other") == (200, [])


def test_lookup_returns_at_most_100_in_random_order() -> None:
    state = GrapeState(rng=random.Random(1))
    for port in range(1000, 1150):
        call(state, "announce", ["svc", port])
    _, first = call(state, "lookup", "svc")
    _, second = call(state, "lookup", "svc")
    assert isinstance(first, list) and isinstance(second, list)
    assert len(first) == 100 and first != second


@pytest.mark.parametrize(
    ("announced_at", "visible_until"),
    [(0, 159_999), (79_999, 159_999), (80_000, 239_999)],
)
def test_records_live_80_to_160_s_after_last_announce(
    announced_at: int, visible_until: int
) -> None:
    state = GrapeState(max_age_ms=120_000)
    call(state, "lookup", "svc", 0)  # the grape's clock starts here
    call(state, "announce", ["svc", 5001], announced_at)
    assert call(state, "lookup", "svc", visible_until)[1] == ["127.0.0.1:5001"]
    assert call(state, "lookup", "svc", visible_until + 1)[1] == []
    assert 80_000 <= visible_until + 1 - announced_at <= 160_000


def test_put_then_get_immutable_value() -> None:
    state = GrapeState()
    _, target = call(state, "put", {"v": "hello world"})
    assert target == "6d33adc2b6b2c14c3036feefb7fedbca1a880527"
    _, item = call(state, "get", target)
    assert isinstance(item, dict) and item["v"] == "hello world" and item["token"] is None
    assert call(state, "get", "00" * 20) == (200, None)
    assert call(state, "get", {"hash": target}) == (200, item)


def signed_put(
    key: Ed25519PrivateKey, value: str, seq: int, salt: str | None = None
) -> dict[str, object]:
    item = sign_item(key, value, seq, salt)
    data: dict[str, object] = {"v": value, "seq": seq, "k": item.public_key, "sig": item.signature}
    if salt is not None:
        data["salt"] = salt
    return data


def test_signable_bytes_match_bep44_fragment() -> None:
    # The fragment captured in the research note, section 3.4.
    assert signable("mutable hello", 1, "mysalt") == b"4:salt6:mysalt3:seqi1e1:v13:mutable hello"


def test_mutable_put_then_get_with_salt() -> None:
    state, key = GrapeState(), Ed25519PrivateKey.generate()
    status, target = call(state, "put", signed_put(key, "v1", 1, "s"))
    assert status == 200 and target == target_of(public_key_hex(key), "s")
    _, item = call(state, "get", {"hash": target, "salt": "s"})
    assert isinstance(item, dict)
    assert (item["v"], item["seq"], item["salt"], item["k"]) == ("v1", 1, "s", public_key_hex(key))


def test_mutable_put_refuses_stale_seq_bad_cas_and_bad_signature() -> None:
    state, key = GrapeState(), Ed25519PrivateKey.generate()
    call(state, "put", signed_put(key, "v2", 2))
    assert call(state, "put", signed_put(key, "again", 2)) == (
        302,
        "302 sequence number less than current",
    )
    assert call(state, "put", {**signed_put(key, "v3", 3), "cas": 1}) == (301, "301 CAS mismatch")
    forged = {**signed_put(key, "v4", 4), "v": "tampered"}
    assert call(state, "put", forged) == (200, "All queries failed")
    assert call(state, "put", {**signed_put(key, "v3", 3), "cas": 2})[0] == 200


def test_announced_records_are_capped_oldest_first() -> None:
    state = GrapeState()
    for port in range(1, 10_051):
        call(state, "announce", [f"svc-{port}", port])
    assert call(state, "lookup", "svc-1") == (200, [])
    assert call(state, "lookup", "svc-10050") == (200, ["127.0.0.1:10050"])
