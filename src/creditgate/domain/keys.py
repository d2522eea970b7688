"""API keys: `fc-` + 32 lowercase hex. Only a SHA-256 of the key is ever stored.

A fast hash is enough here: the key carries 128 random bits, so there is nothing to brute-force,
and lookups by hash stay a single index probe on the hot path.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets

KEY_PATTERN = re.compile(r"^fc-[0-9a-f]{32}$")


def generate_key() -> str:
    return "fc-" + secrets.token_hex(16)


def is_well_formed(token: str) -> bool:
    return KEY_PATTERN.match(token) is not None


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def key_hint(token: str) -> str:
    """What may be shown of a key after creation: its prefix and last four characters."""
    return f"fc-...{token[-4:]}"


# --- key metadata: a small JSON object an operator attaches to a key -------------------------

MAX_METADATA_BYTES = 2_048  # the object as compact JSON (UTF-8)
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY = 64
MAX_RPM = 1_000_000
MAX_OVERLAP_SECONDS = 30 * 24 * 3600  # a rotation's overlap: at most 30 days


def metadata_problem(value: object) -> str | None:
    """Why `value` is no acceptable key metadata, or None when it is.

    Acceptable: a flat JSON object of at most MAX_METADATA_ENTRIES entries whose keys are
    1..MAX_METADATA_KEY characters and whose values are strings, integers, finite numbers,
    booleans or null, MAX_METADATA_BYTES at most as compact JSON, no NUL anywhere. Flat on
    purpose: nothing nested to walk, nothing that can grow behind a small outer object.
    """
    if not isinstance(value, dict):
        return "metadata must be a JSON object"
    if len(value) > MAX_METADATA_ENTRIES:
        return f"metadata may have at most {MAX_METADATA_ENTRIES} entries"
    for k, v in value.items():
        if not isinstance(k, str) or not 1 <= len(k) <= MAX_METADATA_KEY:
            return f"metadata keys must be strings of 1 to {MAX_METADATA_KEY} characters"
        if "\x00" in k or (isinstance(v, str) and "\x00" in v):
            return "metadata must not contain NUL characters"
        if v is not None and not isinstance(v, str | int | float | bool):
            return "metadata values must be strings, numbers, booleans or null"
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return "metadata numbers must be finite"
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        return f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON"
    return None
