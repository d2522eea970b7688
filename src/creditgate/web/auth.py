"""Bearer authentication for team routes and for the admin API."""

from __future__ import annotations

import hmac
from datetime import UTC
from typing import Protocol, TypeVar

from starlette.requests import Request

from creditgate.domain import keys as keygen
from creditgate.domain.errors import FIRECRAWL_UPGRADE_URL
from creditgate.domain.instants import Instant, to_datetime
from creditgate.domain.teams import ApiKey, Team
from creditgate.web.errors import INVALID_TOKEN, TOKEN_MISSING, UNAUTHORIZED, HTTPError
from creditgate.web.limits import Decision, Limiter

BANNED = "Unauthorized: This account has been banned."


def bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case).

    No header is `Unauthorized`; an empty one or `Bearer` alone is `Token missing`; any other
    scheme (`Basic`, `Token`) or a bare token is `Invalid token`, for team keys and the admin
    token alike.
    """
    header = request.headers.get("authorization")
    if header is None:
        raise HTTPError(401, UNAUTHORIZED)
    parts = header.split(" ")
    token = parts[1].strip() if len(parts) > 1 else ""
    if header.strip() and parts[0].lower() != "bearer":
        raise HTTPError(401, INVALID_TOKEN)
    if not token:
        raise HTTPError(401, TOKEN_MISSING)
    return token


class Authenticated(Protocol):
    @property
    def key(self) -> ApiKey: ...
    @property
    def team(self) -> Team: ...


A = TypeVar("A", bound=Authenticated)


def check_token(request: Request) -> str:
    """The presented token if it is well formed, or the Firecrawl 401 that fits."""
    token = bearer_token(request)
    if not keygen.is_well_formed(token):
        raise HTTPError(401, INVALID_TOKEN)
    return token


def admit(found: A | None, now: Instant) -> A:
    """What a lookup found, if the key is live at `now` (not revoked, not expired) and its team
    not suspended (else 401/403). An expired key is refused exactly as an unknown one."""
    if found is None or not found.key.live_at(now):
        raise HTTPError(401, INVALID_TOKEN)
    if found.team.suspended:
        raise HTTPError(403, BANNED)
    return found


def require_admin(request: Request, admin_token: str | None) -> None:
    if admin_token is None:
        raise HTTPError(403, "The admin API is disabled: set CREDITGATE_ADMIN_TOKEN to enable it.")
    token = bearer_token(request)
    if not hmac.compare_digest(token.encode(), admin_token.encode()):
        raise HTTPError(401, INVALID_TOKEN)


def rate_limited(decision: Decision, now: int) -> HTTPError:
    seconds = decision.retry_after_seconds(now)
    resets = to_datetime(decision.resets_at).astimezone(UTC)
    when = resets.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")
    return HTTPError(
        429,
        f"Rate limit exceeded. Consumed (req/min): {decision.consumed}, Remaining (req/min): "
        f"{decision.remaining}. Upgrade your plan at {FIRECRAWL_UPGRADE_URL} for increased "
        f"rate limits or please retry after {seconds}s, resets at {when}",
        headers={"Retry-After": str(seconds)},
    )


KEY_WINDOW = "key"  # the limiter's mode for a key's own requests per minute


async def limit_key(limiter: Limiter, key: ApiKey, now: Instant) -> None:
    """A key's own requests per minute (none: no own limit), checked before its team's, so a
    key held back by its own limit does not spend the team's window. One window per key over
    the account routes and the gateway's work routes; 429 with Firecrawl's text."""
    if key.rpm is None:
        return
    decision = await limiter.hit(f"key:{key.id}", KEY_WINDOW, key.rpm, now)
    if not decision.allowed:
        raise rate_limited(decision, now)
