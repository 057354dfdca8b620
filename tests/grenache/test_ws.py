"""WebSocket RPC and pub/sub between Python peers over real loopback sockets, with faults."""

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from peerbook.errors import ClosedBeforeReplyError, RequestTimeoutError, RpcError
from peerbook.grenache import EmbeddedGrape, Link, Publisher, Subscriber, WsRpcClient, WsRpcServer
from peerbook.grenache.protocol import Json


def dead_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def run(coroutine: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))


async def echo(key: str, payload: Json) -> Json:
    if payload == "boom":
        raise RpcError("ws-boom")
    if payload == "slow":
        await asyncio.sleep(5)
    return {"echo": payload}


@asynccontextmanager
async def grape_link() -> AsyncIterator[Link]:
    grape = EmbeddedGrape(port=0)
    await grape.start()
    link = Link(grape.url)
    try:
        yield link
    finally:
        await link.close()
        await grape.stop()


async def next_messages(subscriber: Subscriber, count: int) -> list[str | bytes]:
    received: list[str | bytes] = []
    async for message in subscriber.messages():
        received.append(message)
        if len(received) == count:
            break
    return received


async def publish_until_heard(publisher: Publisher, subscriber: Subscriber, text: str) -> None:
    """Publish ``text`` until the subscriber is connected and hears it (messages sent
    before a subscriber connects are lost, as in Grenache)."""
    async with asyncio.timeout(10):
        while True:
            await publisher.publish(text)
            try:
                async with asyncio.timeout(0.1):
                    while await subscriber.receive() != text:
                        pass
                    return
            except TimeoutError:
                continue


def test_ws_request_map_and_errors() -> None:
    async def scenario() -> None:
        async with grape_link() as link:
            servers = [WsRpcServer(echo), WsRpcServer(echo)]
            for server in servers:
                await server.start()
                await link.announce("ws-svc", server.port)
            client = WsRpcClient(link, timeout_s=0.5)
            replies = await asyncio.gather(*(client.request("ws-svc", i) for i in range(50)))
            assert replies == [{"echo": i} for i in range(50)]
            assert await client.map("ws-svc", "m") == [{"echo": "m"}] * 2
            with pytest.raises(RpcError, match="ws-boom"):
                await client.request("ws-svc", "boom")
            with pytest.raises(RequestTimeoutError):
                await client.request("ws-svc", "slow")
            assert await client.request("ws-svc", "after") == {"echo": "after"}
            await client.close()
            for server in servers:
                await server.stop()

    run(scenario())


def test_disconnect_fails_waiting_requests_at_once_and_the_next_request_reconnects() -> None:
    """What the Raft transport does after a request without a reply: the link is dropped,
    not left to a socket that may be retransmitting into a partition."""

    async def scenario() -> None:
        server = WsRpcServer(echo)
        await server.start()
        peer = f"127.0.0.1:{server.port}"
        client = WsRpcClient(Link(f"http://127.0.0.1:{dead_port()}"), timeout_s=20)
        assert await client.send(peer, "k", "before") == {"echo": "before"}
        waiting = asyncio.ensure_future(client.send(peer, "k", "slow"))
        await asyncio.sleep(0.2)
        client.disconnect(peer)
        async with asyncio.timeout(2):  # not the handler's 5 s, nor the 20 s deadline
            with pytest.raises(ClosedBeforeReplyError):
                await waiting
        assert await client.send(peer, "k", "after") == {"echo": "after"}
        client.disconnect("127.0.0.1:1")  # a peer never connected to: nothing to drop
        await client.close()
        await server.stop()

    run(scenario())


def test_a_heartbeat_server_drops_a_client_that_stops_answering_pings() -> None:
    async def scenario() -> None:
        server = WsRpcServer(echo, heartbeat_s=0.4)
        await server.start()
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{server.port}/ws", autoping=False) as socket,
        ):
            await asyncio.sleep(1.0)  # pings go unanswered meanwhile
            kinds: list[aiohttp.WSMsgType] = []
            async with asyncio.timeout(5):
                while not kinds or kinds[-1] not in (aiohttp.WSMsgType.CLOSE,
                                                     aiohttp.WSMsgType.CLOSED):  # fmt: skip
                    kinds.append((await socket.receive()).type)
            assert aiohttp.WSMsgType.PING in kinds
        await server.stop()

    run(scenario())


def test_unparseable_ws_frame_is_answered_with_an_error() -> None:
    async def scenario() -> None:
        server = WsRpcServer(echo)
        await server.start()
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{server.port}/ws") as socket,
        ):
            await socket.send_str("not json")
            reply = await socket.receive_str(timeout=5)
            assert reply.startswith('[null,"ERR_BAD_REQUEST')
        await server.stop()

    run(scenario())


def test_subscriber_receives_every_message_in_order() -> None:
    async def scenario() -> None:
        async with grape_link() as link:
            publisher = Publisher()
            await publisher.start()
            await link.announce("feed", publisher.port)
            subscriber = Subscriber(link, "feed")
            subscriber.start()
            await publish_until_heard(publisher, subscriber, "hello")
            for index in range(100):
                await publisher.publish(f"m{index}")
            async with asyncio.timeout(5):
                assert await next_messages(subscriber, 100) == [f"m{i}" for i in range(100)]
            await subscriber.close()
            await publisher.stop()

    run(scenario())


