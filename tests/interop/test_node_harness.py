"""The Node.js interop harness works against the real npm packages alone (no Python
Grenache code involved): two Node grapes, Node Link operations, Node HTTP and WS RPC,
Node pub/sub."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.interop.node_harness import (
    NodeHarnessError,
    run_node_script,
    start_node_script,
    unique,
)

pytestmark = pytest.mark.interop


def test_link_announce_lookup_put_get_across_two_grapes(grapes: list[str]) -> None:
    name = unique("harness-link")
    first = run_node_script(
        "link_client.js",
        "--grape",
        grapes[0],
        json.dumps([["announce", name, 5001], ["put", {"v": "hello world"}]]),
    )
    assert [line["op"] for line in first] == ["announce", "put"]
    assert first[0]["result"] == 1  # one other DHT node stored it
    expected_hash = hashlib.sha1(b"11:hello world").hexdigest()
    assert first[1]["result"] == expected_hash

    second = run_node_script(
        "link_client.js",
        "--grape",
        grapes[1],
        json.dumps([{"op": "lookup", "name": name, "wait_ms": 3000}, ["get", expected_hash]]),
    )
    assert second[0]["result"] == ["127.0.0.1:5001"]
    assert second[1]["result"]["v"] == "hello world"

    with pytest.raises(NodeHarnessError) as failed:
        run_node_script(
            "link_client.js", "--grape", grapes[1], json.dumps([["lookup", unique("none")]])
        )
    assert failed.value.returncode == 1
    assert failed.value.lines[0]["error"]["message"] == "ERR_GRAPE_LOOKUP_EMPTY"


def test_http_rpc_request_and_map_reach_node_servers(grapes: list[str]) -> None:
    name = unique("harness-rpc")
    with (
        start_node_script(
            "rpc_server.js", "--grape", grapes[0], "--service", name, "--id", "S1"
        ) as s1,
        start_node_script(
            "rpc_server.js", "--grape", grapes[1], "--service", name, "--id", "S2"
        ) as s2,
    ):
        assert s1.ready["announce"] == {name: 1}
        assert s1.ready["port"] != s2.ready["port"]

        replies = run_node_script(
            "rpc_client.js", "--grape", grapes[1], "--count", "4", "request", name, '{"n": 1}'
        )
        assert len(replies) == 4
        for line in replies:
            assert line["reply"]["echo"] == {"n": 1}
            assert line["reply"]["from"] in {"S1", "S2"}

        compressed = run_node_script(
            "rpc_client.js", "--grape", grapes[0], "--compress", "request", name, '"zipped"'
        )
        assert compressed[0]["reply"]["echo"] == "zipped"

        mapped = run_node_script("rpc_client.js", "--grape", grapes[0], "map", name, '"all"')
        assert sorted(reply["from"] for reply in mapped[0]["reply"]) == ["S1", "S2"]

        with pytest.raises(NodeHarnessError) as boom:
            run_node_script("rpc_client.js", "--grape", grapes[0], "request", name, '"boom"')
        assert boom.value.lines[0]["error"]["message"] == "boom: something failed"

    assert s1.returncode == 0
    assert s2.returncode == 0
    requests = [line["request"] for line in s1.lines() + s2.lines() if "request" in line]
    assert len(requests) == 8  # 4 requests + 1 compressed + 2 map + 1 boom
    assert {request["key"] for request in requests} == {name}


def test_ws_rpc_and_pub_sub(grapes: list[str]) -> None:
    name = unique("harness-ws")
    with start_node_script("ws_server.js", "--grape", grapes[0], "--service", name, "--id", "W1"):
        replies = run_node_script(
            "ws_client.js", "--grape", grapes[1], "--count", "2", "request", name, "[1, 2]"
        )
        assert [line["reply"] for line in replies] == [{"echo": [1, 2], "from": "W1"}] * 2
        mapped = run_node_script("ws_client.js", "--grape", grapes[1], "map", name, '"m"')
        assert mapped[0]["reply"] == [{"echo": "m", "from": "W1"}]

    topic = unique("harness-pub")
    messages = ["one", {"seq": 2}, "three"]
    with start_node_script(
        "pub.js",
        "--grape",
        grapes[0],
        "--service",
        topic,
        "--wait-subscribers",
        "1",
        "--interval",
        "20",
        json.dumps(messages),
    ):
        received = run_node_script(
            "sub.js", "--grape", grapes[1], "--service", topic, "--count", "3", "--timeout", "10000"
        )
    texts = [line["message"] for line in received if "message" in line]
    assert texts == ["one", '{"seq":2}', "three"]
