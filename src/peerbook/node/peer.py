"""The composition root of one peer: every part wired together, started and stopped in order.

A peer runs an HTTP RPC server and a WebSocket RPC server for the API (contract sections 3
and 4, 64 KiB requests, announced on the grape), the feed's publisher, and the Raft server, a
WebSocket RPC server (cluster traffic with entries up to 1 MiB, authenticated by the cluster
secret, never announced: members know each other's addresses from the Raft configuration).
Applied log entries feed the engine (through the state machine), the trade history and the
market-data feed.

Start-up has three cases:
- first start with ``bootstrap``: a one-member network, which elects itself;
- first start without it: join an existing network through the grape (`peerbook.node.join`);
- a restart (``peer.json`` exists): the journal and the last known members; the log is
  replayed into a fresh engine and the peer catches up from the others.

Every applied command is also written to ``commands.jsonl`` in the data directory
(`peerbook.node.command_log`), which ``peerbook replay`` turns back into the same digest.
"""

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from peerbook.engine import Engine
from peerbook.errors import GrenacheError, PeerbookError, RpcError
from peerbook.grenache import Link, RpcClient, RpcServer, WsRpcClient, WsRpcServer
from peerbook.grenache.http import BODY_BYTES_MAX
from peerbook.grenache.protocol import Json
from peerbook.node import memory
from peerbook.node.api import ApiService
from peerbook.node.archive import Archive
from peerbook.node.audit import AuditTrail
from peerbook.node.auth import Authenticator
from peerbook.node.command_log import CommandLog
from peerbook.node.datadir import DataDir, Identity, read_secret
from peerbook.node.feed import Feed
from peerbook.node.history import History
from peerbook.node.join import (
    JoinAnswer,
    JoinFull,
    JoinRefused,
    JoinService,
    join_key,
    request_join,
)
from peerbook.node.metrics import MetricsServer, PeerMetrics
from peerbook.replication import Batcher, OrderStateMachine
from peerbook.replication.raft_adapter import RaftLog, end_orphaned_snapshot_writer
from peerbook.replication.raft_transport import (
    RAFT_SERVICE_KEY,
    RaftEndpoint,
    member_id,
    member_peer,
    raft_server,
)
from peerbook.replication.snapshot_store import SnapshotStore

__all__ = [
    "DEFAULT_SNAPSHOT_ENTRIES",
    "Peer",
    "PeerConfig",
    "PeerFailed",
    "StartupError",
    "run_peer",
]

_log = logging.getLogger(__name__)
_JOIN_TIMEOUT_S = 60.0
_MEMBERS_SAVE_S = 1.0
_RESTART_WAIT_S = 3.0
_SLOW_STOP_STEP_S = 1.0
DEFAULT_SNAPSHOT_ENTRIES = 20_000
# A restarted grape has lost every record and nobody is told: re-announcing this often
# bounds how long clients cannot find the peer (measured: a 30 s interval left writes
# stopped for 14 s after the grape came back), for about one small request a second.
_ANNOUNCE_S = 5.0
_SEAT_CHECK_S = 2.0  # how often a replica looks for a free voting seat


class StartupError(PeerbookError):
    """The peer cannot start as configured (the message says why)."""


class PeerFailed(PeerbookError):
    """The peer stopped serving because its state cannot be trusted (the message says why)."""


class PeerConfig(NamedTuple):
    """What ``peerbook node`` is given."""

    grape: str
    data_dir: Path
    network: str = "main"
    host: str = "127.0.0.1"
    rpc_port: int = 0
    bootstrap: bool = False
    secret_file: Path | None = None
    peer_id: str | None = None
    voters_max: int = 5
    metrics_port: int | None = None
    snapshot_entries: int | None = DEFAULT_SNAPSHOT_ENTRIES


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class _LogStatus:
    """The replicated log's state in the contract's terms (peer ids, not node ids)."""

    def __init__(self, raft: RaftLog) -> None:
        self._raft = raft

    @property
    def role(self) -> str:
        return self._raft.role

    @property
    def leader(self) -> str | None:
        leader = self._raft.leader
        return None if leader is None else member_peer(leader)

    @property
    def members(self) -> list[str]:
        return sorted(member_peer(m) for m in self._raft.members)

    @property
    def writable(self) -> bool:
        return self._raft.has_quorum and self._raft.leader is not None


