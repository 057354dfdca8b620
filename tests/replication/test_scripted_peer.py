"""A real member (pysyncobj behind our transport, real WebSocket RPC) facing a scripted peer that sends
exactly the Raft messages a test needs: what the member keeps, answers and commits."""

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pysyncobj.config import SERIALIZER_STATE
from pysyncobj.monotonic import monotonic
from pysyncobj.node import Node

from peerbook.engine import Engine
from peerbook.grenache import Link, WsRpcClient
from peerbook.grenache.protocol import Json
from peerbook.replication import OrderStateMachine
from peerbook.replication.codec import decode_message, encode_message
from peerbook.replication.raft_adapter import RaftLog
from peerbook.replication.raft_transport import (
    RAFT_SERVICE_KEY,
    RaftEndpoint,
    _mac,
    raft_server,
)
from peerbook.replication.snapshot_store import SnapshotStore

NO_OP = b"\x01"  # the library's no-op command: applying it touches no state machine
TERM = 1000  # far above any term the lone member reaches by its own elections meanwhile


def entries(*terms: int, start: int) -> list[tuple[bytes, int, int]]:
    return [(NO_OP, index, term) for index, term in enumerate(terms, start)]


class ScriptedPeer:
    """The other member of a two-member cluster, played by the test: sends signed Raft batches
    straight to the member's endpoint and collects what the member sends, by type."""

    def __init__(self, secret: bytes, member: RaftEndpoint) -> None:
        self._secret = secret
        self._member = member
        self._counter = itertools.count(1)
        self._received: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        endpoint = RaftEndpoint(secret)
        endpoint.deliver = self._collect
        self._endpoint = endpoint
        self.server = raft_server(self._handle)

    async def _handle(self, key: str, payload: Json) -> Json:
        assert key == RAFT_SERVICE_KEY
        return self._endpoint.receive(payload)

    def _collect(
        self, sender: str, replica: bool, messages: list[Any], answerable: bool
    ) -> dict[str, Any] | None:
        for message in messages:
            self._queue(message["type"]).put_nowait(message)
        return None  # the script sends its answers as requests of its own

    def _queue(self, kind: str) -> asyncio.Queue[dict[str, Any]]:
        return self._received.setdefault(kind, asyncio.Queue())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def send(self, message: dict[str, Any], answerable: bool = False) -> list[Any]:
        """Send one message; the messages the member answered with in the reply (only when
        ``answerable``: otherwise its answers come as requests of its own)."""
        body = "[" + encode_message(message) + "]"
        n = next(self._counter)
        mac = _mac(self._secret, self.address, "boot", n, body)
        payload = {"from": self.address, "boot": "boot", "n": n, "messages": body, "mac": mac}
        reply = self._member.receive({**payload, "answerable": True} if answerable else payload)
        answers = reply.get("answers")
        if answers is None:
            return []
        assert answers["from"] != self.address  # signed as the member's own batch
        return list(decode_message(answers["messages"]))

    async def next(self, kind: str) -> dict[str, Any]:
        """The next message of this type the member sent (waits up to 10 s)."""
        return await asyncio.wait_for(self._queue(kind).get(), 10)

    async def append(self, term: int, prev: tuple[int, int], new: list[Any], commit: int) -> int:
        """Send one ``append_entries`` as a leader; the ``next_node_idx`` the member answers."""
        self.send(
            {
                "type": "append_entries",
                "term": term,
                "commit_index": commit,
                "prevLogIdx": prev[0],
                "prevLogTerm": prev[1],
                "entries": new,
            }
        )
        answer = await self.next("next_node_idx")
        assert answer["success"], answer
        assert answer["term"] == term
        return int(answer["next_node_idx"])


@asynccontextmanager
async def member_and_peer(
    data_dir: Path | None = None, snapshot_entries: int | None = None
) -> AsyncIterator[tuple[RaftLog, ScriptedPeer]]:
    """A real member (with its journal and snapshots in ``data_dir``, if given, compacted
    every ``snapshot_entries``) whose only partner is a scripted peer."""
    secret = os.urandom(32)
    endpoint = RaftEndpoint(secret)

    async def handle(key: str, payload: Json) -> Json:
        return endpoint.receive(payload)

    server = raft_server(handle)
    peer = ScriptedPeer(secret, endpoint)
    client = WsRpcClient(Link("http://127.0.0.1:9"))
    await server.start()
    await peer.server.start()
    member = RaftLog(
        f"127.0.0.1:{server.port}",
        [peer.address],
        OrderStateMachine(Engine()),
        endpoint=endpoint,
        client=client,
        secret=secret,
        data_dir=data_dir,
        snapshot_entries=snapshot_entries,
    )
    try:
        yield member, peer
    finally:
        member.close()
        await server.stop()
        await peer.server.stop()
        await client.close()


