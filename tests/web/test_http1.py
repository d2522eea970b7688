"""web/http1.py, the upstream's connection pool, against a server that answers with raw bytes:
framing (length, chunked, to the close), keep-alive reuse, the bounds, an answer cut off, what
is sent."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import pytest

from creditgate.web import http1

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BOUNDS = http1.Timeouts(2.0, 2.0, 2.0, 2.0)


async def head_of(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body (by its Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def serve(answers: list[bytes], then_close: bool = False, received: list[bytes] | None = None):  # type: ignore[no-untyped-def]
    """A server answering each request on a connection with the next of `answers`."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while answers:
                head = await head_of(reader)
                if received is not None:
                    received.append(head)
                writer.write(answers.pop(0))
                await writer.drain()
                if then_close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle, connections


async def with_server(handle: Handler, run: Callable[[str], Awaitable[None]]) -> None:
    """Serve with `handle` while `run` runs; then end every handler, every socket closed."""
    handlers: list[asyncio.Task[None]] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await run(f"http://127.0.0.1:{port}")
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await asyncio.sleep(0.01)  # the transports' closing callbacks run


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % len(body) + b"".join(extra)
    return head + b"\r\n" + body


async def fetch(pool: http1.Pool, path: str = "/x") -> tuple[int, bytes, http1.Response]:
    response = await pool.request("GET", path, "", {}, b"")
    try:
        return response.status_code, await response.aread(), response
    finally:
        await response.aclose()


def test_answers_by_length_chunked_and_to_the_close_on_one_kept_connection() -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    to_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end"
    handle, connections = serve([ok(b"one"), chunked, to_close])

    async def run(url: str) -> None:
        pool = http1.Pool(url, 4, 4, BOUNDS)
        assert (await fetch(pool))[:2] == (200, b"one")
        assert (await fetch(pool))[:2] == (201, b"abcde")
        assert pool.idle() == 1  # both on one connection, kept
        assert (await fetch(pool))[:2] == (200, b"until the end")
        assert pool.idle() == 0  # an answer to the close is never reused
        await pool.close()

    asyncio.run(with_server(handle, run))
    assert len(connections) == 1


def test_what_is_sent_headers_target_and_body() -> None:
    received: list[bytes] = []
    handle, _ = serve([ok(b"")], received=received)

    async def run(url: str) -> None:
        pool = http1.Pool(url + "/base/", 4, 4, BOUNDS)
        headers = {"content-type": "application/json", "authorization": "Bearer k"}
        response = await pool.request("POST", "/v2/crawl/a b", 'q=1 2&x="<#>é', headers, b"{}")
        await response.aclose()
        await pool.close()

    asyncio.run(with_server(handle, run))
    lines = received[0].split(b"\r\n")
    # httpx's percent-encoding of the target, kept; the base URL's path first.
    assert lines[0] == b"POST /base/v2/crawl/a%20b?q=1%202&x=%22%3C%23%3E%C3%A9 HTTP/1.1"
    sent = dict(line.split(b": ", 1) for line in lines[1:] if line)
    assert sent[b"content-type"] == b"application/json"
    assert sent[b"authorization"] == b"Bearer k"
    assert sent[b"content-length"] == b"2"
    assert sent[b"accept-encoding"] == b"identity"
    assert sent[b"host"].startswith(b"127.0.0.1:")


def test_a_header_that_would_split_the_request_is_refused_before_sending() -> None:
    handle, connections = serve([ok(b"")])

    async def run(url: str) -> None:
        pool = http1.Pool(url, 4, 4, BOUNDS)
        with pytest.raises(http1.ProtocolError):
            await pool.request("GET", "/", "", {"x": "a\r\nevil: 1"}, b"")
        await pool.close()

    asyncio.run(with_server(handle, run))
    assert connections == []


def test_an_answer_cut_off_is_disconnected_and_its_connection_dropped() -> None:
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part"
    handle, _ = serve([cut], then_close=True)

    async def run(url: str) -> None:
        pool = http1.Pool(url, 4, 4, BOUNDS)
        response = await pool.request("GET", "/", "", {}, b"")
        closed: list[int] = []
        response.on_close(lambda: closed.append(1))
        seen = []
        with pytest.raises(http1.Disconnected):
            async for chunk in response.aiter_bytes():
                seen.append(chunk)
        assert seen == [b"only part"]  # relayed as it came, then the cut
        assert closed == [1]  # closed at the cut: a caller that only sees the error leaks nothing
        await response.aclose()
        assert closed == [1] and pool.idle() == 0
        await pool.close()

    asyncio.run(with_server(handle, run))


def test_no_answer_at_all_is_disconnected_and_a_refused_connection_never_sent() -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.close()

    async def run(url: str) -> None:
        pool = http1.Pool(url, 4, 4, BOUNDS)
        with pytest.raises(http1.Disconnected):
            await pool.request("POST", "/", "", {}, b"{}")
        await pool.close()
        refused = http1.Pool("http://127.0.0.1:9", 4, 4, BOUNDS)
        with pytest.raises(http1.ConnectFailed):
            await refused.request("GET", "/", "", {}, b"")

    asyncio.run(with_server(close_at_once, run))


def test_a_silent_server_is_a_read_timeout_between_reads() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab")
        await asyncio.sleep(5)
        writer.close()

    async def run(url: str) -> None:
        pool = http1.Pool(url, 4, 4, http1.Timeouts(2.0, 0.3, 2.0, 2.0))
        response = await pool.request("GET", "/", "", {}, b"")
        assert response.status_code == 200
        with pytest.raises(http1.ReadTimeout):
            await response.aread()
        await response.aclose()
        await pool.close()

    asyncio.run(with_server(slow, run))


