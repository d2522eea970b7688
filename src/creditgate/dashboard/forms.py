"""The dashboard's acting forms: each rendered form carries the session's CSRF token and a
one-time form id; a POST is checked for both before any field is read further.

A form id is a random nonce signed (itsdangerous, timed) with the session secret, so one cannot
be made up and an old one (older than a session) is refused. The first POST that uses it claims
it in the database (services/dashboard.py:claim_form); a second POST with the same id (a double
click, the browser's resend, a replayed capture) is refused and changes nothing. A grant's or a
top-up's idempotency key is derived from the same id, so even a claim lost to a crash between
claiming and granting cannot grant twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from creditgate.dashboard.session import MAX_AGE_SECONDS, new_token
from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import Instant, InvalidInstant, parse_iso

FORM_FIELD = "form"
CONFIRM_FIELD = "confirm"


class FormIds:
    def __init__(self, secret: str) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="creditgate.dashboard.form")

    def new(self) -> str:
        return self._signer.dumps(new_token())

    def read(self, signed: str | None) -> str | None:
        """The form's nonce, or None when it is missing, forged or older than a session."""
        if not signed:
            return None
        try:
            nonce = self._signer.loads(signed, max_age=MAX_AGE_SECONDS)
        except BadSignature:
            return None
        return nonce if isinstance(nonce, str) else None


@dataclass(frozen=True, slots=True)
class Fields:
    """A submitted form's fields, read with the checks the admin API's body models make."""

    values: dict[str, str]

    def text(self, name: str, max_length: int, required: bool = True) -> str | None:
        value = self.values.get(name, "").strip()
        if not value:
            if required:
                raise InvalidInput(f"{name}: required", field=name)
            return None
        if len(value) > max_length or "\x00" in value:
            raise InvalidInput(f"{name}: at most {max_length} characters, no NUL", field=name)
        return value

    def integer(self, name: str, low: int, high: int, required: bool = True) -> int | None:
        raw = self.values.get(name, "").strip().replace(",", "").replace("_", "")
        if not raw:
            if required:
                raise InvalidInput(f"{name}: required", field=name)
            return None
        if not raw.isdigit():
            raise InvalidInput(f"{name}: a whole number", field=name)
        value = int(raw)
        if not low <= value <= high:
            raise InvalidInput(f"{name}: must be {low:,} to {high:,}", field=name)
        return value

    def choice(self, name: str, choices: tuple[str, ...] | list[str]) -> str:
        value = self.values.get(name, "")
        if value not in choices:
            raise InvalidInput(f"{name}: must be one of {', '.join(choices)}", field=name)
        return value

    def flag(self, name: str) -> bool:
        return self.values.get(name) in ("1", "on", "yes", "true")

    def day(self, name: str) -> Instant | None:
        """A date (YYYY-MM-DD, as <input type=date> sends it) as its UTC midnight."""
        value = self.values.get(name, "").strip()
        if not value:
            return None
        return parse_day(value, name)


def parse_day(value: str, name: str) -> Instant:
    try:
        if len(value) != 10:
            raise InvalidInstant(value)
        return parse_iso(value + "T00:00:00Z")
    except InvalidInstant as exc:
        raise InvalidInput(f"{name}: a date as YYYY-MM-DD", field=name) from exc
