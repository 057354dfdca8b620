"""Joining a network: a new peer proves the cluster secret and is added to the Raft membership.

A peer started without ``--bootstrap`` looks up ``peerbook:NET:rpc`` on its grape and asks one
of the peers found, under the service key ``peerbook:NET:join`` (answered by every peer's API
server, announced by none), first for the current members, then, once its own Raft member is
running with those members as partners, to be added. Both requests carry a proof: the
HMAC-SHA256, under the cluster secret, of the request's operation, network, peer, Raft
address and a microsecond nonce that must be within a minute of the receiver's clock.

When the voting members are already `voters_max`, the new peer does not ask to be added: it
follows as a non-voting replica (it receives and applies the whole log, never votes), and a
joiner that loses that race (``JoinFull`` on ``add``) becomes a replica too.

The addition is the library's membership change, one at a time: a peer that is asked while
another change is in flight answers ``busy`` and the joiner asks again. Adding a member that
is already one succeeds, so a joiner that lost the answer can simply retry.

Leaving and removal use the same proof. ``remove`` (``peerbook remove PEER``) takes a voting
member out of the membership; any member but the one removed carries it out (a member cannot
commit its own removal: the leader stops replicating to it as soon as the change is in the
log), and removing a peer that is no member succeeds, so it can be retried. ``leave``
(``peerbook leave``) is sent to the leaving peer itself, which hands leadership over if it
has it, has another member remove it, records in its data directory that it left, and stops.
"""

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from peerbook.errors import GrenacheError, PeerbookError, RpcError
from peerbook.grenache import RpcClient
from peerbook.grenache.protocol import Json
from peerbook.replication.raft_transport import member_id, member_peer

__all__ = [
    "JoinAnswer",
    "JoinFull",
    "JoinRefused",
    "JoinService",
    "Membership",
    "join_key",
    "request_join",
    "request_leave",
]

_log = logging.getLogger(__name__)
_PROOF_WINDOW_US = 60_000_000
_OPS = ("members", "add", "remove", "leave")


def join_key(network: str) -> str:
    """The service key join requests are sent under."""
    return f"peerbook:{network}:join"


class JoinRefused(PeerbookError):
    """The network refused this peer, or no peer of it could be reached in time."""


class JoinFull(JoinRefused):
    """The voting membership is full: join as a non-voting replica instead."""


class JoinAnswer(NamedTuple):
    """The voting members, and whether they are as many as the network takes."""

    members: list[str]
    voters_full: bool


class Membership(Protocol):
    """The replicated log's membership, as the join service needs it."""

    @property
    def members(self) -> list[str]: ...

    async def add_member(self, node_id: str) -> None: ...

    async def remove_member(self, node_id: str) -> None: ...


