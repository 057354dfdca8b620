"""Grenache for Python: the grape client (Link), RPC over HTTP and WebSocket, pub/sub, and an
embedded grape.

Byte-compatible with the Node.js packages (grenache-grape 1.0.0, grenache-nodejs-link, -http,
-ws), with timeouts on every call and errors that cannot be mistaken for results.
The wire formats live in `peerbook.grenache.protocol`, without I/O.
"""

from peerbook.grenache.client import Settled
from peerbook.grenache.grape import EmbeddedGrape
from peerbook.grenache.http import RpcClient, RpcServer
from peerbook.grenache.link import Link
from peerbook.grenache.ws import Publisher, Subscriber, WsRpcClient, WsRpcServer

__all__ = [
    "EmbeddedGrape",
    "Link",
    "Publisher",
    "RpcClient",
    "RpcServer",
    "Settled",
    "Subscriber",
    "WsRpcClient",
    "WsRpcServer",
]
