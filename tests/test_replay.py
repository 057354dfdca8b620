"""`peerbook replay` as a black box: the contract's section 7, run as a real process."""

import json
import subprocess
import sys
from pathlib import Path

from peerbook.engine import Engine
from peerbook.wire import RequestError, decode_entry

EXAMPLE = Path(__file__).parent.parent / "examples" / "session.jsonl"


def run_replay(*args: str, stdin: str | None = None) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "peerbook", "replay", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def entry(op: str, owner: str, timestamp: int, *args: object) -> str:
    return json.dumps({"op": op, "owner": owner, "timestamp": timestamp, "args": list(args)})


def test_output_has_errors_and_trades_then_orders_then_applied_and_digest() -> None:
    lines = run_replay(str(EXAMPLE))
    kinds = [next(iter(line)) for line in lines]
    first_order = kinds.index("order")
    assert set(kinds[:first_order]) == {"error", "trade"}
    assert set(kinds[first_order:-1]) == {"order"}
    assert kinds[-1] == "applied"


def test_malformed_lines_give_error_lines_and_replay_continues() -> None:
    stdin = "\n".join(
        [
            "{not json",
            entry("createOrder", "p1", 1, "BTC/USD", "limit", "sell", "1", "30000"),
            '["an", "array"]',
            entry("createOrder", "p2", 2, "BTC/USD", "limit", "buy", "1", "30000.05"),
            entry("createOrder", "p2", 3, "BTC/USD", "limit", "buy", "0.4", "30000"),
            "x" * 70_000,
            entry("cancelOrder", "p2", 4, "1"),
        ]
    )
    lines = run_replay("-", stdin=stdin)
    errors = [(line["line"], str(line["error"]).split(":")[0]) for line in lines if "error" in line]
    assert errors == [
        (1, "BadRequest"),
        (3, "BadRequest"),
        (4, "InvalidOrder"),
        (6, "BadRequest"),
        (7, "OrderNotFound"),
    ]
    trades = [line["trade"] for line in lines if "trade" in line]
    assert trades == [
        {
            "id": "1", "order": "2", "timestamp": 3, "datetime": "1970-01-01T00:00:00.003Z",
            "symbol": "BTC/USD", "side": "buy", "takerOrMaker": "taker",
            "price": "30000", "amount": "0.4", "cost": "12000", "fee": None,
            "makerOrder": "1", "takerOrder": "2",
        }
    ]  # fmt: skip
    orders = [line["order"] for line in lines if "order" in line]
    assert [(o["id"], o["status"], o["remaining"]) for o in orders] == [  # type: ignore[index]
        ("1", "open", "0.6"),
        ("2", "closed", "0"),
    ]
    assert lines[-1]["applied"] == 3


def test_filled_order_is_reported_with_remaining_zero_and_status_closed() -> None:
    stdin = "\n".join(
        [
            entry("createOrder", "p1", 1, "ETH/USD", "limit", "sell", "2", "2500.01"),
            entry("createOrder", "p2", 2, "ETH/USD", "market", "buy", "2", None),
        ]
    )
    orders = [line["order"] for line in run_replay("-", stdin=stdin) if "order" in line]
    maker = orders[0]
    assert isinstance(maker, dict)
    assert (maker["status"], maker["remaining"], maker["filled"], maker["cost"]) == (
        "closed",
        "0",
        "2",
        "5000.02",
    )
    assert maker["info"] == {"peer": "p1", "sequence": 1, "state": "filled"}


def test_digest_equals_the_engine_applying_the_same_commands() -> None:
    lines = run_replay(str(EXAMPLE))
    engine = Engine()
    for text in EXAMPLE.read_text().splitlines():
        try:
            command = decode_entry(json.loads(text), engine.markets)
        except ValueError:
            continue
        if not isinstance(command, RequestError):
            engine.apply(command)
    assert lines[-1] == {"applied": engine.sequence, "digest": engine.digest()}


def test_custom_markets_file(tmp_path: Path) -> None:
    markets = tmp_path / "markets.json"
    markets.write_text(
        json.dumps([{"symbol": "SOL/EUR", "precision": {"price": "0.25", "amount": "1"}}])
    )
    stdin = "\n".join(
        [
            entry("createOrder", "p1", 1, "SOL/EUR", "limit", "sell", "3", "100.25"),
            entry("createOrder", "p1", 2, "SOL/EUR", "limit", "sell", "3", "100.3"),
            entry("createOrder", "p1", 3, "BTC/USD", "limit", "sell", "3", "100"),
        ]
    )
    lines = run_replay("--markets", str(markets), "-", stdin=stdin)
    assert [line["error"] for line in lines if "error" in line] == [
        "InvalidOrder: price 100.3 is not a multiple of tick 0.25",
        "BadSymbol: unknown market BTC/USD",
    ]


def test_unreadable_input_exits_with_status_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peerbook", "replay", str(tmp_path / "missing.jsonl")],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "missing.jsonl" in result.stderr


def test_trade_and_order_structures_have_exactly_the_contract_fields() -> None:
    lines = run_replay(str(EXAMPLE))
    trade_fields = {"id", "order", "timestamp", "datetime", "symbol", "side", "takerOrMaker",
                    "price", "amount", "cost", "fee"}  # fmt: skip
    order_fields = {"id", "clientOrderId", "timestamp", "datetime", "lastTradeTimestamp",
                    "status", "symbol", "type", "timeInForce", "postOnly", "side", "price",
                    "average", "amount", "filled", "remaining", "cost", "trades", "fee", "info"}  # fmt: skip
    for line in lines:
        if "trade" in line:
            trade = line["trade"]
            assert isinstance(trade, dict) and set(trade) == trade_fields | {
                "makerOrder",
                "takerOrder",
            }
        if "order" in line:
            order = line["order"]
            assert isinstance(order, dict) and set(order) == order_fields
            assert set(order["info"]) == {"peer", "sequence", "state"}
            assert all(set(t) == trade_fields for t in order["trades"])
            assert order["fee"] is None and isinstance(order["timestamp"], int)


def test_hostile_lines_get_error_lines_and_replay_finishes(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    lines = [
        b"\xff\xfe not utf-8",
        b"[" * 50_000,
        entry("createOrder", "p1", 10**16, "BTC/USD", "limit", "buy", "1", "1").encode(),
        entry("createOrder", "p1", 1, "BTC/USD", "limit", "buy", "1", "1." + "0" * 5000).encode(),
        b'{"op":"createOrder","owner":"p1","timestamp":1,"args":["BTC/USD","limit","sell","1","1",{"clientOrderId":"\\ud800"}]}',
    ]
    path.write_bytes(b"\n".join(lines))
    for source in ([str(path)], ["-"]):
        stdin = path.read_bytes().decode("utf-8", "surrogateescape") if source == ["-"] else None
        result = subprocess.run(
            [sys.executable, "-m", "peerbook", "replay", *source],
            input=stdin.encode("utf-8", "surrogateescape") if stdin else None,
            capture_output=True,
            check=True,
            timeout=60,
        )
        output = [json.loads(line) for line in result.stdout.splitlines()]
        assert [line.get("line") for line in output if "error" in line] == [1, 2, 3, 4]
        assert output[-1]["applied"] == 1
        assert output[-2]["order"]["clientOrderId"] == "\ud800"
