"""`peerbook grape` as a real process: prints its URL, serves, stops cleanly on SIGTERM."""

import json
import signal
import urllib.request

from tests.conftest import grape_process


def test_grape_command_serves_and_stops_on_sigterm() -> None:
    with grape_process() as (process, url):
        assert url.startswith("http://127.0.0.1:")
        body = json.dumps({"rid": "r", "data": ["svc", 5001]}).encode()
        with urllib.request.urlopen(f"{url}/announce", body, timeout=5) as reply:
            assert reply.read() == b"1"
        body = json.dumps({"rid": "r", "data": "svc"}).encode()
        with urllib.request.urlopen(f"{url}/lookup", body, timeout=5) as reply:
            assert json.loads(reply.read()) == ["127.0.0.1:5001"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
