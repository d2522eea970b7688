"""A client that sends its body too slowly is cut off: it cannot hold a worker and a slot."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

from creditgate.domain.instants import now
from creditgate.gateway import proxy
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import team_with_key
from tests.security.support import open_holds


def test_a_body_that_does_not_arrive_in_time_is_a_408_and_holds_nothing(
    db: Database, fake: Fake, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proxy, "BODY_TIMEOUT_S", 0.5)
    team, key, _ = team_with_key(db, now())
    parts = urlsplit(gateway.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        conn.sendall(
            b"POST /v2/scrape HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"url": '  # ... and nothing more
        )
        started = time.monotonic()
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"the body did not arrive in time" in answer
    assert time.monotonic() - started < 3
    assert fake.state.paths == []
    assert open_holds(db, team.id) == 0
