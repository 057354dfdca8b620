"""Negative controls of the fault checker: doctored peer answers that break one invariant
each must fail the check, and the honest answer must pass. A checker that cannot fail proves
nothing."""

import copy
from typing import Any

from tests.nemesis.checker import Observed, check

DIGEST = "ab" * 32


def order(order_id: str, peer: str, cid: str) -> dict[str, Any]:
    return {"id": order_id, "clientOrderId": cid, "info": {"peer": peer}}


def history() -> list[dict[str, Any]]:
    return [
        {"peer": "p1", "op": "create", "cid": "a", "type": "invoke"},
        {"peer": "p1", "op": "create", "cid": "a", "type": "ok", "id": "1"},
        {"peer": "p2", "op": "create", "cid": "b", "type": "invoke"},
        {"peer": "p2", "op": "create", "cid": "b", "type": "info"},
        {"peer": "p2", "op": "create", "cid": "b", "type": "invoke"},
        {"peer": "p2", "op": "create", "cid": "b", "type": "ok", "id": "2"},
        {"peer": "p2", "op": "create", "cid": "c", "type": "invoke"},
        {"peer": "p2", "op": "create", "cid": "c", "type": "info"},
    ]


def honest() -> Observed:
    one, two = order("1", "p1", "a"), order("2", "p2", "b")
    lookup = {"1": one, "2": two}
    status = {"applied": 2, "digest": DIGEST}
    return {
        "statuses": [status, dict(status)],
        "orders": {"p1": [one], "p2": [two]},
        "lookup": {"p1": dict(lookup), "p2": dict(lookup)},
        "by_cid": {"p2": {"c": None}},
        "books": {"p1": {"bids": [["99", "1", 1]], "asks": [["100", "1", 1]]}},
        "replayed": {"applied": 2, "digest": DIGEST, "orders": dict(lookup)},
    }


def test_the_honest_answer_passes() -> None:
    summary = check(history(), honest())
    assert summary["ok"] and summary["acknowledged"] == 2 and summary["invoked"] == 3
    assert summary["unknown_resolved_absent"] == 1


def test_an_acknowledged_order_missing_on_one_peer_fails() -> None:
    observed = honest()
    observed["lookup"]["p2"]["1"] = None  # an in-memory journal, all killed: gone on p2
    summary = check(history(), observed)
    assert not summary["ok"] and summary["lost"] == 1


def test_a_client_order_id_with_two_orders_fails() -> None:
    observed = honest()
    observed["orders"]["p2"].append(order("3", "p2", "b"))  # no dedup under retries
    summary = check(history(), observed)
    assert not summary["ok"] and summary["duplicated"] == 1


def test_an_order_nobody_sent_fails() -> None:
    observed = honest()
    observed["orders"]["p1"].append(order("4", "p1", "ghost"))
    assert check(history(), observed)["phantoms"] == 1


def test_diverging_replicas_fail() -> None:
    observed = honest()
    observed["statuses"][1] = {"applied": 2, "digest": "cd" * 32}  # a non-deterministic apply
    assert not check(history(), observed)["converged"]


def test_replicas_agreeing_with_each_other_but_not_with_the_log_fail() -> None:
    observed = copy.deepcopy(honest())
    observed["replayed"] = {"applied": 1, "digest": "ef" * 32}
    assert not check(history(), observed)["ok"]


def test_a_crossed_book_fails() -> None:
    observed = honest()
    observed["books"]["p1"] = {"bids": [["101", "1", 1]], "asks": [["100", "1", 1]]}
    assert not check(history(), observed)["ok"]


def test_an_acknowledged_order_missing_from_the_log_fails() -> None:
    observed = honest()
    del observed["replayed"]["orders"]["2"]
    summary = check(history(), observed)
    assert not summary["ok"] and summary["examples"]["lost"][0]["missing_at"] == "log"


def test_orders_left_out_of_a_peers_sample_are_not_lost() -> None:
    observed = honest()
    del observed["lookup"]["p2"]["1"]  # a long run asks each peer for a sample only
    summary = check(history(), observed)
    assert summary["ok"] and summary["looked_up_per_peer"] == 2
