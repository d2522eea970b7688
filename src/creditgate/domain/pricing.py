"""Units of account. Credits are integers; tokens are a fixed multiple of credits."""

from __future__ import annotations

TOKENS_PER_CREDIT = 15

# Largest amount a single write may move: far above any real plan, far below 2**63.
MAX_CREDITS = 10**12


def credits_to_tokens(credits: int) -> int:
    return credits * TOKENS_PER_CREDIT
