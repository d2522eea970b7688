"""The ledger's one write path. Every credit movement — grant, charge, batch event, hold,
settlement, release, expiry, period rollover, reported total — is an operation applied by
`apply`, in these steps, to one team's operations in one transaction (ledger promise 9):

  0. find     the team each operation moves credits of (its key or reservation), before locking
  1. lock     the team, and load its book (storage/book.py)
  2. roll     forward: new periods' plan credits, expired grants and holds (domain/book.py)
  3. replay   a repeated idempotency key with the same content (its first answer), or refuse it
              with other content (409)
  4. admit    and move: the key it spends through must be live and its team not suspended
              (checked here, for every operation that names one), then the operation's own
              checks, the single cap-and-balance check and the movement, in memory; a refused
              operation raises before it changes anything; a guarded one's answer is recorded
              under its idempotency key (here too, for every operation)
  5. write    each team's changes once, in a statement per kind of change

The caller commits, and acknowledges nothing before the commit: services/writer.py batches a
team's concurrent operations in a process into one such transaction (group commit); `run` and
`run_all` apply operations in transactions of their own.

Checks run in a fixed order and the first failure wins:
  1. input (amount, text lengths)            -> InvalidInput   (when the operation is built)
  2. key / team / reservation exists         -> NotFound
  3. idempotency key seen: same content      -> replay the first result
                           other content     -> IdempotencyConflict
  4. key revoked                             -> Conflict
  5. team suspended                          -> TeamSuspended
  6. time: not > 5 min ahead, not before the team's first period -> InvalidInput
  7. key's per-period cap                    -> InsufficientCredits(reason="key cap")
  8. team's available credits                -> InsufficientCredits(reason="team")
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from creditgate.domain.book import Book, Details
from creditgate.domain.errors import InvalidInput, LedgerError, NotFound, TeamSuspended
from creditgate.domain.grants import GRANT_KINDS
from creditgate.domain.instants import Instant, format_iso
from creditgate.domain.keys import hash_key
from creditgate.domain.plans import Plan
from creditgate.domain.pricing import MAX_CREDITS
from creditgate.domain.teams import ApiKey, Team
from creditgate.domain.text import refuse_nul
from creditgate.storage import book as books
from creditgate.storage.book import Wants
from creditgate.storage.database import Database
from creditgate.storage.tx import Tx

# How far ahead of the server's clock a charge may be dated (clock skew between services).
MAX_FUTURE_MS = 5 * 60 * 1000
MAX_TEXT = {"endpoint": 64, "api_version": 8, "job_id": 200, "target": 2048, "note": 500}
MAX_IDEMPOTENCY_KEY = 200

R = TypeVar("R", covariant=True)


class Operation(Protocol[R]):
    """One credit movement. Built from checked input; applied by `apply`."""

    now: Instant

    def find(self, tx: Tx) -> str:
        """The id of the team whose credits it moves (NotFound if what it names is not)."""
        ...

    def wants(self) -> Wants:
        """What it will read from the book, so the book loads it up front."""
        ...

    def idempotency(self) -> tuple[str, str] | None:
        """(idempotency key, hash of the content it guards), if the caller gave a key."""
        ...

    def replayed(self, stored: dict[str, Any]) -> R:
        """The answer to a repeat: the first answer, marked replayed."""
        ...

    def spends_through(self) -> str | None:
        """The id of the key it spends through, which `apply` requires live (not revoked) in a
        team not suspended (checks 4 and 5); None if it names no key or may act on a closed
        one (a settlement of work already admitted)."""
        ...

    def apply(self, book: Book) -> R:
        """Admit and move, in memory; raises, changing nothing, when refused."""
        ...

    def movement(self, result: Any) -> str:
        """The movement an idempotency record of this result names (after `apply`)."""
        ...


Outcome = Any | LedgerError


def apply(tx: Tx, team_id: str, operations: Sequence[Operation[Any]]) -> list[Outcome]:
    """Apply one team's operations in `tx` (steps 0 to 5 above): each one's result, or the
    LedgerError that refused it. Other exceptions (the database failing) propagate."""
    outcomes: list[Outcome] = [None] * len(operations)
    ours: list[int] = []
    for n, op in enumerate(operations):  # 0. find: each names this team (free when it is known)
        try:
            if op.find(tx) != team_id:
                raise NotFound(f"Team {team_id} has no such key or reservation", teamId=team_id)
            ours.append(n)
        except LedgerError as exc:
            outcomes[n] = exc
    if not ours:
        return outcomes
    now = max(operations[n].now for n in ours)
    try:
        book = books.load(tx, team_id, now, _wants([operations[n] for n in ours]))  # 1. lock
    except NotFound as exc:
        return [exc if n in ours else outcome for n, outcome in enumerate(outcomes)]
    book.roll_forward()  # 2. roll forward
    for n in ours:
        outcomes[n] = _one(book, operations[n])  # 3. replay and 4. admit
    charged = sum(book.changes.per_period.values())  # what the movements charged, replays none
    books.save(tx, book)  # 5. write once
    if charged:
        # imported here: prometheus_client is for the server, not a CLI command that only reads
        from creditgate.services import metrics

        tx.after_commit(partial(metrics.credits_charged, charged))
    return outcomes


def _one(book: Book, op: Operation[Any]) -> Outcome:
    try:
        guard = op.idempotency()
        if guard is not None:  # 3. replay or refuse
            previous = book.replay(*guard)
            if previous is not None:
                return op.replayed(previous)
        key_id = op.spends_through()
        if key_id is not None:  # 4. the key live, its team not suspended
            spendable_key(book, key_id)
        result = op.apply(book)  # 4. admit and move
        if guard is not None:  # remembered with the movement, written in step 5
            book.remember(guard[0], guard[1], op.movement(result), stored_form(result))
        return result
    except LedgerError as exc:
        return exc


def spendable_key(book: Book, key_id: str) -> ApiKey:
    """Checks 4 and 5: the key, not revoked, of a team not suspended."""
    key = book.active_key(key_id)
    if book.team.suspended:
        raise TeamSuspended()
    return key


def _wants(ops: Sequence[Operation[Any]]) -> Wants:
    keys: set[str] = set()
    held: set[str] = set()
    guarded: set[str] = set()
    since: list[Instant] = []
    for op in ops:
        wanted = op.wants()
        keys.update(wanted.keys)
        held.update(wanted.reservations)
        guarded.update(wanted.idempotency)
        if wanted.since is not None:
            since.append(wanted.since)
    return Wants(keys, held, guarded, min(since, default=None))


def run(db: Database, operation: Operation[Any]) -> Any:
    """Apply one operation in a transaction of its own: its result, or raise its error."""
    (outcome,) = run_all(db, [operation])
    if isinstance(outcome, LedgerError):
        raise outcome
    return outcome


def run_all(db: Database, operations: Sequence[Operation[Any]]) -> list[Outcome]:
    """Apply the operations, a transaction per team (ledger promise 9), teams in id order."""
    outcomes: list[Outcome] = list(find_all(db, operations))
    by_team: dict[str, list[int]] = {}
    for n, team in enumerate(outcomes):
        if isinstance(team, str):
            by_team.setdefault(team, []).append(n)
    for team_id in sorted(by_team):
        positions = by_team[team_id]
        with db.transaction() as tx:
            done = apply(tx, team_id, [operations[n] for n in positions])
        for n, outcome in zip(positions, done, strict=True):
            outcomes[n] = outcome
    return outcomes


def find_all(db: Database, operations: Sequence[Operation[Any]]) -> list[str | LedgerError]:
    """Step 0 for a list: each operation's team id, or the error of one that names nothing."""
    found: list[str | LedgerError] = []
    with db.read() as conn:
        tx = Tx.of(conn)
        for op in operations:
            try:
                found.append(op.find(tx))
            except LedgerError as exc:
                found.append(exc)
    return found