def test_a_follower_keeps_and_claims_only_what_it_shares_with_the_leader() -> None:
    async def scenario() -> None:
        async with member_and_peer() as (follower, leader):
            log = follower._member._SyncObj__raftLog
            # The leader re-sends two entries of an older term, then two of its own: the
            # follower holds and acknowledges all four (the leader may now commit 5 with it).
            old_and_own = entries(TERM - 1, TERM - 1, TERM, TERM, start=2)
            assert await leader.append(TERM, (1, 0), old_and_own, commit=0) == 6
            # A message the leader sent earlier arrives late: it ends at 2. Cutting after 2
            # (or after the commit index) would drop entries counted towards a commit.
            assert await leader.append(TERM, (1, 0), old_and_own[:1], commit=0) == 6
            assert len(log) == 5

            # A new leader whose log shares only 1..3 with the follower (4..5 were a deposed
            # leader's): the follower keeps 4..5 until a conflict, but claims and commits 3.
            assert await leader.append(TERM + 1, (3, TERM - 1), [], commit=5) == 4
            assert len(log) == 5
            assert follower._member.raftCommitIndex == 3
            # The conflict arrives: the follower cuts from it and takes the leader's entries.
            assert await leader.append(TERM + 1, (3, TERM - 1), entries(TERM + 1, start=4), 5) == 5
            assert [entry[2] for entry in log][3:] == [TERM + 1]

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_follower_answers_in_the_reply_only_when_nothing_of_its_own_is_on_its_way() -> None:
    """An answer goes back in the reply to the leader's request only if that keeps it behind
    everything the follower sent the leader before: not while a request of the follower's
    to the leader is still on its way (it could arrive after the reply)."""

    async def scenario() -> None:
        async with member_and_peer() as (follower, leader):
            transport = follower._member._SyncObj__transport

            def append(index: int) -> dict[str, Any]:
                return {
                    "type": "append_entries", "term": TERM, "commit_index": 0,
                    "prevLogIdx": index - 1, "prevLogTerm": TERM if index > 2 else 0,
                    "entries": entries(TERM, start=index),
                }  # fmt: skip

            # Not asked to answer in the reply: the answer comes as a request.
            assert leader.send(append(2)) == []
            assert (await leader.next("next_node_idx"))["next_node_idx"] == 3
            async with asyncio.timeout(5):  # until nothing of the follower's is on its way
                while leader.address in transport._posting:
                    await asyncio.sleep(0.001)
            assert transport._outboxes[leader.address].empty()
            [answer] = leader.send(append(3), answerable=True)
            assert (answer["type"], answer["next_node_idx"]) == ("next_node_idx", 4)
            transport._posting.add(leader.address)  # as while a request of its own is out
            assert leader.send(append(4), answerable=True) == []
            transport._posting.discard(leader.address)
            assert (await leader.next("next_node_idx"))["next_node_idx"] == 5

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_leader_ignores_an_answer_given_in_an_earlier_term() -> None:
    """An answer sent to this member while it led in an earlier term, arriving late, says
    nothing about its log now; counted, it would commit an entry no majority holds."""

    async def scenario() -> None:
        async with member_and_peer() as (leader, peer):
            for _ in range(20):  # vote for the member's latest election until it leads
                asked = await peer.next("pre_vote")
                peer.send({"type": "pre_vote_response", "term": asked["term"], "granted": True})
                vote = await peer.next("request_vote")
                peer.send({"type": "response_vote", "term": vote["term"]})
                await asyncio.sleep(0.1)
                if leader.role == "leader":
                    break
            assert leader.role == "leader"
            term = leader._member.raftCurrentTerm
            assert (await peer.next("append_entries"))["term"] == term
            committed = leader._member.raftCommitIndex
            holds = committed + 1  # the no-op the new leader appended in its term
            answer = {"type": "next_node_idx", "next_node_idx": holds + 1, "reset": False}
            peer.send({**answer, "success": True, "term": term - 1})
            await asyncio.sleep(0.5)
            assert leader._member.raftCommitIndex == committed
            peer.send({**answer, "success": True, "term": term})  # the same, in this term
            async with asyncio.timeout(5):
                while leader._member.raftCommitIndex < holds:
                    await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(scenario(), 60))


