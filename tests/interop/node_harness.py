"""Drive the real Node.js Grenache packages (interop/node) from pytest.

Everything here listens on 127.0.0.1 only (every Node process is started with
``--require ./loopback.js``), bounds every wait in time and count, and stops only the
processes it started, by PID (terminate, wait, then kill).

Grapes are started exactly like this, each bootstrapped to the others::

    node --require ./loopback.js --require ./parent_watch.js \\
        node_modules/grenache-grape/bin/grape.js \\
        --dp DP --aph APH --bn 127.0.0.1:OTHER_DP[,127.0.0.1:OTHER_DP2...] --dpa 120000

(``--dpa 120000`` restores the documented 120 s peer expiry that the grape 1.0.0 CLI
otherwise loses; ``parent_watch.js`` makes a Node process exit when pytest dies.)

Typical use::

    if not node_available() and not ensure_node_modules():
        pytest.skip(...)
    with node_grapes(2) as grapes:
        with start_node_script("rpc_server.js", "--grape", grapes[0], "--service", "svc") as server:
            lines = run_node_script("rpc_client.js", "--grape", grapes[1], "request", "svc", '"hi"')
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from peerbook.testing.processes import stop_process

JsonLine = dict[str, Any]

LOOPBACK = "127.0.0.1"
NODE_DIR = Path(__file__).resolve().parents[2] / "interop" / "node"
GRAPE_BIN = Path("node_modules") / "grenache-grape" / "bin" / "grape.js"
REQUIRED_PACKAGES = (
    "grenache-grape",
    "grenache-nodejs-link",
    "grenache-nodejs-http",
    "grenache-nodejs-ws",
)
PRELOADS = ("--require", "./loopback.js", "--require", "./parent_watch.js")
GRAPE_PEER_MAX_AGE_MS = 120_000
PROBE_SERVICE = "peerbook-interop-harness-probe"

_issued_ports: set[int] = set()
_ports_lock = threading.Lock()


class NodeHarnessError(RuntimeError):
    """A Node process failed, timed out, or never became ready."""

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None = None,
        lines: list[JsonLine] | None = None,
        stderr: str = "",
    ) -> None:
        details = [message]
        if returncode is not None:
            details.append(f"exit code {returncode}")
        if lines:
            details.append("stdout: " + "; ".join(json.dumps(line) for line in lines[-20:]))
        if stderr.strip():
            details.append("stderr: " + stderr.strip()[-2000:])
        super().__init__("\n".join(details))
        self.returncode = returncode
        self.lines = lines or []
        self.stderr = stderr


# ------------------------------------------------------------------ availability


def node_binary() -> str | None:
    """The ``node`` executable on PATH, if any."""
    return shutil.which("node")


def node_modules_installed() -> bool:
    """True when interop/node/node_modules holds the four Grenache packages."""
    modules = NODE_DIR / "node_modules"
    return (NODE_DIR / GRAPE_BIN).is_file() and all(
        (modules / name / "package.json").is_file() for name in REQUIRED_PACKAGES
    )


def node_available() -> bool:
    """True when both the node binary and the installed node_modules are present."""
    return node_binary() is not None and node_modules_installed()


def ensure_node_modules(timeout: float = 300.0) -> bool:
    """Run ``npm ci`` in interop/node when node_modules is missing; True if usable.

    Installs from the npm registry alone (package-lock.json + the ``overrides`` block).
    Returns False, without raising, when node or npm is absent or the install fails or
    takes longer than ``timeout`` seconds (``subprocess.run`` then kills npm by PID).
    """
    if node_available():
        return True
    npm = shutil.which("npm")
    if node_binary() is None or npm is None:
        return False
    try:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return False
    return node_available()


def unavailable_reason() -> str:
    """Why the Node interop tests cannot run here (for ``pytest.skip``)."""
    if node_binary() is None:
        return "Node.js interop: the `node` binary is not on PATH"
    if shutil.which("npm") is None and not node_modules_installed():
        return "Node.js interop: interop/node/node_modules is missing and `npm` is not on PATH"
    return "Node.js interop: `npm ci` in interop/node failed or timed out"


# ------------------------------------------------------------------ ports


def free_port(attempts: int = 50) -> int:
    """A port that is free on 127.0.0.1 for both TCP and UDP right now.

    Never returns the same port twice in one test session, so ports handed out in a
    row cannot collide even if nothing has bound them yet.
    """
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            with _ports_lock:
                if port in _issued_ports:
                    continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((LOOPBACK, port))
            except OSError:
                continue
        with _ports_lock:
            _issued_ports.add(port)
        return port
    raise NodeHarnessError(f"no free loopback port found in {attempts} attempts")


# ------------------------------------------------------------------ processes


def _command(script: str, args: tuple[str, ...]) -> list[str]:
    node = node_binary()
    if node is None:
        raise NodeHarnessError("the `node` binary is not on PATH")
    return [node, *PRELOADS, script, *args]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["INTEROP_EXIT_WITH_PARENT"] = "1"
    env.pop("NODE_OPTIONS", None)
    return env


def _parse_line(text: str) -> JsonLine:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"_raw": text}
    if isinstance(value, dict):
        return value
    return {"_value": value}


def _parse_lines(stdout: str) -> list[JsonLine]:
    return [_parse_line(text) for text in stdout.splitlines() if text.strip()]


def run_node_script(
    name: str, *args: str, timeout: float = 30.0, check: bool = True
) -> list[JsonLine]:
    """Run ``interop/node/<name>`` to completion and return its JSON lines.

    Raises :class:`NodeHarnessError` (carrying the lines, exit code and stderr) when the
    script exits non-zero and ``check`` is true, or when it runs longer than
    ``timeout`` seconds (it is then killed by PID).
    """
    try:
        completed = subprocess.run(
            _command(name, args),
            cwd=NODE_DIR,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise NodeHarnessError(
            f"{name} did not finish within {timeout} s", lines=_parse_lines(stdout), stderr=stderr
        ) from exc
    lines = _parse_lines(completed.stdout)
    if check and completed.returncode != 0:
        raise NodeHarnessError(
            f"{name} failed",
            returncode=completed.returncode,
            lines=lines,
            stderr=completed.stderr,
        )
    return lines


class NodeProcess:
    """A long-running Node process whose stdout JSON lines are collected in a thread.

    The pipes are always drained (a full pipe would block Node's synchronous stdout
    writes), so nothing needs to read them for the process to make progress.
    """

    def __init__(self, name: str, args: tuple[str, ...]) -> None:
        self.name = name
        self._popen = subprocess.Popen(
            _command(name, args),
            cwd=NODE_DIR,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            errors="replace",
        )
        self._lines: list[JsonLine] = []
        self._queue: queue.Queue[JsonLine | None] = queue.Queue()
        self._stderr: list[str] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read_stdout, name=f"{name}-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"{name}-stderr", daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.ready: JsonLine = {}

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def _read_stdout(self) -> None:
        stream = self._popen.stdout
        assert stream is not None
        for text in stream:
            if not text.strip():
                continue
            line = _parse_line(text)
            with self._lock:
                self._lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def _read_stderr(self) -> None:
        stream = self._popen.stderr
        assert stream is not None
        for text in stream:
            with self._lock:
                self._stderr.append(text)

    def lines(self) -> list[JsonLine]:
        """All stdout lines received so far."""
        with self._lock:
            return list(self._lines)

    def stderr(self) -> str:
        with self._lock:
            return "".join(self._stderr)

    def error(self, message: str) -> NodeHarnessError:
        return NodeHarnessError(
            f"{self.name} (pid {self.pid}): {message}",
            returncode=self.returncode,
            lines=self.lines(),
            stderr=self.stderr(),
        )

    def wait_for(self, predicate: Callable[[JsonLine], bool], timeout: float) -> JsonLine:
        """The next stdout line satisfying ``predicate``, waiting at most ``timeout`` s.

        Lines that do not match are skipped (they stay available through ``lines()``).
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.error(f"no matching line within {timeout} s")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._queue.put(None)  # keep signalling end-of-output to later waits
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(timeout=5)
                raise self.error("exited before printing the expected line")
            if predicate(line):
                return line

    def stop(self, timeout: float = 5.0, *, grace: float = 0.0) -> int | None:
        """Stop this process by PID: give it ``grace`` seconds to exit by itself, then
        terminate, wait ``timeout`` seconds, kill if needed; return its exit code."""
        if grace > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=grace)
        status = stop_process(self._popen, timeout)
        if status is None:
            return None
        for reader in self._readers:
            reader.join(timeout=timeout)
        return status

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _ready_or_failed(line: JsonLine) -> bool:
    return line.get("ready") is True or "fatal" in line or "error" in line


