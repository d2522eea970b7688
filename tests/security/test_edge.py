"""Headers and the edge (issue 7, "What to build" 6).

Findings: CORS (`OPTIONS` preflight answers 405; creditgate's own answers drop
`Access-Control-Allow-Origin`), and the controls the issue asks for at the edge: hop-by-hop and
forwarding headers stripped, `Host` never reflected, bodies bounded, the `Bearer` scheme only.
"""

from __future__ import annotations

import httpx

from creditgate.domain.instants import now
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN
from tests.gateway.conftest import UPSTREAM_KEY, Fake, Gateway
from tests.helpers import bearer, team_with_key
from tests.security.raw import raw_request
from tests.security.support import (
    INVALID_TOKEN,
    error_of,
    make_plan,
    pause_follower,
)

ORIGIN = "https://app.example"


def test_client_cookies_forwarding_and_hop_by_hop_headers_never_reach_the_upstream(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Headers: the client's Cookie, X-Forwarded-*, the headers its Connection header names and
    the hop-by-hop ones stay at the gateway; the upstream sees X-Forwarded-For = the peer and
    the upstream key, never the client's."""
    _, key, _ = team_with_key(db, now())
    answer = raw_request(
        gateway.url,
        "POST",
        "/v2/scrape",
        [
            ("Authorization", f"Bearer {key}"),
            ("Cookie", "session=client-secret"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "gopher"),
            ("Connection", "close, X-Hop-Secret"),
            ("X-Hop-Secret", "hop-secret"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Late"),
        ],
        b'{"url": "https://example.com"}',
    )
    assert answer.status == 200, answer.body
    assert len(fake.state.headers) == 1
    received = dict(fake.state.headers[0])
    names = set(received)
    leaked = names & {
        "cookie",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-hop-secret",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
    }
    assert leaked == set()
    assert fake.state.headers_named("x-forwarded-for") == ["127.0.0.1"]
    assert fake.state.headers_named("authorization") == [f"Bearer {UPSTREAM_KEY}"]
    values = " ".join(v for _, v in fake.state.headers[0])
    for secret in (key, "client-secret", "hop-secret", "6.6.6.6", "evil.example"):
        assert secret not in values


def test_a_host_header_is_never_reflected_into_job_urls(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """`Host` is not reflected into rewritten URLs: a crawl started with `Host: evil.example`
    answers a status URL on the gateway's own address, and so do its status and `next` links."""
    pause_follower(gateway)
    fake.state.page_size = 1
    _, key, _ = team_with_key(db, now())
    headers = {"Authorization": f"Bearer {key}", "Host": "evil.example"}
    started = raw_request(
        gateway.url,
        "POST",
        "/v2/crawl",
        headers,
        b'{"url": "https://site.example", "limit": 4}',
    )
    assert started.status == 200, started.body
    job_id = started.json()["id"]
    assert started.json()["url"].startswith(gateway.url)
    assert b"evil.example" not in started.body
    for _ in range(2):
        status = raw_request(gateway.url, "GET", f"/v2/crawl/{job_id}", headers)
    assert status.status == 200, status.body
    assert status.json()["next"].startswith(gateway.url)
    assert b"evil.example" not in status.body


def test_a_cors_preflight_is_answered_like_firecrawl_without_a_key(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "CORS: `OPTIONS` preflight answers 405 (Firecrawl: 204 with
    `Access-Control-Allow-Origin: *`)". No key needed, nothing forwarded."""
    preflight = raw_request(
        gateway.url,
        "OPTIONS",
        "/v2/scrape",
        {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status == 204, preflight
    assert preflight.headers.get("access-control-allow-origin") == "*"
    assert fake.state.paths == []


def test_every_answer_carries_the_cors_origin_header(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "the responses creditgate builds itself drop that header": 401, 402, 404, 429
    and 400 built by creditgate, an account route's 200 and a forwarded 200 all carry
    `Access-Control-Allow-Origin`."""
    _, key, _ = team_with_key(db, now(), plan=make_plan(db, "one-a-minute", 100, scrape_rpm=1))
    _, broke, _ = team_with_key(db, now(), name="broke", plan=make_plan(db, "empty", 0))
    scrape = b'{"url": "https://example.com"}'
    seen: dict[str, tuple[int, str | None]] = {}

    def send(name: str, method: str, target: str, who: str | None, body: bytes = b"") -> int:
        headers = {"Origin": ORIGIN}
        if who is not None:
            headers["Authorization"] = f"Bearer {who}"
        answer = raw_request(gateway.url, method, target, headers, body)
        seen[name] = (answer.status, answer.headers.get("access-control-allow-origin"))
        return answer.status

    send("forwarded 200", "POST", "/v2/scrape", key, scrape)
    for _ in range(3):  # one a minute: of three in a row, one is limited whatever the clock
        if send("429", "POST", "/v2/scrape", key, scrape) == 429:
            break
    send("401", "POST", "/v2/scrape", None, scrape)
    send("402", "POST", "/v2/scrape", broke, scrape)
    send("404", "GET", "/v2/no-such-route", key)
    send("400", "GET", "/v2/../admin/KEY/queues", key)
    send("account 200", "GET", "/v2/team/credit-usage", key)
    assert {name: origin for name, (_, origin) in seen.items()} == dict.fromkeys(seen, "*")
    assert {name: status for name, (status, _) in seen.items()} == {
        "forwarded 200": 200,
        "429": 429,
        "401": 401,
        "402": 402,
        "404": 404,
        "400": 400,
        "account 200": 200,
    }


def test_bodies_over_ten_mebibytes_are_refused_on_every_forwarded_route(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """ "Bodies on every forwarded route are bounded": 10 MiB + 1 byte to a metered route, a job
    start and the free routes is a 413 in the envelope, and nothing is forwarded."""
    _, key, _ = team_with_key(db, now())
    big = b'{"url": "https://example.com", "pad": "' + b"x" * (10 << 20) + b'"}'
    seen: dict[str, tuple[int, object]] = {}
    for path in (
        "/v2/scrape",
        "/v2/crawl",
        "/v1/x402/search",
        "/v2/crawl/params-preview",
        "/v1/crawlWebsitePreview",
    ):
        try:
            answer = httpx.post(
                f"{gateway.url}{path}",
                content=big,
                headers={**bearer(key), "Content-Type": "application/json"},
                timeout=30,
            )
            seen[path] = (answer.status_code, error_of(answer.content) is not None)
        except httpx.TransportError as exc:
            seen[path] = (0, repr(exc))
    assert seen == dict.fromkeys(seen, (413, True))
    assert fake.state.paths == []


def test_only_the_bearer_scheme_authenticates_keys_and_the_admin_token(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """ "The `Authorization` scheme must be `Bearer` (case-insensitive), for keys and the admin
    token alike": `Basic fc-...`, `Token fc-...` are 401 `Unauthorized: Invalid token` and
    never forwarded; `bearer fc-...` works."""
    _, key, _ = team_with_key(db, now())
    scrape = b'{"url": "https://example.com"}'
    seen = {}
    for scheme in ("Basic", "Token", "Digest", "Bearerx", "fc"):
        for method, target, body in (
            ("POST", "/v2/scrape", scrape),
            ("GET", "/v2/team/credit-usage", b""),
        ):
            answer = raw_request(
                gateway.url, method, target, {"Authorization": f"{scheme} {key}"}, body
            )
            seen[f"{scheme} key {target}"] = (answer.status, error_of(answer.body))
        admin = raw_request(
            gateway.url, "GET", "/admin/teams", {"Authorization": f"{scheme} {ADMIN_TOKEN}"}
        )
        seen[f"{scheme} admin token"] = (admin.status, error_of(admin.body))
    assert seen == dict.fromkeys(seen, (401, INVALID_TOKEN))
    assert fake.state.paths == []
    for scheme in ("bearer", "BEARER", "Bearer"):
        ok = raw_request(
            gateway.url, "POST", "/v2/scrape", {"Authorization": f"{scheme} {key}"}, scrape
        )
        assert ok.status == 200, (scheme, ok.body)
        admin = raw_request(
            gateway.url, "GET", "/admin/teams", {"Authorization": f"{scheme} {ADMIN_TOKEN}"}
        )
        assert admin.status == 200, (scheme, admin.body)


def test_no_answer_sends_a_client_to_the_host_it_named(gateway: Gateway) -> None:
    """Found by an outside tester (issue 19): `GET /v1` and `/v2` answered a slash redirect whose
    `Location` was built from the `Host` header (`Host: evil.example` -> 307 to evil.example).
    Now no path is redirected: what is not a route is Firecrawl's 404 (a trailing slash, the
    edge's 400)."""
    for path, status in (("/v1", 404), ("/v2", 404), ("/admin", 404), ("/dashboard/", 400)):
        answer = raw_request(gateway.url, "GET", path, {"Host": "evil.example"})
        assert answer.status == status, (path, answer.status, answer.headers)
        assert "location" not in answer.headers
        assert b"evil.example" not in answer.body
        assert answer.json()["success"] is False