def test_subscriber_resumes_after_publisher_restart() -> None:
    async def scenario() -> None:
        async with grape_link() as link:
            publisher = Publisher()
            await publisher.start()
            port = publisher.port
            await link.announce("feed", port)
            subscriber = Subscriber(link, "feed", backoff_s=(0.05, 0.2))
            subscriber.start()
            await publish_until_heard(publisher, subscriber, "before")
            await publisher.stop()
            restarted = Publisher(port=port)
            await restarted.start()
            await publish_until_heard(restarted, subscriber, "after")
            assert subscriber.connections == 2
            await subscriber.close()
            await restarted.stop()

    run(scenario())


def test_fan_in_subscriber_hears_every_publisher() -> None:
    async def scenario() -> None:
        async with grape_link() as link:
            publishers = [Publisher(), Publisher()]
            for publisher in publishers:
                await publisher.start()
                await link.announce("feed", publisher.port)
            subscriber = Subscriber(link, "feed", fan_in=True)
            subscriber.start()
            for index, publisher in enumerate(publishers):
                await publish_until_heard(publisher, subscriber, f"from {index}")
            assert len(subscriber.publishers) == 2
            await subscriber.close()
            for publisher in publishers:
                await publisher.stop()

    run(scenario())


def test_ws_client_survives_a_reply_frame_it_cannot_parse() -> None:
    async def scenario() -> None:
        replies = iter(["[" * 100_000, None, None])

        async def serve(request: web.Request) -> web.WebSocketResponse:
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            async for message in socket:
                rid = json.loads(message.data)[0]
                poison = next(replies)
                await socket.send_str(poison if poison else json.dumps([rid, None, "ok"]))
            return socket

        app = web.Application()
        app.router.add_get("/ws", serve)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        peer = f"127.0.0.1:{runner.addresses[0][1]}"
        async with grape_link() as link:
            client = WsRpcClient(link, timeout_s=0.5)
            with pytest.raises(RequestTimeoutError):
                await client.send(peer, "svc", 1)  # its reply was garbage
            assert await client.send(peer, "svc", 2) == "ok"
            assert await client.send(peer, "svc", 3) == "ok"
            await client.close()
        await runner.cleanup()

    run(scenario())


def test_a_stalled_subscriber_is_dropped_and_cannot_block_publishing() -> None:
    async def scenario() -> None:
        publisher = Publisher()
        await publisher.start()
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", publisher.port))
        raw.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )  # and never read again
        async with asyncio.timeout(5):
            while publisher.subscribers == 0:
                await asyncio.sleep(0.01)
        async with asyncio.timeout(15):
            for _ in range(300):
                await publisher.publish("x" * 65536)
        assert publisher.subscribers == 0
        raw.close()
        await publisher.stop()

    run(scenario())


def test_subscriber_backs_off_while_its_publisher_is_gone() -> None:
    async def scenario() -> None:
        async with grape_link() as link:
            await link.announce("feed", dead_port())
            lookups = 0
            real_lookup = link.lookup

            async def counting_lookup(name: str, *, fresh: bool = False) -> list[str]:
                nonlocal lookups
                lookups += 1
                return await real_lookup(name, fresh=fresh)

            link.lookup = counting_lookup  # type: ignore[method-assign]
            subscriber = Subscriber(link, "feed", backoff_s=(0.05, 5.0))
            subscriber.start()
            await asyncio.sleep(1.6)  # 0.05 doubling: attempts at about 0, .05, .15, .35, .75, 1.55
            await subscriber.close()
            assert 4 <= lookups <= 8, lookups

    run(scenario())


def test_a_stopping_ws_server_answers_the_requests_it_is_handling() -> None:
    handling = asyncio.Event()

    async def slow(key: str, payload: Json) -> Json:
        handling.set()
        await asyncio.sleep(0.5)
        return {"done": payload}

    async def scenario() -> None:
        server = WsRpcServer(slow)
        await server.start()
        client = WsRpcClient(Link("http://127.0.0.1:9"))
        try:
            address = f"127.0.0.1:{server.port}"
            request = asyncio.ensure_future(client.send(address, "svc", 1, timeout_s=5))
            async with asyncio.timeout(5):  # the handler is running (not a guess of 0.1 s)
                await handling.wait()
            await server.stop()  # waits for it, then closes
            assert await request == {"done": 1}
        finally:
            await client.close()

    run(scenario())


def test_a_client_that_gave_up_before_the_handshake_logs_no_server_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A soak logged some 1,300 aiohttp tracebacks: Raft clients whose handshake timed out
    while the server's loop was busy, answered on a closing transport. What the server sees
    then is simulated where it happens: writing the handshake's headers fails, after the
    response has taken the request's writer (so aiohttp cannot finish that response)."""

    async def closing(*_: object) -> None:
        raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")

    async def scenario() -> None:
        server = WsRpcServer(echo)
        await server.start()
        monkeypatch.setattr(web.StreamResponse, "_write_headers", closing)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                async with asyncio.timeout(5):
                    await session.ws_connect(f"ws://127.0.0.1:{server.port}/ws")
        monkeypatch.undo()
        await server.stop()

    run(scenario())
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