def start_node_script(name: str, *args: str, ready_timeout: float = 20.0) -> NodeProcess:
    """Start a long-running script (rpc_server.js, ws_server.js, pub.js) and wait for
    its ``{"ready": true, ...}`` line, which is then available as ``.ready``.

    Use the result as a context manager (or call ``.stop()``): it is stopped by PID.
    Raises :class:`NodeHarnessError` if the script reports a failure, exits, or is not
    ready within ``ready_timeout`` seconds (it is stopped first).
    """
    process = NodeProcess(name, args)
    try:
        line = process.wait_for(_ready_or_failed, ready_timeout)
    except BaseException:
        process.stop()
        raise
    if line.get("ready") is not True:
        process.stop(grace=5.0)  # it exits by itself after reporting a failure
        raise process.error("reported a failure before it was ready")
    process.ready = line
    return process


# ------------------------------------------------------------------ grapes


def grape_call(url: str, verb: str, data: Any, timeout: float = 3.0) -> tuple[int, str]:
    """POST ``{"rid", "data"}`` to a grape's HTTP API; return (status, body text)."""
    body = json.dumps({"rid": str(uuid.uuid4()), "data": data}).encode()
    request = urllib.request.Request(
        f"{url}/{verb}", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def _wait_for_api(grape: NodeProcess, url: str, deadline: float) -> None:
    """Wait until the grape's HTTP API answers at all."""
    for _ in range(1000):
        if grape.returncode is not None:
            raise grape.error("grape exited during start-up")
        try:
            grape_call(url, "lookup", PROBE_SERVICE, timeout=1.0)
            return
        except OSError:  # includes urllib.error.URLError
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise grape.error(f"HTTP API {url} did not answer in time")


def _wait_for_dht(grape: NodeProcess, url: str, api_port: int, deadline: float) -> None:
    """Wait until the grape knows another DHT node: an announce gets stored (reply >= 1).

    The probe announces the grape's own API port (which does listen) under a name that
    no test uses.
    """
    status, text = 0, ""
    for _ in range(1000):
        try:
            status, text = grape_call(url, "announce", [PROBE_SERVICE, api_port], timeout=3.0)
        except OSError as exc:
            status, text = 0, str(exc)
        if status == 200 and text.strip().isdigit() and int(text) >= 1:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise grape.error(f"grape {url} never joined the DHT (last answer {status} {text!r})")


@contextlib.contextmanager
def node_grapes(count: int = 2, *, start_timeout: float = 20.0) -> Iterator[list[str]]:
    """Start ``count`` real Node grapes on free loopback ports, bootstrapped to each
    other, with ``--dpa 120000``; yield their HTTP API URLs (``http://127.0.0.1:APH``).

    Waits (at most ``start_timeout`` s overall) until every API answers and, with two
    or more grapes, until every grape can store an announcement in the DHT. On exit
    stops only the grapes it started, by PID.
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    dht_ports = [free_port() for _ in range(count)]
    api_ports = [free_port() for _ in range(count)]
    grapes: list[NodeProcess] = []
    try:
        for index, (dht_port, api_port) in enumerate(zip(dht_ports, api_ports, strict=True)):
            others = [port for i, port in enumerate(dht_ports) if i != index] or [dht_port]
            bootstrap = ",".join(f"{LOOPBACK}:{port}" for port in others)
            args = (
                *("--dp", str(dht_port), "--aph", str(api_port)),
                *("--bn", bootstrap, "--dpa", str(GRAPE_PEER_MAX_AGE_MS)),
            )
            grapes.append(NodeProcess(str(GRAPE_BIN), args))
        urls = [f"http://{LOOPBACK}:{port}" for port in api_ports]
        deadline = time.monotonic() + start_timeout
        for grape, url in zip(grapes, urls, strict=True):
            _wait_for_api(grape, url, deadline)
        if count > 1:  # a lone grape answers every announce with "No nodes to query"
            for grape, url, api_port in zip(grapes, urls, api_ports, strict=True):
                _wait_for_dht(grape, url, api_port, deadline)
        yield urls
    finally:
        for grape in grapes:
            grape.stop()


def unique(prefix: str) -> str:
    """A service or value name no other test uses (grapes outlive a test's records)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