async def snapshot_file(directory: Path, last: int, members: list[str]) -> tuple[bytes, bool, bool]:
    """A snapshot of an empty machine whose last entry is ``last`` (of term `TERM`), as the
    one chunk a leader would send."""
    store = SnapshotStore(directory / "leader.snapshot", OrderStateMachine(Engine()), print)
    ends = ((NO_OP, last, TERM), (NO_OP, last - 1, TERM), {Node(m) for m in members})
    store.serialize(str(directory / "leader.snapshot.tmp"), ends)
    async with asyncio.timeout(30):
        while store.check() != SERIALIZER_STATE.SUCCESS:
            await asyncio.sleep(0.01)
    return store.path.read_bytes(), True, True


def test_a_follower_sent_an_older_snapshot_keeps_its_log_after_it(tmp_path: Path) -> None:
    """Raft §7: a follower whose log holds the snapshot's last entry keeps the entries after
    it (and its commit index); pysyncobj alone clears the whole log, entries it acknowledged
    and committed included."""

    async def scenario() -> None:
        (tmp_path / "member").mkdir()
        async with member_and_peer(tmp_path / "member") as (follower, leader):
            log = follower._member._SyncObj__raftLog
            assert await leader.append(TERM, (1, 0), entries(*[TERM] * 8, start=2), 9) == 10
            async with asyncio.timeout(5):
                while follower._member.raftCommitIndex < 9:
                    await asyncio.sleep(0.01)
            # The leader's snapshot ends at 5, which the follower holds with the same term.
            chunk = await snapshot_file(tmp_path, 5, [leader.address, follower.address])
            leader.send(
                {"type": "append_entries", "term": TERM, "commit_index": 9, "serialized": chunk}
            )
            answer = await leader.next("next_node_idx")
            assert answer["success"]
            assert [entry[1] for entry in log] == list(range(4, 10))
            assert follower._member.raftCommitIndex == 9

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_snapshot_chunk_does_not_commit_a_log_nothing_checked() -> None:
    """The library adopts the leader's commit index with every snapshot chunk, up to its own
    log's end: here a deposed leader's entries 4..9, which it would then apply."""

    async def scenario() -> None:
        async with member_and_peer() as (follower, leader):
            assert await leader.append(TERM, (1, 0), entries(*[TERM] * 8, start=2), 3) == 10
            chunk = (b"the first of several chunks", True, False)
            leader.send(
                {"type": "append_entries", "term": TERM + 1, "commit_index": 9, "serialized": chunk}
            )
            async with asyncio.timeout(5):  # handled once the member is in the new term
                while follower._member.raftCurrentTerm != TERM + 1:
                    await asyncio.sleep(0.001)
            assert follower._member.raftCommitIndex == 3

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_snapshot_older_than_the_followers_own_is_ignored(tmp_path: Path) -> None:
    """Raft §7: a follower whose own snapshot is newer ignores the leader's; the library
    alone installed it and went back in time, entries acknowledged after it lost."""

    async def scenario() -> None:
        (tmp_path / "member").mkdir()
        async with member_and_peer(tmp_path / "member", snapshot_entries=8) as (follower, leader):
            log = follower._member._SyncObj__raftLog
            assert await leader.append(TERM, (1, 0), entries(*[TERM] * 19, start=2), 20) == 21
            async with asyncio.timeout(30):  # the follower compacts its own log
                while log[0][1] <= 6:
                    await asyncio.sleep(0.01)
            held = [entry[1] for entry in log]
            chunk = await snapshot_file(tmp_path, 5, [leader.address, follower.address])
            leader.send(
                {"type": "append_entries", "term": TERM, "commit_index": 20, "serialized": chunk}
            )
            # The next heartbeat is answered after the snapshot was handled.
            assert await leader.append(TERM, (20, TERM), [], 20) == 21
            assert [entry[1] for entry in log] == held
            assert follower._member.raftCommitIndex == 20

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_follower_slow_to_install_a_snapshot_does_not_then_stand_for_election(
    tmp_path: Path,
) -> None:
    """The election timeout measures the leader's silence: a follower that spent longer than
    the longest timeout installing the leader's snapshot must not depose it right after."""

    async def scenario() -> None:
        (tmp_path / "member").mkdir()
        async with member_and_peer(tmp_path / "member") as (follower, leader):
            assert await leader.append(TERM, (1, 0), entries(TERM, start=2), 2) == 3
            install = follower.machine.install

            def slow_install(data: bytes, source: Path | None = None) -> None:
                time.sleep(1.6)  # longer than the library's longest election timeout, 1.4 s
                install(data, source)

            follower.machine.install = slow_install  # type: ignore[method-assign]
            chunk = await snapshot_file(tmp_path, 30, [leader.address, follower.address])
            leader.send(
                {"type": "append_entries", "term": TERM, "commit_index": 30, "serialized": chunk}
            )
            async with asyncio.timeout(10):
                while follower._member.raftLastApplied < 30:
                    await asyncio.sleep(0.01)
            with pytest.raises(TimeoutError):  # no vote asked for before a timeout's minimum
                await asyncio.wait_for(leader.next("request_vote"), 0.2)

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_follower_whose_own_loop_stalled_does_not_then_stand_for_election() -> None:
    """The leader's heartbeats sent during a member's own stall wait unread in its socket,
    and the library checks its election timeout before it reads them: the stall must not
    count as the leader's silence."""

    async def scenario() -> None:
        async with member_and_peer() as (_, leader):
            assert await leader.append(TERM, (1, 0), entries(TERM, start=2), 2) == 3
            time.sleep(1.6)  # the member's loop is blocked longer than any election timeout
            await asyncio.sleep(0.02)  # it ticks again before the next heartbeat arrives
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(leader.next("request_vote"), 0.15)

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_stall_moves_on_only_the_timers_nothing_set_since_the_last_tick() -> None:
    """After a stall, the timers a tick left are moved on by it; one that a message handled
    between ticks set afresh (the transport hands messages over as they arrive) is not, or
    the next election, or a leader's step-down, would come a whole stall late."""

    async def scenario() -> None:
        async with member_and_peer() as (member, leader):
            assert await leader.append(TERM, (1, 0), entries(TERM, start=2), 2) == 3
            await asyncio.sleep(0.05)  # a tick has ended since
            library = member._member
            heard = library._SyncObj__lastResponseTime  # a leader's; this member's is empty
            heard[Node("127.0.0.1:9")] = monotonic()
            member._after_tick = member._timers()  # as a tick ending now leaves them
            left_deadline, (left_heard,) = library._SyncObj__raftElectionDeadline, heard.values()
            member._forgive(5.0)  # nothing set them since the tick: both move on
            assert library._SyncObj__raftElectionDeadline == left_deadline + 5.0
            assert list(heard.values()) == [left_heard + 5.0]
            member._after_tick = member._timers()
            fresh = monotonic() + 1.0  # as a leader's message handled meanwhile sets it
            library._SyncObj__raftElectionDeadline = fresh
            answered = heard[Node("127.0.0.1:9")] = monotonic()  # as an answer sets it
            member._forgive(5.0)
            assert library._SyncObj__raftElectionDeadline == fresh
            assert list(heard.values()) == [answered]

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_member_asks_for_pre_votes_and_stands_only_once_a_majority_grants_one() -> None:
    """Pre-vote (Raft thesis 9.6): a member whose election timer runs out first asks whether
    it would be voted for, at its term plus one, without taking that term; it stands (and
    takes it) only when a majority, itself included, said yes."""

    async def scenario() -> None:
        async with member_and_peer() as (member, peer):
            asked = await peer.next("pre_vote")
            term = member._member.raftCurrentTerm
            assert asked["term"] == term + 1
            peer.send({"type": "pre_vote_response", "term": asked["term"], "granted": False})
            with pytest.raises(TimeoutError):  # refused: no election, no new term
                await asyncio.wait_for(peer.next("request_vote"), 0.3)
            assert member._member.raftCurrentTerm == term
            asked = await peer.next("pre_vote")  # its timer ran out again
            assert asked["term"] == term + 1
            peer.send({"type": "pre_vote_response", "term": asked["term"], "granted": True})
            vote = await peer.next("request_vote")
            assert vote["term"] == term + 1 == member._member.raftCurrentTerm

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_member_that_heard_its_leader_lately_refuses_a_pre_vote() -> None:
    """A follower refuses pre-votes while its leader is alive, so that a member that lagged
    cannot depose the leader by standing; once the leader has been silent for the shortest
    election timeout it grants one to a member whose log is as up to date as its own, and
    answering never changes its term."""

    async def scenario() -> None:
        async with member_and_peer() as (follower, leader):
            assert await leader.append(TERM, (1, 0), entries(TERM, start=2), 2) == 3
            up_to_date = {"type": "pre_vote", "term": TERM + 1, "last_log_index": 2,
                          "last_log_term": TERM}  # fmt: skip
            leader.send(up_to_date)
            assert (await leader.next("pre_vote_response"))["granted"] is False
            await asyncio.sleep(0.45)  # the leader is silent past the shortest timeout (0.4 s)
            leader.send({**up_to_date, "last_log_index": 1, "last_log_term": 1})  # behind
            assert (await leader.next("pre_vote_response"))["granted"] is False
            leader.send(up_to_date)
            assert (await leader.next("pre_vote_response"))["granted"] is True
            assert follower._member.raftCurrentTerm == TERM

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_pre_vote_granted_before_the_leader_was_heard_again_lapses() -> None:
    """A majority's grant counts for the moment it was given: once the leader is heard from
    again, the next time the timer runs out the member asks again rather than stand."""

    async def scenario() -> None:
        async with member_and_peer() as (member, leader):
            asked = await leader.next("pre_vote")
            term = member._member.raftCurrentTerm
            leader.send({"type": "pre_vote_response", "term": asked["term"], "granted": True})
            leader.send({"type": "append_entries", "term": term, "commit_index": 0,
                         "prevLogIdx": 1, "prevLogTerm": 0, "entries": []})  # fmt: skip
            while (await leader.next("next_node_idx"))["term"] != term:
                pass
            # Both arrived in one turn of the loop, so the tick took them together: the grant
            # first, then the leader.
            assert leader._queue("request_vote").empty()
            stood = member._member.raftCurrentTerm
            assert stood == term
            # The leader goes silent: the member must ask before it stands again.
            asked = await leader.next("pre_vote")
            assert asked["term"] == stood + 1
            assert leader._queue("request_vote").empty()
            assert member._member.raftCurrentTerm == stood

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_member_ahead_of_a_live_leader_stands_without_asking() -> None:
    """The library ignores, without an answer, a leader whose term is below its own, so that
    leader never learns the higher term; asking would be refused by every member hearing
    that leader, and the member would be cut off for good. It stands, as Raft without
    pre-vote does, and its term reaches the others."""

    async def scenario() -> None:
        async with member_and_peer() as (_, peer):
            asked = await peer.next("pre_vote")
            peer.send({"type": "pre_vote_response", "term": asked["term"], "granted": True})
            vote = await peer.next("request_vote")  # it stands; the vote is never answered
            ahead = vote["term"]
            # A leader of the term before keeps sending: the member ignores it, and stands
            # again when its timer runs out, without a pre-vote first.
            for _ in range(40):
                peer.send({"type": "append_entries", "term": ahead - 1, "commit_index": 0,
                           "prevLogIdx": 1, "prevLogTerm": 0, "entries": []})  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    vote = await asyncio.wait_for(peer.next("request_vote"), 0.1)
                    break
            assert vote["term"] > ahead
            assert peer._queue("pre_vote").empty()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_follower_handles_append_entries_on_arrival_and_a_snapshot_chunk_at_its_tick() -> None:
    """An ``append_entries`` is handed to the library as it arrives (a commit waits for no
    follower tick); a snapshot chunk waits for the tick (installing can outlast the sender's
    reply timeout), and what arrives after it waits behind it, in order."""

    async def scenario() -> None:
        async with member_and_peer() as (follower, leader):
            log = follower._member._SyncObj__raftLog
            assert await leader.append(TERM, (1, 0), entries(TERM, start=2), 0) == 3
            leader.send(
                {"type": "append_entries", "term": TERM, "commit_index": 0,
                 "prevLogIdx": 2, "prevLogTerm": TERM, "entries": entries(TERM, start=3)}
            )  # fmt: skip
            assert len(log) == 3  # no await since it was sent: no tick ran in between
            assert (await leader.next("next_node_idx"))["next_node_idx"] == 4
            chunk = (b"the first of several chunks", True, False)
            leader.send(
                {"type": "append_entries", "term": TERM + 1, "commit_index": 0,
                 "serialized": chunk}
            )  # fmt: skip
            leader.send(
                {"type": "append_entries", "term": TERM + 1, "commit_index": 0,
                 "prevLogIdx": 3, "prevLogTerm": TERM, "entries": entries(TERM + 1, start=4)}
            )  # fmt: skip
            assert len(log) == 3 and follower._member.raftCurrentTerm == TERM  # both wait
            async with asyncio.timeout(5):  # the tick hands both over, the chunk first
                while len(log) < 4:
                    await asyncio.sleep(0.001)
            assert follower._member.raftCurrentTerm == TERM + 1
            assert [entry[2] for entry in log][-1] == TERM + 1

    asyncio.run(asyncio.wait_for(scenario(), 60))