def _proof(secret: bytes, op: str, network: str, peer: str, raft: str, nonce: int) -> str:
    message = f"join\n{op}\n{network}\n{peer}\n{raft}\n{nonce}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class JoinService:
    """Answers join requests on an existing member.

    Args:
        network: the network name (part of what the proof covers).
        secret: the cluster secret.
        membership: this member's replicated log.
        self_id: this member's node id (`member_id`).
        leave: makes this peer leave the network and returns the membership without it
            (answers ``leave`` requests).
        voters_max: the largest voting membership this service will grow.
    """

    def __init__(
        self,
        network: str,
        secret: bytes,
        membership: Membership,
        *,
        self_id: str,
        leave: Callable[[], Awaitable[list[str]]],
        voters_max: int = 5,
    ) -> None:
        self._network = network
        self._secret = secret
        self._membership = membership
        self._self_id = self_id
        self._leave = leave
        self._voters_max = voters_max
        self._changing = asyncio.Lock()

    async def handle(self, payload: Json) -> Json:
        """Answer one join request; RpcError for anything refused."""
        if not isinstance(payload, dict):
            raise RpcError("JoinRefused: request is not an object")
        op, peer, raft = payload.get("op"), payload.get("peer"), payload.get("raft")
        nonce, proof = payload.get("nonce"), payload.get("proof")
        if op not in _OPS or not isinstance(peer, str) or not isinstance(raft, str):
            raise RpcError("JoinRefused: malformed join request")
        if type(nonce) is not int or not isinstance(proof, str):
            raise RpcError("JoinRefused: malformed join request")
        if abs(nonce - time.time_ns() // 1000) > _PROOF_WINDOW_US:
            raise RpcError("JoinRefused: the request's clock is more than 60 s off")
        expected = _proof(self._secret, op, self._network, peer, raft, nonce)
        if not hmac.compare_digest(expected, proof):
            raise RpcError("JoinRefused: bad proof of the cluster secret")
        if op in ("members", "add") and peer == member_peer(self._self_id):
            # A replica looking for a seat finds itself among the announced peers; only
            # the others know whether it has one.
            raise RpcError("JoinElsewhere: a peer cannot answer its own join request")
        if op == "remove":
            return await self._remove(peer)
        if op == "leave":
            if peer != member_peer(self._self_id):
                raise RpcError(f"JoinRefused: this is not peer {peer:.40}; ask it to leave")
            members = await self._leave()
            return {"members": members, "voters_full": len(members) >= self._voters_max}
        node = member_id(peer, raft)
        members = self._membership.members
        if op == "members" or node in members:
            return {"members": members, "voters_full": len(members) >= self._voters_max}
        if any(m.partition("@")[0] == peer for m in members):
            raise RpcError(f"JoinRefused: peer id {peer} is taken by another member")
        if len(members) >= self._voters_max:
            raise RpcError(
                f"JoinFull: the network has {len(members)} voting members, the most it "
                "takes; follow as a non-voting replica"
            )
        if self._changing.locked():
            raise RpcError("JoinBusy: another membership change is in progress")
        async with self._changing:
            try:
                await self._membership.add_member(node)
            except PeerbookError as exc:
                raise RpcError(f"JoinBusy: {exc}") from exc
        _log.info("added %s to the membership", node)
        return self._answer()

    async def _remove(self, peer: str) -> Json:
        found = [m for m in self._membership.members if member_peer(m) == peer]
        if not found:
            return self._answer()
        if found[0] == self._self_id:
            raise RpcError("JoinElsewhere: a member cannot carry out its own removal")
        if self._changing.locked():
            raise RpcError("JoinBusy: another membership change is in progress")
        async with self._changing:
            try:
                await self._membership.remove_member(found[0])
            except PeerbookError as exc:
                raise RpcError(f"JoinBusy: {exc}") from exc
        _log.info("removed %s from the membership", found[0])
        return self._answer()

    def _answer(self) -> Json:
        members = self._membership.members
        return {"members": members, "voters_full": len(members) >= self._voters_max}


async def request_join(
    client: RpcClient,
    network: str,
    secret: bytes,
    peer: str,
    raft: str,
    op: str,
    *,
    timeout_s: float,
) -> JoinAnswer:
    """Send one join request (``op`` ``members``, ``add`` or ``remove``) to any peer of the
    network and return its answer; retries other peers and busy answers until ``timeout_s``.

    Raises:
        JoinFull: ``add`` found the voting membership full.
        JoinRefused: refused for good (bad secret, taken id), or no answer in time.
    """
    deadline = time.monotonic() + timeout_s
    last = "no peer of the network answered"
    name = f"peerbook:{network}:rpc"
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        try:
            peers = await client.link.lookup(name, fresh=attempt > 1)
        except GrenacheError as exc:
            peers, last = [], str(exc)
        random.shuffle(peers)
        for address in peers:
            nonce = time.time_ns() // 1000
            payload: dict[str, Any] = {
                "op": op,
                "peer": peer,
                "raft": raft,
                "nonce": nonce,
                "proof": _proof(secret, op, network, peer, raft, nonce),
            }
            try:
                reply = await client.send(address, join_key(network), payload, timeout_s=15)
            except RpcError as exc:
                if str(exc).startswith("JoinElsewhere"):
                    continue  # the peer to remove was asked: ask another
                if str(exc).startswith("JoinFull"):
                    raise JoinFull(str(exc)) from exc
                if str(exc).startswith("JoinRefused"):
                    raise JoinRefused(str(exc)) from exc
                last = str(exc)
                break  # busy: ask again after a pause
            except GrenacheError as exc:
                client.link.forget(name, address)  # a stale announcement: try the next peer
                last = str(exc)
                continue
            members = reply.get("members") if isinstance(reply, dict) else None
            full = reply.get("voters_full") if isinstance(reply, dict) else None
            names = isinstance(members, list) and all(isinstance(m, str) for m in members)
            if names and isinstance(full, bool):
                assert isinstance(members, list)
                return JoinAnswer(members, full)
            last = f"malformed join answer {reply!r:.80}"
        await asyncio.sleep(min(0.2 * attempt, 1.0))
    raise JoinRefused(f"could not join network {network} in {timeout_s:g} s: {last}")


async def request_leave(
    client: RpcClient, network: str, secret: bytes, peer: str, *, timeout_s: float
) -> JoinAnswer:
    """Ask ``peer`` itself to leave the network; returns the membership without it, once
    its removal is committed (the peer then stops).

    Raises:
        JoinRefused: refused (bad secret), or the peer did not answer in time.
    """
    name = f"peerbook:{network}:peer:{peer}"
    try:
        addresses = await client.link.lookup(name, fresh=True)
    except GrenacheError as exc:
        raise JoinRefused(f"peer {peer} of network {network} is not announced: {exc}") from exc
    nonce = time.time_ns() // 1000
    payload = {"op": "leave", "peer": peer, "raft": "", "nonce": nonce,
               "proof": _proof(secret, "leave", network, peer, "", nonce)}  # fmt: skip
    try:
        reply = await client.send(addresses[0], join_key(network), payload, timeout_s=timeout_s)
    except (RpcError, GrenacheError) as exc:
        raise JoinRefused(f"peer {peer} did not leave: {exc}") from exc
    members = reply.get("members") if isinstance(reply, dict) else None
    if not (isinstance(members, list) and all(isinstance(m, str) for m in members)):
        raise JoinRefused(f"malformed answer to leave: {reply!r:.80}")
    return JoinAnswer(members, bool(reply.get("voters_full")))
