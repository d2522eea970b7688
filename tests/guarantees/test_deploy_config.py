"""docs/deploy.md's haproxy config starts as written: its self-signed certificate commands make
the combined PEM, and haproxy with the documented config (ports, certificate folder and servers
replaced, nothing else) serves a creditgate's /health/ready over TLS, redirects plain HTTP to
https, denies /metrics and keeps a dead server out of rotation."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, IN_CI
from tests.haproxy import haproxy_binary
from tests.server import free_port, live_server

DEPLOY = Path(__file__).parents[2] / "docs" / "deploy.md"
CERTS = "/etc/haproxy/certs"


def block_after(marker: str, language: str = "") -> str:
    """The first fenced block of docs/deploy.md after the line holding `marker`."""
    text = DEPLOY.read_text()
    start = text.index(marker)
    found = re.compile(rf"^( *)```{language}\n(.*?)^\1```$", re.S | re.M).search(text, start)
    assert found is not None, marker
    indent = found[1]
    return "".join(line.removeprefix(indent) for line in found[2].splitlines(keepends=True))


def documented_config(https: int, http: int, certs: Path, servers: list[str]) -> str:
    config = block_after("`/etc/haproxy/haproxy.cfg`")
    replaced = {
        "    bind :443 ssl crt /etc/haproxy/certs/api.pem": (
            f"    bind 127.0.0.1:{https} ssl crt {certs}/api.pem"
        ),
        "    bind :80": f"    bind 127.0.0.1:{http}",
        "    server c3101 127.0.0.1:3101 check": f"    server c3101 {servers[0]} check",
        "    server c3102 127.0.0.1:3102 check": f"    server c3102 {servers[1]} check",
        "    server c3103 127.0.0.1:3103 check": f"    server c3103 {servers[2]} check",
    }
    lines = config.splitlines()
    for old, new in replaced.items():
        assert lines.count(old) == 1, f"docs/deploy.md's haproxy config changed: {old!r}"
        lines[lines.index(old)] = new
    return "\n".join(lines) + "\n"


def make_self_signed(certs: Path) -> None:
    """The documented commands, in `certs`, with 127.0.0.1 among the names (the test's host)."""
    script = block_after("**A self-signed one, for trying**", "sh").replace(CERTS, str(certs))
    named = 'subjectAltName=DNS:api.example.com"'
    assert named in script
    script = script.replace(named, 'subjectAltName=DNS:api.example.com,IP:127.0.0.1"')
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True, capture_output=True)


@pytest.fixture
def binary() -> str:
    found = haproxy_binary()
    if found is None:
        if IN_CI:
            pytest.fail("haproxy is required in CI (scripts/setup --dev installs it)")
        pytest.skip("haproxy is not installed (scripts/setup --dev installs it)")
    if shutil.which("openssl") is None:
        (pytest.fail if IN_CI else pytest.skip)("openssl is not installed")
    return found


@pytest.fixture
def creditgate(tmp_path: Path) -> Iterator[str]:
    with live_server(f"sqlite:///{tmp_path}/creditgate.db", ADMIN_TOKEN) as url:
        yield url.removeprefix("http://")


def test_the_documented_haproxy_config_serves_creditgate_over_tls(
    binary: str, creditgate: str, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    make_self_signed(certs)
    pem = (certs / "api.pem").read_text()
    assert pem.index("BEGIN CERTIFICATE") < pem.index("BEGIN PRIVATE KEY")  # haproxy's order
    assert oct((certs / "api.pem").stat().st_mode & 0o777) == "0o600"

    https, http = free_port(), free_port()
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]  # nobody listens there
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(documented_config(https, http, certs, [creditgate, *dead]))
    checked = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    log = (tmp_path / "haproxy.log").open("wb")
    process = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log, stderr=log)
    log.close()
    trusted = ssl.create_default_context(cafile=str(certs / "api.crt"))
    try:
        with httpx.Client(verify=trusted, timeout=5) as client:
            url = f"https://127.0.0.1:{https}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    ready = client.get(f"{url}/health/ready")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, (tmp_path / "haproxy.log").read_text()
                assert time.monotonic() < deadline, "haproxy did not serve /health/ready"
                time.sleep(0.1)
            assert ready.json() == {"success": True}
            # Round robin over three servers, two of them dead: every request still answered
            # (a failed connect is retried on another server; the checks take the dead out).
            assert [client.get(f"{url}/health/ready").status_code for _ in range(9)] == [200] * 9
            assert client.get(f"{url}/metrics").status_code == 403
            plain = httpx.get(f"http://127.0.0.1:{http}/health/ready", timeout=5)
            assert plain.status_code == 302
            assert plain.headers["location"] == f"https://127.0.0.1:{http}/health/ready"
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/health/ready", timeout=5)  # self-signed: untrusted by default
    finally:
        process.terminate()
        process.wait(timeout=10)