class Peer:
    """One running peer. `start`, then `stop` (also after a failed start)."""

    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self.directory = DataDir(config.data_dir)
        self.identity: Identity | None = None
        self.api_server: RpcServer | None = None
        self.ws_server: WsRpcServer | None = None
        self._raft_server: WsRpcServer | None = None
        self._link = Link(config.grape, announce_interval_s=_ANNOUNCE_S)
        self._client = RpcClient(self._link)
        self._raft_client = WsRpcClient(self._link)  # Raft traffic only
        self._raft: RaftLog | None = None
        self._batcher: Batcher | None = None
        self._auth: Authenticator | None = None
        self._api: ApiService | None = None
        self._join: JoinService | None = None
        self._feed: Feed | None = None
        self.metrics_server: MetricsServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.machine = OrderStateMachine(Engine())
        self.history = History(self.machine.engine)
        # Counted from every applied entry, the journal's replay after a restart included.
        self.metrics = PeerMetrics(
            self.machine.engine,
            is_leader=lambda: self._raft is not None and self._raft.role == "leader",
            writable=lambda: self._raft is not None and _LogStatus(self._raft).writable,
            feed_dropped=lambda: 0 if self._feed is None else self._feed.dropped,
            snapshots_written=lambda: 0 if (s := self._snapshots()) is None else s.written,
            snapshot_write_seconds=lambda: (
                0.0 if (s := self._snapshots()) is None else s.last_write_s
            ),
            raft_log_entries=lambda: 0 if self._raft is None else self._raft.log_entries,
        )
        self.machine.listeners += [self.history.on_applied, self.metrics.on_applied]
        self.machine.parts["history"] = self.history
        self._commands: CommandLog | None = None
        self._audit: AuditTrail | None = None
        self._archive: Archive | None = None
        self.stopping = asyncio.Event()

    def _snapshots(self) -> SnapshotStore | None:
        """The Raft log's snapshot store, once the log is started with a data directory."""
        return None if self._raft is None else self._raft.snapshots

    @property
    def names(self) -> list[str]:
        """The Grenache names this peer's HTTP API is announced under; the WebSocket API is
        announced under the same names with ``:ws`` appended."""
        assert self.identity is not None
        network = self.config.network
        return [f"peerbook:{network}:rpc", f"peerbook:{network}:peer:{self.identity.peer}"]

    def ready_line(self) -> dict[str, Any]:
        """What ``peerbook node`` prints once ready (contract section 1), plus ``metrics``
        (``host:port``) when metrics are served."""
        assert self.identity is not None and self.api_server is not None
        line = {
            "peer": self.identity.peer,
            "rpc": f"{self.config.host}:{self.api_server.port}",
            "network": self.config.network,
            "data_dir": str(self.config.data_dir),
        }
        if self.metrics_server is not None:
            line["metrics"] = f"{self.config.host}:{self.metrics_server.port}"
        return line

    def _secret(self, first_start: bool) -> bytes:
        config, directory = self.config, self.directory
        if config.secret_file is not None:
            try:
                secret = read_secret(config.secret_file)
            except (OSError, ValueError) as exc:
                raise StartupError(f"cannot read the cluster secret: {exc}") from exc
            directory.save_cluster_secret(secret)
            return secret
        kept = directory.cluster_secret()
        if kept is not None:
            return kept
        if first_start and config.bootstrap:
            secret = secrets.token_bytes(32)
            directory.save_cluster_secret(secret)
            return secret
        raise StartupError("joining a network needs its cluster secret: pass --secret-file")

    def _identity(self) -> tuple[Identity, bool]:
        try:
            known = self.directory.identity()
        except (OSError, ValueError) as exc:
            raise StartupError(str(exc)) from exc
        left = self.directory.left()
        if left is not None:
            raise StartupError(
                f"{self.config.data_dir}: this peer {left}, and is no member any more "
                "(start a new one with a new data directory)"
            )
        if known is not None:
            if known.network != self.config.network:
                raise StartupError(
                    f"{self.config.data_dir} belongs to network {known.network}, "
                    f"not {self.config.network}"
                )
            return known, False
        peer = self.config.peer_id or f"p-{secrets.token_hex(3)}"
        raft = f"{self.config.host}:{_free_port(self.config.host)}"
        return Identity(peer, self.config.network, raft), True

    async def start(self) -> None:
        """Serve, join or recover, and announce.

        Raises:
            StartupError, JoinRefused, OSError: the peer could not start.
        """
        config = self.config
        identity, first_start = self._identity()
        if first_start and not config.bootstrap and config.secret_file is None:
            raise StartupError("joining a network needs its cluster secret: pass --secret-file")
        if first_start and config.bootstrap:
            await self._refuse_existing_network()
        secret = self._secret(first_start)
        self.identity = identity
        # A snapshot writer that outlived this peer's previous run would still hold its ports.
        end_orphaned_snapshot_writer(config.data_dir)
        # Everything derived from applied entries listens before the journal is replayed.
        audit = self._audit = AuditTrail(self.directory.audit, self.machine.engine)
        archive = self._archive = Archive(self.directory.audit)
        commands = self._commands = CommandLog(
            self.directory.commands, self.machine.engine, archive.client_order_ids
        )
        self.history.attach(archive, audit.adopt)
        audit.on_written = self.history.archived
        self.machine.listeners += [commands.on_applied, audit.on_applied]
        self.machine.installed += [
            commands.on_installed,
            lambda source: audit.on_installed(self.history.every_trade()),
        ]
        self._audit.start()
        endpoint = RaftEndpoint(secret)
        host, port = identity.raft.rsplit(":", 1)
        self._raft_server = raft_server(self._raft_handler(endpoint), host=host, port=int(port))
        await self._raft_server.start()
        self.ws_server = WsRpcServer(
            self._api_handler, host=config.host, message_bytes_max=BODY_BYTES_MAX
        )
        # Also the WebSocket API on the HTTP API's port, so that the contract's names answer
        # a WebSocket client as well (its own port keeps the names ending in ``:ws``).
        self.api_server = RpcServer(
            self._api_handler,
            host=config.host,
            port=config.rpc_port,
            upgrade=self.ws_server.upgrade,
        )
        await self.api_server.start()
        raft = await self._join_or_recover(first_start, secret, endpoint)
        await self._serve(raft, secret, first_start)

    async def _join_or_recover(
        self, first_start: bool, secret: bytes, endpoint: RaftEndpoint
    ) -> RaftLog:
        """Start this peer's Raft member: a new network, a join (as a voter while there are
        seats, else as a replica), or a restart with the members last recorded."""
        config, identity = self.config, self.identity
        assert identity is not None
        self_id = member_id(identity.peer, identity.raft)
        joining = first_start and not config.bootstrap
        if joining:
            answer = await request_join(
                self._client, config.network, secret, identity.peer, identity.raft, "members",
                timeout_s=_JOIN_TIMEOUT_S,
            )  # fmt: skip
            partners = answer.members
            identity = self.identity = identity._replace(replica=answer.voters_full)
        else:
            partners = self.directory.members()

        def start_log(replica: bool) -> RaftLog:
            return RaftLog(
                self_id,
                [p for p in partners if p != self_id],
                self.machine,
                endpoint=endpoint,
                client=self._raft_client,
                secret=secret,
                data_dir=config.data_dir,
                replica=replica,
                snapshot_entries=config.snapshot_entries,
            )

        raft = self._raft = start_log(identity.replica)
        if joining and not identity.replica:
            try:
                await request_join(
                    self._client, config.network, secret, identity.peer, identity.raft, "add",
                    timeout_s=_JOIN_TIMEOUT_S,
                )  # fmt: skip
            except JoinFull:  # others filled the last voting seats first
                raft.close()
                identity = self.identity = identity._replace(replica=True)
                raft = self._raft = start_log(True)
        if first_start:
            self.directory.save_identity(identity)
            self.directory.save_members(raft.members)
        return raft

    async def _serve(self, raft: RaftLog, secret: bytes, first_start: bool) -> None:
        """Wire the API, the feed and the metrics to the log, wait for a leader, announce."""
        config, identity = self.config, self.identity
        assert identity is not None and self.api_server is not None
        self._batcher = Batcher(identity.peer, raft.propose)
        self._auth = Authenticator(self.directory.credentials(), self.directory.nonces)
        self._join = JoinService(
            config.network, secret, raft, self_id=raft.address,
            leave=lambda: self._leave(secret), voters_max=config.voters_max,
        )  # fmt: skip
        status = _LogStatus(raft)
        self._feed = Feed(self.machine.engine, host=config.host)
        feed = self._feed
        metrics = self.metrics
        if config.metrics_port is not None:
            self.metrics_server = MetricsServer(metrics, host=config.host, port=config.metrics_port)
            await self.metrics_server.start()
            _log.info("metrics at http://%s:%d/metrics", config.host, self.metrics_server.port)
        self._api = ApiService(
            peer=identity.peer,
            network=config.network,
            engine=self.machine.engine,
            history=self.history,
            auth=self._auth,
            submit=self._batcher.submit,
            status=status,
            metrics=metrics,
        )
        if first_start:  # a new network or member says "ready" once it can take orders
            await self._wait_writable(_JOIN_TIMEOUT_S)
        else:  # a restart, briefly: the others may be down, and it must start anyway
            with contextlib.suppress(StartupError):
                await self._wait_writable(_RESTART_WAIT_S)
        self.machine.listeners.append(feed.on_applied)
        await self._feed.start()
        self._tasks.append(asyncio.create_task(self._save_members()))
        self._tasks.append(asyncio.create_task(self._release_memory()))
        if identity.replica:
            self._tasks.append(asyncio.create_task(self._take_a_free_seat(secret)))
        assert self.ws_server is not None
        await self.ws_server.start()
        # A restart serves even if its grape is down or slow: its members are known, and its
        # services show up once the grape answers (a first start must reach the grape).
        announces = [(f"peerbook:{config.network}:feed", self._feed.port)]
        for name in self.names:
            announces += [(name, self.api_server.port), (f"{name}:ws", self.ws_server.port)]
        await asyncio.gather(*(
            self._link.start_announcing(name, port, required=first_start)
            for name, port in announces
        ))  # fmt: skip

    async def _refuse_existing_network(self) -> None:
        """Two networks of one name on one grape would split every reader between two books:
        bootstrap only if no live peer answers for the name (stale records are ignored)."""
        name = f"peerbook:{self.config.network}:rpc"
        try:
            addresses = await self._link.lookup(name, fresh=True)
        except GrenacheError:
            return  # nobody announced (or the grape is unreachable: the announce will say)
        for address in addresses:
            try:
                status = await self._client.send(
                    address, name, {"action": "fetchStatus", "args": []}, timeout_s=2
                )
            except GrenacheError:
                continue
            peer = status["info"]["peer"] if isinstance(status, dict) else "?"
            raise StartupError(
                f"network {self.config.network} already exists (peer {peer} at {address} "
                "answers): join it with --secret-file, or choose another --network"
            )

    async def _wait_writable(self, timeout_s: float) -> None:
        """Wait for a leader; `PeerFailed` if the log stops for good meanwhile (it loads its
        snapshot in its first steps)."""
        raft = self._raft
        assert raft is not None
        status = _LogStatus(raft)
        try:
            async with asyncio.timeout(timeout_s):
                while not status.writable:
                    if raft.failed.is_set():
                        raise PeerFailed(raft.failure or "the replicated log failed")
                    await asyncio.sleep(0.01)
        except TimeoutError as exc:
            raise StartupError(f"no leader elected within {timeout_s:g} s") from exc

    def _raft_handler(self, endpoint: RaftEndpoint) -> Any:
        async def handle(key: str, payload: Json) -> Json:
            if key != RAFT_SERVICE_KEY:
                raise RpcError(f"ERR_SERVICE_UNKNOWN: this is a Raft server, not {key:.60}")
            return endpoint.receive(payload)

        return handle

    async def _api_handler(self, key: str, payload: Json) -> Json:
        if key == join_key(self.config.network):
            if self._join is None:
                raise RpcError("JoinBusy: this peer is still starting")
            return await self._join.handle(payload)
        if self._api is None:
            raise RpcError("ExchangeNotAvailable: this peer is still starting")
        return await self._api.handle(key, payload)

    async def _save_members(self) -> None:
        assert self._raft is not None
        saved = self.directory.members()
        while True:
            await asyncio.sleep(_MEMBERS_SAVE_S)
            members = self._raft.members
            if members != saved:
                try:
                    self.directory.save_members(members)
                    saved = members
                except OSError as exc:
                    _log.warning("cannot record the members: %s", exc)

    @staticmethod
    async def _release_memory() -> None:
        """Keep resident memory near what is in use: see `peerbook.node.memory`."""
        while memory.release():
            await asyncio.sleep(memory.RELEASE_EVERY_S)

    async def _take_a_free_seat(self, secret: bytes) -> None:
        """While this peer is a replica, look for a free voting seat (a voter left or was
        removed) and take it: restart the Raft member as a voter, be added as a joiner is,
        and record it; if another peer took the seat first, follow as a replica again. An
        addition whose answer was lost is recognised at the next look (this peer is then
        among the members)."""
        raft, identity, network = self._raft, self.identity, self.config.network
        assert raft is not None and identity is not None

        async def ask(op: str, timeout_s: float) -> JoinAnswer:
            return await request_join(
                self._client, network, secret, identity.peer, identity.raft, op,
                timeout_s=timeout_s,
            )  # fmt: skip

        while True:
            await asyncio.sleep(_SEAT_CHECK_S)
            try:
                answer = await ask("members", _SEAT_CHECK_S)
            except JoinRefused:
                continue
            members = answer.members
            if raft.address not in members:
                if answer.voters_full:  # no free seat (or another peer took it)
                    raft.change_role(replica=True, partners=members)
                    continue
                raft.change_role(replica=False, partners=members)
                try:
                    members = (await ask("add", _JOIN_TIMEOUT_S)).members
                except JoinFull:
                    raft.change_role(replica=True, partners=members)
                    continue
                except JoinRefused:  # unknown: the next look tells
                    continue
            raft.change_role(replica=False, partners=members)
            self.identity = identity._replace(replica=False)
            self.directory.save_identity(self.identity)
            _log.warning("took a free voting seat of network %s", network)
            return

    async def _leave(self, secret: bytes) -> list[str]:
        """Leave the network for good: hand leadership over, have another member remove this
        one, record it in the data directory, and stop (`stopping`). Returns the membership
        without this peer."""
        raft, identity = self._raft, self.identity
        assert raft is not None and identity is not None
        members = [m for m in raft.members if m != raft.address]
        if not identity.replica:
            await raft.hand_over_leadership()
            answer = await request_join(
                self._client, self.config.network, secret, identity.peer, identity.raft,
                "remove", timeout_s=_JOIN_TIMEOUT_S,
            )  # fmt: skip
            members = answer.members
        self.directory.save_left(self.config.network)
        _log.warning("left network %s; stopping", self.config.network)
        self.stopping.set()
        return members

    async def failed(self) -> str:
        """Wait until the peer stops serving for good on its own, and say why."""
        while self._raft is None:
            await asyncio.sleep(0.1)
        await self._raft.failed.wait()
        return self._raft.failure or "the replicated log failed"

    async def stop(self) -> None:
        """Stop announcing, finish in-flight requests, stop the log and close everything.
        A step that takes more than `_SLOW_STOP_STEP_S` is logged with its time, so that a
        slow stop says which part held it (a soak found peers that took over 20 s)."""
        for step, action in self._stop_steps():
            started = time.monotonic()
            pending = action()
            if pending is not None:
                await pending
            took = time.monotonic() - started
            if took > _SLOW_STOP_STEP_S:
                _log.warning("stopping: %s took %.1f s", step, took)

    def _stop_steps(self) -> Iterator[tuple[str, Callable[[], Awaitable[None] | None]]]:
        """The steps of `stop`, in order, for the parts that were started (a step that
        returns an awaitable is awaited)."""

        async def tasks() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        yield "the announcements", self._link.close
        if self.ws_server is not None:  # first: it closes the sockets on both ports
            yield "the WebSocket API", self.ws_server.stop
        if self.api_server is not None:
            yield "the HTTP API", self.api_server.stop
        if self._batcher is not None:
            yield "the writes in flight", self._batcher.close
        yield "the background tasks", tasks
        if self._feed is not None:
            yield "the feed", self._feed.stop
        if self.metrics_server is not None:
            yield "the metrics server", self.metrics_server.stop
        if self._raft is not None:
            yield "the replicated log", self._raft.close
        if self._raft_server is not None:
            yield "the Raft server", self._raft_server.stop
        yield "the RPC clients", self._close_clients
        if self._auth is not None:
            yield "the nonce log", self._auth.close
        if self._commands is not None:
            yield "the command log", self._commands.close
        if self._audit is not None:
            yield "the audit trail", self._audit.close
        if self._archive is not None:
            yield "the archive", self._archive.close

    async def _close_clients(self) -> None:
        await self._client.close()
        await self._raft_client.close()


async def run_peer(config: PeerConfig, ready: Callable[[dict[str, Any]], None]) -> None:
    """Start a peer, call ``ready`` with its ready line, and serve until SIGINT or SIGTERM
    (or until it left its network); then stop gracefully. A failed start stops what did
    start and raises.

    Raises:
        PeerFailed: the peer stopped serving on its own (after stopping what it ran).
    """
    peer = Peer(config)
    # Before anything starts: a SIGTERM right after the ready line (or during a long join)
    # is a graceful stop too, never the default action's death.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stopped = asyncio.create_task(stop.wait())
    try:
        starting = asyncio.create_task(peer.start())
        await asyncio.wait((starting, stopped), return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        starting.result()  # a failed start raises here
        ready(peer.ready_line())
        left = asyncio.create_task(peer.stopping.wait())
        failed = asyncio.create_task(peer.failed())
        await asyncio.wait((stopped, left, failed), return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, left, failed):
            task.cancel()
        if failed.done() and not failed.cancelled():
            raise PeerFailed(failed.result())
    finally:
        stopped.cancel()
        await peer.stop()
