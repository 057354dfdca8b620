"""Python grape, Link, RPC server and client over real loopback sockets, with faults."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import aiohttp.web
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peerbook.errors import (
    ConnectFailedError,
    GrapeError,
    LookupEmptyError,
    RequestTimeoutError,
    RpcError,
    TransportError,
)
from peerbook.grenache import EmbeddedGrape, Link, RpcClient, RpcServer
from peerbook.grenache.protocol import Json
from peerbook.grenache.signing import public_key_hex
from peerbook.grenache.transport import SHUTDOWN_GRACE_S


async def echo(key: str, payload: Json) -> Json:
    if payload == "boom":
        raise RpcError("boom: something failed")
    if payload == "crash":
        raise ValueError("a bug")
    return {"echo": payload, "key": key}


@asynccontextmanager
async def grape() -> AsyncIterator[EmbeddedGrape]:
    server = EmbeddedGrape(port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def service(
    link: Link, name: str, handler: Callable[[str, Json], Awaitable[Json]] = echo
) -> AsyncIterator[RpcServer]:
    server = RpcServer(handler)
    await server.start()
    await link.announce(name, server.port)
    try:
        yield server
    finally:
        await server.stop()


def run(coroutine: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))


def dead_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_request_map_and_compress_round_trip() -> None:
    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url)
            client = RpcClient(link)
            async with service(link, "svc"), service(link, "svc"):
                assert await client.request("svc", {"a": 1}) == {"echo": {"a": 1}, "key": "svc"}
                assert await client.request("svc", "z" * 5000, compress=True) == {
                    "echo": "z" * 5000,
                    "key": "svc",
                }
                replies = await client.map("svc", 7, compress=True)
                assert replies == [{"echo": 7, "key": "svc"}] * 2
            await client.close()
            await link.close()

    run(scenario())


def test_a_stopping_server_cuts_off_a_request_that_would_never_finish() -> None:
    """A server stops within its grace period even with a request in flight for ever (a
    write that can no longer commit); the client sees the connection end, not a reply."""

    async def never(key: str, payload: Json) -> Json:
        await asyncio.sleep(3600)
        return None

    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url)
            client = RpcClient(link, timeout_s=60)
            async with service(link, "svc", never) as server:
                request = asyncio.create_task(client.request("svc", 1))
                await asyncio.sleep(0.3)  # the request is in the handler
                async with asyncio.timeout(SHUTDOWN_GRACE_S + 10):
                    await server.stop()
                with pytest.raises(TransportError):
                    await request
            await client.close()
            await link.close()

    run(scenario())


def test_handler_errors_travel_as_messages() -> None:
    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url)
            client = RpcClient(link)
            async with service(link, "svc"):
                with pytest.raises(RpcError, match=r"^boom: something failed$"):
                    await client.request("svc", "boom")
                with pytest.raises(RpcError, match="ERR_INTERNAL"):
                    await client.request("svc", "crash")
                assert await client.request("svc", 1) == {"echo": 1, "key": "svc"}
            await client.close()
            await link.close()

    run(scenario())


def test_request_goes_to_another_peer_when_one_is_dead_and_map_settled_reports_it() -> None:
    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url)
            client = RpcClient(link)
            await link.announce("svc", dead_port())
            async with service(link, "svc"):
                settled = await client.map_settled("svc", 2)
                assert sorted(s.error is None for s in settled) == [False, True]
                failed = next(s for s in settled if s.error is not None)
                assert isinstance(failed.error, ConnectFailedError)
                with pytest.raises(ConnectFailedError):
                    await client.map("svc", 3)
                for _ in range(10):
                    assert await client.request("svc", 1) == {"echo": 1, "key": "svc"}
            await client.close()
            await link.close()

    run(scenario())


def test_request_goes_to_another_peer_when_an_announced_port_now_serves_something_else() -> None:
    """A peer restarted on new ports leaves its old announcement in the grape until it
    expires; when another server reuses the old port, a request sent there is refused
    unprocessed (HTTP 405 from a WebSocket endpoint, in a CI run), and must go to the peer's
    new address, not fail."""

    async def elsewhere(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="a WebSocket endpoint")

    async def scenario() -> None:
        app = aiohttp.web.Application()
        app.router.add_get("/", elsewhere)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with grape() as g:
            link = Link(g.url)
            client = RpcClient(link)
            await link.announce("svc", port)
            async with service(link, "svc"):
                for _ in range(10):
                    assert await client.request("svc", 1) == {"echo": 1, "key": "svc"}
                with pytest.raises(ConnectFailedError, match="HTTP 405"):
                    await client.send(f"127.0.0.1:{port}", "svc", 1)
            await client.close()
            await link.close()
        await runner.cleanup()

    run(scenario())


def test_server_that_never_answers_times_out() -> None:
    async def scenario() -> None:
        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(60)

        silent = await asyncio.start_server(stall, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        async with grape() as g:
            link = Link(g.url)
            await link.announce("svc", port)
            client = RpcClient(link, timeout_s=0.5)
            started = asyncio.get_running_loop().time()
            with pytest.raises(RequestTimeoutError):
                await client.request("svc", 1)
            assert 0.4 < asyncio.get_running_loop().time() - started < 3
            await client.close()
            await link.close()
        silent.close()

    run(scenario())


def test_malformed_and_oversized_requests_are_answered_and_server_keeps_serving() -> None:
    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url)
            client = RpcClient(link)
            async with service(link, "svc") as server, aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{server.port}/any/path"
                cases = [
                    (b"not json", {}, 400),
                    (b'["rid","svc"]', {}, 400),
                    (b"\x1f\x8b garbage", {"grc-compress": "gzip"}, 400),
                    (b"[" + b"1," * 40000 + b"1]", {}, 413),
                ]
                for body, headers, status in cases:
                    async with session.put(url, data=body, headers=headers) as response:
                        assert response.status == status
                        text = (await response.read()).decode()  # errors are never gzipped
                        assert text.startswith("[null,") and "ERR_" in text
                assert await client.request("svc", "still here") == {
                    "echo": "still here",
                    "key": "svc",
                }
            await client.close()
            await link.close()

    run(scenario())


def test_grape_down_is_a_transport_error() -> None:
    async def scenario() -> None:
        link = Link(f"http://127.0.0.1:{dead_port()}", timeout_s=1)
        with pytest.raises(TransportError):
            await link.lookup("svc")
        with pytest.raises(TransportError):
            await link.announce("svc", 5001)
        await link.close()

    run(scenario())


def test_empty_lookup_is_never_cached() -> None:
    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url, lookup_cache_s=60)
            with pytest.raises(LookupEmptyError):
                await link.lookup("not-looked-up-before")
            await link.announce("svc", 5001)
            assert await link.lookup("svc") == ["127.0.0.1:5001"]
            await link.close()

    run(scenario())


def test_start_announcing_keeps_the_service_visible() -> None:
    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url, announce_interval_s=0.05)
            await link.start_announcing("svc", 5001)
            await asyncio.sleep(0.3)
            assert await link.lookup("svc", fresh=True) == ["127.0.0.1:5001"]
            await link.close()

    run(scenario())


def test_an_announce_not_required_survives_a_grape_that_is_down_and_shows_up_later() -> None:
    """A peer restarting while its grape is down must still start: the first announce may
    fail, and the service is listed within seconds of the grape coming back."""

    async def scenario() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        link = Link(f"http://127.0.0.1:{port}", announce_interval_s=30, timeout_s=1)
        with pytest.raises(ConnectFailedError):
            await link.start_announcing("svc", 5001)
        await link.start_announcing("svc", 5001, required=False)
        server = EmbeddedGrape(port=port)
        await server.start()
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                with contextlib.suppress(LookupEmptyError):
                    if await link.lookup("svc", fresh=True) == ["127.0.0.1:5001"]:
                        break
                assert asyncio.get_running_loop().time() < deadline, "never announced"
                await asyncio.sleep(0.1)
        finally:
            await link.close()
            await server.stop()

    run(scenario())


def test_link_mutable_put_and_get_against_embedded_grape() -> None:
    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url)
            key = Ed25519PrivateKey.generate()
            target = await link.put_mutable(key, "first", 1, salt="peerbook")
            item = await link.get_mutable(public_key_hex(key), salt="peerbook")
            assert item is not None and (item.value, item.seq) == ("first", 1)
            assert await link.put_mutable(key, "second", 2, salt="peerbook", cas=1) == target
            with pytest.raises(GrapeError) as stale:
                await link.put_mutable(key, "old", 1, salt="peerbook")
            assert stale.value.status == 302
            item = await link.get_mutable(public_key_hex(key), salt="peerbook")
            assert item is not None and item.value == "second"
            assert await link.get_mutable(public_key_hex(key), salt="other") is None
            await link.close()

    run(scenario())


def test_a_request_is_never_sent_twice() -> None:
    async def scenario() -> None:
        received = 0

        async def read_then_hang_up(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            nonlocal received
            await reader.readuntil(b"\r\n\r\n")
            received += 1
            writer.close()

        server = await asyncio.start_server(read_then_hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with grape() as g:
            link = Link(g.url)
            client = RpcClient(link, timeout_s=2)
            with pytest.raises(TransportError):
                await client.send(f"127.0.0.1:{port}", "svc", 1)
            assert received == 1
            await client.close()
            await link.close()
        server.close()

    run(scenario())


def test_deeply_nested_request_is_answered_400() -> None:
    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url)
            async with service(link, "svc") as server, aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{server.port}/"
                async with session.post(url, data=b"[" * 50_000) as response:
                    assert response.status == 400
                    assert (await response.read()).startswith(b'[null,"ERR_BAD_REQUEST')
            await link.close()

    run(scenario())


def test_a_closed_client_makes_no_new_session_for_a_call_that_races_its_close() -> None:
    """A call after close fails as unsent; made lazily, its session was never closed (a peer
    leaving in a soak logged "Unclosed client session")."""

    async def scenario() -> None:
        async with grape() as g:
            link = Link(g.url)
            client = RpcClient(link)
            await link.announce("svc", 1)
            async with service(link, "svc"):
                assert await client.request("svc", 1) == {"echo": 1, "key": "svc"}
                await client.close()
                with pytest.raises(ConnectFailedError, match="closed"):
                    await client.send("127.0.0.1:1", "svc", 1)
            await link.close()
            with pytest.raises(ConnectFailedError, match="closed"):
                await link.lookup("not-looked-up-before")

    run(scenario())
