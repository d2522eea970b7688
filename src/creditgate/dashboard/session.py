"""The dashboard's session: a signed cookie that names who signed in, never with what.

A session cookie holds, signed with the session secret (itsdangerous, HMAC-SHA256, timed):
the role (`team` or `admin`), for a team the key's id, a check (HMAC of the key's stored
SHA-256 hash, or of the admin token, under the session secret: no key or token appears in the
cookie, in clear or hashed as stored), its CSRF token and when it was issued. Every request
re-checks it against the database (services/keys.py:session_key): the key still exists with
the same hash, is not revoked, and its team is not suspended; for the operator, that the admin
token is still the one signed in with. The cookie is HttpOnly, SameSite=Strict, Path=/dashboard,
Secure when served over https, and lasts at most MAX_AGE_SECONDS.

Before sign-in, a second short-lived signed cookie carries the sign-in form's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "creditgate_session"
SIGNIN_COOKIE = "creditgate_signin"
PATH = "/dashboard"
MAX_AGE_SECONDS = 12 * 3600
SIGNIN_MAX_AGE_SECONDS = 3600
CSRF_FIELD = "csrf"

Role = Literal["team", "admin"]


@dataclass(frozen=True, slots=True)
class Session:
    role: Role
    key_id: str | None  # the team key's id (role "team")
    check: str  # HMAC of the key's stored hash, or of the admin token
    csrf: str


class Cookies:
    """Signs and reads the dashboard's two cookies with the session secret."""

    def __init__(self, secret: str, secure: bool) -> None:
        self.secret = secret.encode()
        self.secure = secure
        self._session = URLSafeTimedSerializer(secret, salt="creditgate.dashboard.session")
        self._signin = URLSafeTimedSerializer(secret, salt="creditgate.dashboard.signin")

    def check_of(self, material: str) -> str:
        """What a session stores to name a key's hash or the admin token without holding it."""
        return hmac.new(self.secret, material.encode(), hashlib.sha256).hexdigest()

    def matches(self, session: Session, material: str) -> bool:
        return hmac.compare_digest(session.check, self.check_of(material))

    def new_session(self, role: Role, key_id: str | None, material: str) -> Session:
        return Session(role, key_id, self.check_of(material), new_token())

    def read(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._session.loads(raw, max_age=MAX_AGE_SECONDS)
        except BadSignature:  # a forged, altered or expired cookie: signed out
            return None
        if not isinstance(data, dict) or data.get("role") not in ("team", "admin"):
            return None
        key_id, check, csrf = data.get("key"), data.get("check"), data.get("csrf")
        if not isinstance(check, str) or not isinstance(csrf, str):
            return None
        if data["role"] == "team" and not isinstance(key_id, str):
            return None
        return Session(data["role"], key_id if isinstance(key_id, str) else None, check, csrf)

    def write(self, response: Response, session: Session) -> None:
        value = self._session.dumps(
            {
                "role": session.role,
                "key": session.key_id,
                "check": session.check,
                "csrf": session.csrf,
            }
        )
        self._set(response, COOKIE, value, MAX_AGE_SECONDS)
        response.delete_cookie(SIGNIN_COOKIE, path=PATH, secure=self.secure, httponly=True)

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path=PATH, secure=self.secure, httponly=True, samesite="strict"
        )

    def signin_token(self, request: Request) -> str | None:
        """The sign-in form's CSRF token from its cookie, if valid."""
        raw = request.cookies.get(SIGNIN_COOKIE)
        if not raw:
            return None
        try:
            token = self._signin.loads(raw, max_age=SIGNIN_MAX_AGE_SECONDS)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None

    def set_signin_token(self, response: Response, token: str) -> None:
        """Send the sign-in form's CSRF token (new_token()) in its signed cookie."""
        self._set(response, SIGNIN_COOKIE, self._signin.dumps(token), SIGNIN_MAX_AGE_SECONDS)

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=PATH,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str | None) -> bool:
    """A form's CSRF token equals the session's (constant time; missing is never equal)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
