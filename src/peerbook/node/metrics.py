"""The peer's Prometheus metrics, on their own HTTP port (``peerbook node --metrics-port``).

Counted from what this peer applied (the same on every peer: orders and trades of the whole
network) and from what it answered (its own clients' requests and the commit latency they
saw). Each peer has its own registry, so several peers in one process (tests) do not mix.

| metric | what |
|---|---|
| ``peerbook_orders_total{outcome}`` | orders applied: ``accepted`` or ``rejected`` |
| ``peerbook_trades_total`` | trades applied |
| ``peerbook_applied_sequence`` | the engine's applied sequence |
| ``peerbook_is_leader`` | 1 while this peer leads the Raft group |
| ``peerbook_writable`` | 1 while this peer can commit |
| ``peerbook_requests_total{action,outcome}`` | API requests answered (``ok`` or the error class) |
| ``peerbook_commit_seconds`` | histogram: a write from arrival to its applied outcome here |
| ``peerbook_feed_dropped_total`` | feed messages dropped because subscribers were too slow |
| ``peerbook_snapshots_written_total`` | snapshots written (log compactions) since start |
| ``peerbook_snapshot_write_seconds`` | how long the last snapshot took to write |
| ``peerbook_raft_log_entries`` | entries in the Raft log (held in memory until compacted) |
| ``peerbook_orders_in_memory`` | orders held in full (open, and closed ones not yet on disk) |
| ``peerbook_orders_retired`` | closed orders served from the audit trail, out of memory |
| ``peerbook_python_heap_blocks`` | memory blocks Python's allocator has handed out and not freed |

The last one tells memory that Python objects hold from memory the process keeps for other
reasons (freed arenas CPython does not give back, SQLite's page caches): resident memory
that grows while the heap blocks stay level is no object kept alive.
"""

import sys
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from peerbook.engine import Engine, OrderAccepted, OrderRejected, TradeExecuted
from peerbook.grenache.transport import listen
from peerbook.replication import Outcome
from peerbook.replication.entries import LogEntry

__all__ = ["MetricsServer", "PeerMetrics"]

_COMMIT_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class PeerMetrics:
    """The metrics of one peer."""

    def __init__(
        self,
        engine: Engine,
        *,
        is_leader: Callable[[], bool],
        writable: Callable[[], bool],
        feed_dropped: Callable[[], int],
        snapshots_written: Callable[[], int],
        snapshot_write_seconds: Callable[[], float],
        raft_log_entries: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.orders = Counter("peerbook_orders", "Orders applied", ["outcome"], registry=registry)
        self.trades = Counter("peerbook_trades", "Trades applied", registry=registry)
        self.requests = Counter(
            "peerbook_requests", "API requests answered", ["action", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.commit_seconds = Histogram(
            "peerbook_commit_seconds", "A write from arrival to its applied outcome here",
            buckets=_COMMIT_BUCKETS, registry=registry,
        )  # fmt: skip
        Gauge("peerbook_applied_sequence", "Applied sequence", registry=registry).set_function(
            lambda: engine.sequence
        )
        Gauge("peerbook_is_leader", "1 while leading", registry=registry).set_function(
            lambda: float(is_leader())
        )
        Gauge("peerbook_writable", "1 while able to commit", registry=registry).set_function(
            lambda: float(writable())
        )
        dropped = Gauge("peerbook_feed_dropped_total", "Feed messages dropped", registry=registry)
        dropped.set_function(lambda: float(feed_dropped()))
        written = Gauge(
            "peerbook_snapshots_written_total", "Snapshots written (log compactions) since start",
            registry=registry,
        )  # fmt: skip
        written.set_function(lambda: float(snapshots_written()))
        Gauge(
            "peerbook_snapshot_write_seconds", "How long the last snapshot took to write",
            registry=registry,
        ).set_function(snapshot_write_seconds)  # fmt: skip
        Gauge(
            "peerbook_raft_log_entries", "Entries in the Raft log since its last compaction",
            registry=registry,
        ).set_function(lambda: float(raft_log_entries()))  # fmt: skip
        Gauge(
            "peerbook_orders_in_memory", "Orders the engine holds in full", registry=registry
        ).set_function(lambda: float(engine.order_count))
        Gauge(
            "peerbook_orders_retired", "Closed orders served from the audit trail",
            registry=registry,
        ).set_function(lambda: float(engine.retired_count))  # fmt: skip
        Gauge(
            "peerbook_python_heap_blocks", "Memory blocks Python's allocator has handed out",
            registry=registry,
        ).set_function(lambda: float(sys.getallocatedblocks()))  # fmt: skip

    def on_applied(self, entry: LogEntry, outcomes: list[Outcome]) -> None:
        """Count the orders and trades of one applied entry (a state machine listener)."""
        accepted = rejected = trades = 0
        for outcome in outcomes:
            if outcome.error is not None:
                rejected += 1
            for event in outcome.events:
                kind = type(event)
                accepted += kind is OrderAccepted
                rejected += kind is OrderRejected
                trades += kind is TradeExecuted
        if accepted:
            self.orders.labels("accepted").inc(accepted)
        if rejected:
            self.orders.labels("rejected").inc(rejected)
        if trades:
            self.trades.inc(trades)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsServer:
    """Serves ``GET /metrics`` for one peer."""

    def __init__(self, metrics: PeerMetrics, *, host: str, port: int) -> None:
        self._metrics = metrics
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve (port 0: any free one, see `port`)."""
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        self._runner, self.port = await listen(app, self.host, self.port)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, _: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
