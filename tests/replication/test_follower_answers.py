"""A real follower (pysyncobj behind our transport, real HTTP) answering a scripted leader:
what it keeps, answers and commits when an overlapping ``append_entries`` arrives."""

import asyncio
import itertools
import os
from typing import Any

from peerbook.engine import Engine
from peerbook.grenache import Link, RpcClient, RpcServer
from peerbook.grenache.protocol import Json
from peerbook.replication import OrderStateMachine
from peerbook.replication.codec import encode_message
from peerbook.replication.raft_adapter import RaftLog
from peerbook.replication.raft_transport import (
    RAFT_BODY_BYTES_MAX,
    RAFT_SERVICE_KEY,
    RaftEndpoint,
    _mac,
)

NO_OP = b"\x01"  # the library's no-op command: applying it touches no state machine
TERM = 1000  # far above any term the lone follower reaches by its own elections meanwhile


def entries(*terms: int, start: int) -> list[tuple[bytes, int, int]]:
    return [(NO_OP, index, term) for index, term in enumerate(terms, start)]


class ScriptedLeader:
    """Sends signed Raft batches straight to the follower's endpoint and collects the
    follower's answers at its own Raft server."""

    def __init__(self, secret: bytes, follower: RaftEndpoint) -> None:
        self._secret = secret
        self._follower = follower
        self._counter = itertools.count(1)
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        endpoint = RaftEndpoint(secret)
        endpoint.deliver = self._collect
        self._endpoint = endpoint
        self.server = RpcServer(self._handle, port=0, body_bytes_max=RAFT_BODY_BYTES_MAX)

    async def _handle(self, key: str, payload: Json) -> Json:
        assert key == RAFT_SERVICE_KEY
        return self._endpoint.receive(payload)

    def _collect(self, sender: str, replica: bool, messages: list[Any]) -> None:
        for message in messages:
            if message.get("type") == "next_node_idx":
                self.answers.put_nowait(message)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    async def append(self, term: int, prev: tuple[int, int], new: list[Any], commit: int) -> int:
        """Send one ``append_entries``; the ``next_node_idx`` the follower answers."""
        message = {
            "type": "append_entries",
            "term": term,
            "commit_index": commit,
            "prevLogIdx": prev[0],
            "prevLogTerm": prev[1],
            "entries": new,
        }
        body = "[" + encode_message(message) + "]"
        n = next(self._counter)
        mac = _mac(self._secret, self.address, "boot", n, body)
        payload = {"from": self.address, "boot": "boot", "n": n, "messages": body, "mac": mac}
        self._follower.receive(payload)
        answer = await asyncio.wait_for(self.answers.get(), 10)
        assert answer["success"], answer
        return int(answer["next_node_idx"])


def test_a_follower_keeps_and_claims_only_what_it_shares_with_the_leader() -> None:
    async def scenario() -> None:
        secret = os.urandom(32)
        endpoint = RaftEndpoint(secret)

        async def handle(key: str, payload: Json) -> Json:
            return endpoint.receive(payload)

        server = RpcServer(handle, port=0, body_bytes_max=RAFT_BODY_BYTES_MAX)
        leader = ScriptedLeader(secret, endpoint)
        client = RpcClient(Link("http://127.0.0.1:9"))
        await server.start()
        await leader.server.start()
        follower = RaftLog(
            f"127.0.0.1:{server.port}",
            [leader.address],
            OrderStateMachine(Engine()),
            endpoint=endpoint,
            client=client,
            secret=secret,
        )
        member = follower._member
        try:
            # The leader re-sends two entries of an older term, then two of its own: the
            # follower holds and acknowledges all four (the leader may now commit 5 with it).
            old_and_own = entries(TERM - 1, TERM - 1, TERM, TERM, start=2)
            assert await leader.append(TERM, (1, 0), old_and_own, commit=0) == 6
            # A message the leader sent earlier arrives late: it ends at 2. Cutting after 2
            # (or after the commit index) would drop entries counted towards a commit.
            assert await leader.append(TERM, (1, 0), old_and_own[:1], commit=0) == 6
            assert len(member._SyncObj__raftLog) == 5

            # A new leader whose log shares only 1..3 with the follower (4..5 were a deposed
            # leader's): the follower keeps 4..5 until a conflict, but claims and commits 3.
            assert await leader.append(TERM + 1, (3, TERM - 1), [], commit=5) == 4
            assert len(member._SyncObj__raftLog) == 5
            assert member.raftCommitIndex == 3
            # The conflict arrives: the follower cuts from it and takes the leader's entries.
            assert await leader.append(TERM + 1, (3, TERM - 1), entries(TERM + 1, start=4), 5) == 5
            assert [entry[2] for entry in member._SyncObj__raftLog][3:] == [TERM + 1]
        finally:
            follower.close()
            await server.stop()
            await leader.server.stop()
            await client.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