def test_the_pool_bound_waits_for_a_free_connection_then_gives_up() -> None:
    handle, _ = serve([ok(b"a"), ok(b"b")])

    async def run(url: str) -> None:
        pool = http1.Pool(url, 1, 1, http1.Timeouts(2.0, 2.0, 2.0, 0.2))
        held = await pool.request("GET", "/", "", {}, b"")
        with pytest.raises(http1.PoolTimeout):
            await pool.request("GET", "/", "", {}, b"")
        await held.aread()
        await held.aclose()
        assert (await fetch(pool))[:2] == (200, b"b")  # the slot came back
        await pool.close()

    asyncio.run(with_server(handle, run))


def test_an_informational_answer_is_skipped_and_a_gzip_body_decoded() -> None:
    packed = gzip.compress(b"decoded")
    answer = b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + ok(
        packed, b"content-encoding: gzip\r\n", b"x-kept: 1\r\n", b"x-kept: 2\r\n"
    )
    handle, _ = serve([answer])

    async def run(url: str) -> None:
        pool = http1.Pool(url, 4, 4, BOUNDS)
        status, body, response = await fetch(pool)
        assert (status, body) == (200, b"decoded")
        assert response.headers == [(b"x-kept", b"1"), (b"x-kept", b"2")]
        await pool.close()

    asyncio.run(with_server(handle, run))


def test_an_idle_connection_closed_by_the_server_or_expired_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handle, connections = serve([ok(b"1"), ok(b"2"), ok(b"3")], then_close=True)

    async def run(url: str) -> None:
        pool = http1.Pool(url, 4, 4, BOUNDS)
        assert (await fetch(pool))[1] == b"1"
        await asyncio.sleep(0.1)  # the server's close arrives
        assert (await fetch(pool))[1] == b"2"  # on a new connection
        monkeypatch.setattr(http1, "KEEPALIVE_EXPIRY_S", 0.0)
        assert (await fetch(pool))[1] == b"3"
        await pool.close()

    asyncio.run(with_server(handle, run))
    assert len(connections) == 3


def test_a_new_base_url_takes_the_next_connections() -> None:
    first, _ = serve([ok(b"first")])
    second, _ = serve([ok(b"second")])

    async def run(url_one: str) -> None:
        async def inner(url_two: str) -> None:
            pool = http1.Pool(url_one, 4, 4, BOUNDS)
            assert (await fetch(pool))[1] == b"first"
            pool.base_url = url_two
            assert pool.idle() == 0
            assert (await fetch(pool))[1] == b"second"
            await pool.close()

        await with_server(second, inner)

    asyncio.run(with_server(first, run))


# --- what an upstream may make this process hold (an outside tester's findings) -------------


def _refused(
    answer: bytes, error: type[http1.ClientError], bounds: http1.Timeouts = BOUNDS
) -> None:
    handle, _ = serve([answer])

    async def run(url: str) -> None:
        pool = http1.Pool(url, 1, 1, BOUNDS)
        with pytest.raises(error):
            await fetch(pool)
        assert pool.idle() == 0
        # The one connection's slot came back: the next request gets one (and a refusal).
        with pytest.raises(http1.ClientError):
            await fetch(pool)
        await pool.close()

    asyncio.run(with_server(handle, run))


def test_a_switch_of_protocols_is_a_protocol_error_not_an_escape() -> None:
    """httptools raises HttpParserUpgrade, no HttpParserError, for a 101: it escaped the
    client's errors, so the gateway answered 500 and kept the scrape's hold for 15 minutes."""
    _refused(
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n",
        http1.ProtocolError,
    )


def test_a_head_too_large_or_with_too_many_headers_is_refused() -> None:
    huge = b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (http1.MAX_HEAD_BYTES + 1) + b"\r\n\r\n"
    _refused(huge, http1.ProtocolError)
    many = b"".join(b"x-%d: 1\r\n" % n for n in range(http1.MAX_HEADERS + 1))
    _refused(b"HTTP/1.1 200 OK\r\n" + many + b"content-length: 0\r\n\r\n", http1.ProtocolError)


def test_a_gzip_body_is_decoded_only_up_to_its_bound() -> None:
    bomb = gzip.compress(b"\0" * (http1.MAX_DECODED_BYTES + 1))
    answer = ok(bomb, b"content-encoding: gzip\r\n")
    handle, _ = serve([answer])

    async def run(url: str) -> None:
        pool = http1.Pool(url, 1, 1, BOUNDS)
        response = await pool.request("GET", "/", "", {}, b"")
        got = 0
        with pytest.raises(http1.ProtocolError):
            async for chunk in response.aiter_bytes():
                got += len(chunk)
        assert got <= http1.MAX_DECODED_BYTES
        await pool.close()

    asyncio.run(with_server(handle, run))


def test_a_head_or_body_that_trickles_is_bounded_in_all() -> None:
    """A byte a little more often than the read bound kept an answer open for ever: the head
    and the body each have the read bound in all."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 100:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.01)

    async def run(url: str) -> None:
        pool = http1.Pool(url, 1, 1, http1.Timeouts(1.0, 0.2, 1.0, 1.0))
        with pytest.raises(http1.ReadTimeout):  # whole, it takes 1.4 s
            await fetch(pool)
        await pool.close()

    asyncio.run(with_server(trickle, run))
