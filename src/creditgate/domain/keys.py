"""API keys: `fc-` + 32 lowercase hex. Only a SHA-256 of the key is ever stored.

A fast hash is enough here: the key carries 128 random bits, so there is nothing to brute-force,
and lookups by hash stay a single index probe on the hot path.
"""

from __future__ import annotations

import hashlib
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
