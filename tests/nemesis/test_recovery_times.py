"""The harness's recovery figures, on a made-up history: the goals of the fault runs
("writes resume within 2 s of a leader kill") are read from these numbers, so they must
measure what their names say."""

import json
from pathlib import Path
from typing import Any

from tests.nemesis.run import _recovery


def write(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def create(cid: str, kind: str, t: float) -> dict[str, Any]:
    return {"peer": "p1", "op": "create", "cid": cid, "type": kind, "t": t}


def kill(started: float, healed: float) -> list[dict[str, Any]]:
    return [
        {"fault": "kill-leader", "peer": "p2", "phase": "start", "t": started},
        {"fault": "kill-leader", "peer": "p2", "phase": "healed", "t": healed},
    ]


def test_writes_resume_only_with_an_order_first_tried_after_the_fault(tmp_path: Path) -> None:
    history = write(tmp_path / "h.jsonl", [
        create("old", "invoke", 9.0),
        create("old", "info", 10.4),
        create("old", "invoke", 10.5),
        create("old", "ok", 10.6),  # its entry may have been committed before the kill
        create("new", "invoke", 10.2),
        create("new", "ok", 11.3),
        create("later", "invoke", 14.0),
        create("later", "ok", 14.1),
        create("last", "invoke", 15.9),
        create("last", "ok", 16.0),
    ])  # fmt: skip
    [fault] = _recovery(history, kill(10.0, 13.0))
    assert fault["resumed_s"] == 1.3
    assert fault["acks_during"] == 2
    assert fault["longest_stall_s"] == 2.8  # 11.3 to 14.1, over the restart
    assert fault["next_ack_after_heal_s"] == 1.1


def test_writes_that_never_resume_are_reported_as_such(tmp_path: Path) -> None:
    history = write(tmp_path / "h.jsonl", [
        create("old", "invoke", 9.0),
        create("old", "ok", 10.1),
        create("new", "invoke", 10.2),
        create("new", "fail", 11.0),
    ])  # fmt: skip
    [fault] = _recovery(history, kill(10.0, 13.0))
    assert fault["resumed_s"] is None
    assert fault["longest_stall_s"] == 7.9
    assert fault["next_ack_after_heal_s"] is None
