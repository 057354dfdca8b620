"""Batching client commands into log entries, and handing each caller its own outcome.

Committing one entry costs a consensus round whatever it holds, so throughput comes from
putting many commands in one entry: `Batcher.submit` queues a command, and the queue is
proposed as one entry as soon as the proposer has room, a group commit. While fewer than
`pipeline_max` entries are in flight, a command is proposed at once (with every command
submitted in the same turn of the event loop), so a lone order waits for nothing; when the
pipeline is full, commands gather until an entry completes, so the busier the peer, the
larger its entries. `batch_max` and `batch_bytes_max` bound one entry; an optional
`linger_s` makes every batch wait that long for company.

The timestamp of every command is set here, when its entry is proposed (the log decides
time, not the engine), never decreasing from one batch to the next.

The proposer is a port (`Propose`): the Raft adapter in production, an in-memory log in tests.
It commits the entry, applies it on this peer, and returns the outcomes of its commands in
order; if it raises, every command of the batch gets that exception, because none of them is
known to have been applied (the caller decides whether to report "not available" or
"unknown outcome, retry with the same clientOrderId").
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from peerbook.errors import UnknownOutcomeError
from peerbook.replication.entries import ENTRY_BYTES_MAX, encode_entry
from peerbook.replication.state_machine import Outcome

__all__ = ["COMMAND_BYTES_MAX", "Batcher", "Propose"]

COMMAND_BYTES_MAX = 64 * 1024
"""Largest command accepted (encoded), as the RPC payload limit."""

Propose = Callable[[str], Awaitable[list[Outcome]]]
"""Commit an entry (its text) and return the outcomes of its commands once applied here."""


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Batcher:
    """Groups submitted commands into entries proposed by ``propose``.

    Args:
        proposer: this peer's id, recorded in each entry.
        propose: commits an entry and returns its outcomes (see `Propose`).
        linger_s: how long a batch waits for more commands before it is proposed (0: only
            until the end of the current turn of the event loop).
        pipeline_max: the most entries in flight at once; more commands wait for one of them.
        batch_max: the most commands in one entry.
        batch_bytes_max: the most encoded bytes of commands in one entry; half the entry
            limit by default, so that one client's large commands never push an entry of
            everybody's commands over the limit at which replicas refuse it.
        clock_ms: wall-clock milliseconds, for command timestamps (injectable for tests).
    """

    def __init__(
        self,
        proposer: str,
        propose: Propose,
        *,
        linger_s: float = 0.0,
        pipeline_max: int = 4,
        batch_max: int = 512,
        batch_bytes_max: int = ENTRY_BYTES_MAX // 2,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self._proposer = proposer
        self._propose = propose
        self._linger_s = linger_s
        self._pipeline_max = pipeline_max
        self._batch_max = batch_max
        self._batch_bytes_max = batch_bytes_max
        self._batch_bytes = 0
        self._clock_ms = clock_ms
        self._last_timestamp = 0
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[Outcome]]] = []
        self._flusher: asyncio.TimerHandle | asyncio.Handle | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, op: str, owner: str, args: list[Any]) -> Outcome:
        """Queue one command (section 7 ``op``, ``owner``, ``args``) and wait for its outcome.

        Raises:
            ValueError: the command encodes to more than `COMMAND_BYTES_MAX` bytes.
            Whatever the proposer raised for the command's batch.
        """
        command = {"op": op, "owner": owner, "args": args}
        size = len(encode_entry(owner, [command]))
        if size > COMMAND_BYTES_MAX:
            raise ValueError(f"command of {size} bytes exceeds {COMMAND_BYTES_MAX}")
        if self._batch_bytes + size > self._batch_bytes_max:
            self._flush()
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, future))
        self._batch_bytes += size
        if len(self._waiting) >= self._batch_max:
            self._flush()
        else:
            self._schedule()
        return await future

    def _schedule(self) -> None:
        """Arrange a flush if there is room in the pipeline (otherwise a completing entry
        arranges it)."""
        if self._flusher is not None or not self._waiting:
            return
        if len(self._in_flight) >= self._pipeline_max:
            return
        loop = asyncio.get_running_loop()
        if self._linger_s > 0:
            self._flusher = loop.call_later(self._linger_s, self._flush)
        else:
            self._flusher = loop.call_soon(self._flush)

    def _completed(self, task: "asyncio.Task[None]") -> None:
        self._in_flight.discard(task)
        self._schedule()

    def _flush(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        batch, self._waiting = self._waiting, []
        self._batch_bytes = 0
        if batch:
            timestamp = self._last_timestamp = max(self._last_timestamp, self._clock_ms())
            commands = [{**command, "timestamp": timestamp} for command, _ in batch]
            commit = self._commit(commands, [f for _, f in batch])
            task = asyncio.create_task(commit)
            self._in_flight.add(task)
            task.add_done_callback(self._completed)

    async def _commit(
        self, commands: list[dict[str, Any]], futures: list[asyncio.Future[Outcome]]
    ) -> None:
        try:
            outcomes = await self._propose(encode_entry(self._proposer, commands))
            if len(outcomes) != len(futures):
                # Applied here as something else (another term's entry at this index, or
                # passed over by a snapshot install): whether these commands were is unknown.
                raise UnknownOutcomeError(
                    f"entry of {len(futures)} commands applied with {len(outcomes)} outcomes"
                )
        except Exception as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, outcome in zip(futures, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def close(self) -> None:
        """Propose what is waiting and wait for every batch in flight."""
        self._flush()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
