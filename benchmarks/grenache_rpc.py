"""Grenache RPC over HTTP: Python client -> Python server against Node client -> Node server.

Run: ``python benchmarks/grenache_rpc.py`` (needs node and ``npm ci`` in interop/node).

For each pair and with gzip off and on, in one invocation on this machine: the p50 and p99
of sequential round trips (``--sequential`` requests one after another) and the throughput
with ``--in-flight`` (64) requests outstanding (``--requests`` in all). Client and server
are separate processes; both find each other through one embedded grape (a subprocess),
and the payload is ``{"i": N}`` echoed back. Each measurement is repeated ``--runs`` times
against the same server and the median is printed, with the Python/Node ratios. Nothing is
asserted: these are figures for docs/benchmarks.md.
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from peerbook.grenache import Link, RpcClient, RpcServer
from peerbook.grenache.protocol import Json
from peerbook.testing.processes import stop_process

NODE_DIR = Path(__file__).resolve().parent.parent / "interop" / "node"
PYTHON_SERVICE = "bench:python-echo"
NODE_SERVICE = "bench:node-echo"  # apart: a stopped server stays announced for a while


class Figures(NamedTuple):
    """One measurement: sequential p50 and p99 in milliseconds, requests per second."""

    p50_ms: float
    p99_ms: float
    per_s: float


def _read_line(process: "subprocess.Popen[str]", what: str) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{what} exited before it was ready")
    return line.strip()


@contextmanager
def _process(command: Sequence[str], what: str, cwd: Path | None = None) -> Iterator[str]:
    """Start a process, yield its first stdout line, and stop it (by PID) afterwards."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=cwd)
    try:
        yield _read_line(process, what)
    finally:
        stop_process(process)


async def _echo(key: str, payload: Json) -> Json:
    return payload


async def _serve(grape: str) -> None:
    server = RpcServer(_echo)
    await server.start()
    link = Link(grape)
    await link.start_announcing(PYTHON_SERVICE, server.port)
    print(json.dumps({"ready": True, "port": server.port}), flush=True)
    await asyncio.Event().wait()


async def _python_client(grape: str, args: argparse.Namespace, compress: bool) -> Figures:
    link = Link(grape)
    client = RpcClient(link)
    for index in range(100):
        await client.request(PYTHON_SERVICE, {"i": index}, compress=compress)
    times: list[float] = []
    for index in range(args.sequential):
        started = time.perf_counter()
        await client.request(PYTHON_SERVICE, {"i": index}, compress=compress)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    remaining = iter(range(args.requests))

    async def worker() -> None:
        for index in remaining:
            await client.request(PYTHON_SERVICE, {"i": index}, compress=compress)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.in_flight)))
    per_s = args.requests / (time.perf_counter() - started)
    await client.close()
    await link.close()
    return Figures(
        times[len(times) // 2], times[min(len(times) - 1, len(times) * 99 // 100)], per_s
    )


def _node_client(grape: str, args: argparse.Namespace, compress: bool) -> Figures:
    command = [
        "node", "--require", "./loopback.js", "rpc_bench.js", "--grape", grape,
        "--service", NODE_SERVICE, "--sequential", str(args.sequential),
        "--requests", str(args.requests), "--in-flight", str(args.in_flight),
    ]  # fmt: skip
    if compress:
        command.append("--compress")
    result = subprocess.run(
        command, cwd=NODE_DIR, capture_output=True, text=True, check=True, timeout=300
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["errors"]:
        raise RuntimeError(f"the Node client saw {figures['errors']} errors")
    return Figures(figures["p50_ms"], figures["p99_ms"], figures["per_s"])


def _median(runs: Sequence[Figures]) -> Figures:
    return Figures(*(statistics.median(column) for column in zip(*runs, strict=True)))


def _measure(args: argparse.Namespace) -> dict[tuple[str, bool], Figures]:
    results: dict[tuple[str, bool], Figures] = {}
    grape_command = [sys.executable, "-m", "peerbook", "grape", "--port", "0"]
    with _process(grape_command, "the grape") as grape:
        serve = [sys.executable, __file__, "--serve", grape]
        with _process(serve, "the Python server"):
            for compress in (False, True):
                runs = [
                    asyncio.run(_python_client(grape, args, compress)) for _ in range(args.runs)
                ]
                results["python", compress] = _median(runs)
        node_server = ["node", "--require", "./loopback.js", "bench_server.js"]
        with _process(
            [*node_server, "--grape", grape, "--service", NODE_SERVICE], "node", NODE_DIR
        ):
            for compress in (False, True):
                runs = [_node_client(grape, args, compress) for _ in range(args.runs)]
                results["node", compress] = _median(runs)
    return results


def _report(results: dict[tuple[str, bool], Figures], args: argparse.Namespace) -> None:
    print(
        f"sequential: {args.sequential} round trips; throughput: {args.requests} requests, "
        f"{args.in_flight} in flight; median of {args.runs} runs"
    )
    print(f"{'pair':<18}{'gzip':<6}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>10}")
    for (pair, compress), figures in results.items():
        name = "Python -> Python" if pair == "python" else "Node -> Node"
        print(
            f"{name:<18}{'on' if compress else 'off':<6}{figures.p50_ms:>9.3f}"
            f"{figures.p99_ms:>9.3f}{figures.per_s:>10,.0f}"
        )
    for compress in (False, True):
        python, node = results["python", compress], results["node", compress]
        print(
            f"gzip {'on ' if compress else 'off'}: Python/Node throughput ratio "
            f"{python.per_s / node.per_s:.2f}, p50 ratio {python.p50_ms / node.p50_ms:.2f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark (or, with ``--serve GRAPE``, be its Python echo server)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serve", metavar="GRAPE", help=argparse.SUPPRESS)
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    _report(_measure(args), args)


if __name__ == "__main__":
    main()
