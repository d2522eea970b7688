"""A raw HTTP/1.1 client: it sends the request target exactly as given.

httpx (like every client library) normalises the target: it resolves `.` and `..` segments and
re-encodes characters, so it cannot send what an attacker sends. This one writes the bytes.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit


class RawAnswer(NamedTuple):
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header's values joined by ", "
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


def raw_request(
    url: str,
    method: str,
    target: str | bytes,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    timeout: float = 15.0,
) -> RawAnswer:
    """Send one request with `Connection: close` (unless `headers` name a Connection) and read
    the whole answer. `url` says where to connect; `target` is written verbatim."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    names = {name.lower() for name, _ in pairs}
    if "host" not in names:
        pairs.insert(0, ("Host", f"{host}:{port}"))
    if "connection" not in names:
        pairs.append(("Connection", "close"))
    if "content-length" not in names and (body or method in ("POST", "PUT", "PATCH")):
        pairs.append(("Content-Length", str(len(body))))
    if body and "content-type" not in names:
        pairs.append(("Content-Type", "application/json"))
    line = target if isinstance(target, bytes) else target.encode("latin-1")
    head = method.encode() + b" " + line + b" HTTP/1.1\r\n"
    head += b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in pairs) + b"\r\n"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head + body)
        received = bytearray()
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            received += chunk
    raw_head, _, content = bytes(received).partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    found: dict[str, str] = {}
    for header in lines[1:]:
        name, _, value = header.partition(":")
        key = name.strip().lower()
        found[key] = f"{found[key]}, {value.strip()}" if key in found else value.strip()
    if found.get("transfer-encoding", "").lower() == "chunked":
        content = _dechunk(content)
    elif "content-length" in found:
        content = content[: int(found["content-length"])]
    return RawAnswer(status, found, content)
