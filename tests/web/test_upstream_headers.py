"""What of an upstream's answer headers reaches the client: never hop-by-hop headers, nor the
ones the gateway sets itself (found by an outside tester: an upstream's X-Request-Id came
first, beside the gateway's, and its `access-control-allow-credentials: true` went through)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from creditgate.web.upstream import kept_headers


def test_the_gateways_own_headers_and_hop_headers_are_not_passed_on() -> None:
    answer: Any = SimpleNamespace(
        headers=[
            (b"content-type", b"application/json"),
            (b"x-request-id", b"upstream-7"),
            (b"access-control-allow-origin", b"https://evil.example"),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", b"x-secret"),
            (b"connection", b"keep-alive, x-hop"),
            (b"x-hop", b"1"),
            (b"transfer-encoding", b"chunked"),
            (b"set-cookie", b"a=b"),
            (b"vary", b"Accept"),
            (b"vary", b"Cookie"),
        ]
    )
    assert kept_headers(answer) == {"content-type": "application/json", "vary": "Accept, Cookie"}