# --- input -----------------------------------------------------------------------------------


def check_amount(credits: object, *, allow_zero: bool = True) -> int:
    if isinstance(credits, bool) or not isinstance(credits, int):
        raise InvalidInput("credits must be a whole number", field="credits")
    if credits < (0 if allow_zero else 1) or credits > MAX_CREDITS:
        low = 0 if allow_zero else 1
        raise InvalidInput(f"credits must be between {low} and {MAX_CREDITS}", field="credits")
    return credits


def check_texts(**texts: str | None) -> None:
    for name, value in texts.items():
        if value is not None and len(value) > MAX_TEXT.get(name, MAX_IDEMPOTENCY_KEY):
            raise InvalidInput(f"{name} is too long", field=name)
        refuse_nul(value, name)


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} characters", field="id"
        )
    refuse_nul(key, "idempotency key", "id")


def stored_form(result: Any) -> dict[str, Any]:
    """A result's fields as its idempotency record keeps them: all but `replayed`."""
    return {
        name: getattr(result, name) for name in result.__dataclass_fields__ if name != "replayed"
    }


def request_hash(operation: str, content: dict[str, Any]) -> str:
    canonical = json.dumps([operation, content], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_key(tx: Tx, key_or_id: str) -> ApiKey:
    """A key by the fc- key itself or by its id."""
    if key_or_id.startswith("fc-"):
        found = books.key_by_hash(tx, hash_key(key_or_id))
        if found is None:
            raise NotFound("API key not found")
        return found
    found = books.key_by_id(tx, key_or_id)
    if found is None:
        raise NotFound(f"API key {key_or_id} not found", keyId=key_or_id)
    return found


# --- charges ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    key: str  # the fc- key itself or its id
    credits: int
    at: Instant | None = None  # None: now
    endpoint: str | None = None
    api_version: str | None = None
    job_id: str | None = None
    target: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeResult:
    id: str
    team_id: str
    key_id: str
    credits: int
    occurred_at: Instant
    period_start: Instant
    overage: int  # credits charged beyond the balance (teams allowed overage only)
    remaining_credits: int  # the team's available credits right after this charge
    replayed: bool = False


def check_charge(request: ChargeRequest) -> None:
    """Check 1 of the order above: the request's own values, before anything is read."""
    check_amount(request.credits)
    check_texts(
        endpoint=request.endpoint,
        api_version=request.api_version,
        job_id=request.job_id,
        target=request.target,
    )
    check_idempotency_key(request.idempotency_key)
    refuse_nul(request.key, "key")


class Charge:
    """Spend credits now (or at a past instant) for a key."""

    def __init__(self, request: ChargeRequest, now: Instant, key: ApiKey | None = None) -> None:
        check_charge(request)
        self.request, self.now, self._key = request, now, key
        self._guard: tuple[str, str] | None = None

    def for_key(self, key: ApiKey) -> Charge:
        """The same charge, its key already found (a batch looks each key up once)."""
        self._key = key
        return self

    def find(self, tx: Tx) -> str:
        if self._key is None:
            self._key = find_key(tx, self.request.key)
        return self._key.team_id

    def wants(self) -> Wants:
        assert self._key is not None
        guarded = () if self.request.idempotency_key is None else (self.request.idempotency_key,)
        return Wants(keys=(self._key.id,), idempotency=guarded, since=self.request.at)

    def idempotency(self) -> tuple[str, str] | None:
        if self.request.idempotency_key is None:
            return None
        if self._guard is None:  # hashed once: checked at step 3, remembered at step 4
            assert self._key is not None
            digest = request_hash("charge", self._content(self._key.id))
            self._guard = (self.request.idempotency_key, digest)
        return self._guard

    def _content(self, key_id: str) -> dict[str, Any]:
        """What a charge's idempotency hash covers (the key by id, whichever form was sent)."""
        r = self.request
        return {
            "key": key_id,
            "credits": r.credits,
            "at": r.at,
            "endpoint": r.endpoint,
            "api_version": r.api_version,
            "job_id": r.job_id,
            "target": r.target,
        }

    def replayed(self, stored: dict[str, Any]) -> ChargeResult:
        return ChargeResult(**{**stored, "replayed": True})

    def spends_through(self) -> str:
        assert self._key is not None
        return self._key.id

    def movement(self, result: ChargeResult) -> str:
        return result.id

    def apply(self, book: Book) -> ChargeResult:
        request = self.request
        key = book.key(self.spends_through())  # live, in a team not suspended (`apply`)
        at = book.now if request.at is None else request.at
        if at > book.now + MAX_FUTURE_MS:
            raise InvalidInput(
                "timestamp is more than 5 minutes in the future", field="at", at=format_iso(at)
            )
        posted = book.charge(
            key,
            request.credits,
            at,
            Details(request.endpoint, request.api_version, request.job_id, request.target),
            overage_ok=book.team.allow_overage,
        )
        return ChargeResult(
            id=posted.movement_id,
            team_id=book.team.id,
            key_id=key.id,
            credits=request.credits,
            occurred_at=at,
            period_start=posted.period_start,
            overage=posted.overage,
            remaining_credits=book.available_now(),
        )


def charge(db: Database, request: ChargeRequest, now: Instant) -> ChargeResult:
    result: ChargeResult = run(db, Charge(request, now))
    return result


# --- grants ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantRequest:
    team_id: str
    credits: int
    kind: str = "pack"
    expires_at: Instant | None = None
    note: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class GrantResult:
    id: str
    team_id: str
    kind: str
    credits: int
    starts_at: Instant
    expires_at: Instant | None
    remaining_credits: int
    replayed: bool = False


class Grant:
    """Credits that arrive: a pack, a coupon or a top-up (plan credits come by rolling)."""

    def __init__(self, request: GrantRequest, now: Instant) -> None:
        check_amount(request.credits, allow_zero=False)
        check_texts(note=request.note)
        check_idempotency_key(request.idempotency_key)
        refuse_nul(request.team_id, "team")
        if request.kind not in GRANT_KINDS or request.kind == "plan":
            kinds = ", ".join(k for k in GRANT_KINDS if k != "plan")
            raise InvalidInput(f"kind must be one of: {kinds}", field="kind")
        if request.expires_at is not None and request.expires_at <= now:
            raise InvalidInput("expiry must be in the future", field="expiresAt")
        self.request, self.now = request, now

    def find(self, tx: Tx) -> str:
        return self.request.team_id

    def wants(self) -> Wants:
        key = self.request.idempotency_key
        return Wants(idempotency=() if key is None else (key,))

    def idempotency(self) -> tuple[str, str] | None:
        if self.request.idempotency_key is None:
            return None
        content: dict[str, Any] = asdict(self.request)
        del content["idempotency_key"]
        return self.request.idempotency_key, request_hash("grant", content)

    def replayed(self, stored: dict[str, Any]) -> GrantResult:
        return GrantResult(**{**stored, "replayed": True})

    def spends_through(self) -> None:
        return None

    def movement(self, result: GrantResult) -> str:
        return result.id

    def apply(self, book: Book) -> GrantResult:
        r = self.request
        grant_id = book.grant(r.kind, r.credits, r.expires_at, r.note)
        return GrantResult(
            id=grant_id,
            team_id=book.team.id,
            kind=r.kind,
            credits=r.credits,
            starts_at=book.now,
            expires_at=r.expires_at,
            remaining_credits=book.available_now(),
        )


def grant(db: Database, request: GrantRequest, now: Instant) -> GrantResult:
    result: GrantResult = run(db, Grant(request, now))
    return result


# --- operations on a team by its id ---------------------------------------------------------


class TeamOperation:
    """An operation that names its team by id, reads nothing beyond the book's own rows and
    takes no idempotency key (an operator's or the server's own act): subclasses give `apply`."""

    def __init__(self, team_id: str, now: Instant) -> None:
        self.team_id, self.now = team_id, now

    def find(self, tx: Tx) -> str:
        return self.team_id

    def wants(self) -> Wants:
        return Wants()

    def idempotency(self) -> tuple[str, str] | None:
        return None

    def replayed(self, stored: dict[str, Any]) -> Any:
        raise AssertionError(f"{type(self).__name__} takes no idempotency key")

    def spends_through(self) -> None:
        return None

    def movement(self, result: Any) -> str:
        raise AssertionError(f"{type(self).__name__} takes no idempotency key")


class RollForward(TeamOperation):
    """Nothing but step 2: the team's new periods' credits, expired grants and holds."""

    def apply(self, book: Book) -> tuple[Team, Plan]:
        return book.rolled_team(), book.plan


class ChangePlan(TeamOperation):
    """Move a team to another plan (domain/book.py Book.change_plan): limits at once, the new
    plan's credits from the next period, or, `at_once`, the current period raised to them."""

    def __init__(self, team_id: str, plan: Plan, now: Instant, *, at_once: bool) -> None:
        super().__init__(team_id, now)
        self.plan, self.at_once = plan, at_once

    def apply(self, book: Book) -> int:
        return book.change_plan(self.plan, self.at_once)


def roll_forward(tx: Tx, team_id: str, now: Instant) -> tuple[Team, Plan]:
    """Bring the team up to date inside an open transaction; the team and its plan."""
    (outcome,) = apply(tx, team_id, [RollForward(team_id, now)])
    if isinstance(outcome, LedgerError):
        raise outcome
    team, plan = outcome
    return team, plan


def roll_forward_now(db: Database, team_id: str, now: Instant) -> tuple[Team, Plan]:
    team, plan = run(db, RollForward(team_id, now))
    return team, plan
