"""The dashboard's acting forms: what an operator and a team may change, each a POST.

Every action runs the same service operation as its admin API route (services/teams.py,
services/keys.py, services/alerts.py, the ledger's Grant through the context's writer), so the
dashboard cannot do what the API would refuse, or do it otherwise.

Checks, in order, before anything changes (each refusal changes nothing):
1. a session (a team key's, re-checked live, or the operator's);
2. an urlencoded form from this origin carrying the session's CSRF token;
3. the path's team: a team's session acts on its own team only (another's is a 404, as if it
   did not exist), and on its own keys only (services/dashboard.py:team_key); operator-only
   actions are refused to a team's session (403);
4. a valid one-time form id (forms.py), then the fields (the admin API's limits);
5. for what cannot be undone (revoke, rotate) a confirmation page first: the same form again
   with confirm=1;
6. the form id claimed once: a second submit of the same form is refused (409).
Only GET pages exist beside these; a GET never acts (these paths answer a GET with 405).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from creditgate.dashboard.forms import CONFIRM_FIELD, FORM_FIELD, Fields, FormIds
from creditgate.dashboard.pages import HEADERS, Viewer, form_body, render, same_origin, viewer_of
from creditgate.dashboard.session import CSRF_FIELD, same_token
from creditgate.domain.alerts import RuleKind
from creditgate.domain.errors import Conflict, InvalidInput, LedgerError, NotFound
from creditgate.services import alerts, dashboard, ledger
from creditgate.services import keys as key_service
from creditgate.services import teams as team_service
from creditgate.web.context import AppContext, blocking, context

MAX_CREDITS = 10**15  # the admin API's PositiveCredits bound
GRANT_KINDS = ("pack", "coupon")  # "topup" has its own form; "plan" is the ledger's own
NAME_MAX, TEAM_NAME_MAX, NOTE_MAX = 100, 200, 500
MAX_OVERLAP_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Acting:
    """A checked POST: who, for which team (None: no team in the path), its fields, its form."""

    ctx: AppContext
    viewer: Viewer
    team_id: str | None
    fields: Fields
    nonce: str
    signed_form: str


def _error(viewer: Viewer | None, exc: LedgerError) -> Response:
    status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
    stop = "" if exc.message.endswith((".", "!", "?")) else "."
    message = f"{exc.message}{stop} Nothing was changed."
    csrf = viewer.session.csrf if viewer else ""
    return render("error.html", status, viewer=viewer, csrf=csrf, message=message)


def _refuse(viewer: Viewer | None, status: int, message: str) -> Response:
    csrf = viewer.session.csrf if viewer else ""
    return render("error.html", status, viewer=viewer, csrf=csrf, message=message)


async def _check(request: Request, operator_only: bool) -> Acting | Response:
    viewer = await viewer_of(request)
    values = await form_body(request)
    if (
        viewer is None
        or values is None
        or not same_origin(request)
        or not same_token(values.get(CSRF_FIELD), viewer.session.csrf)
    ):
        return _refuse(
            viewer, 403, "The form was not sent from this dashboard (CSRF check failed)."
        )
    team_id = request.path_params.get("team_id")
    if viewer.team_id is not None and team_id is not None and team_id != viewer.team_id:
        return _refuse(viewer, 404, "No such page.")
    if operator_only and not viewer.is_admin:
        return _refuse(viewer, 403, "Only the operator can do this.")
    ctx = context(request)
    signed = values.get(FORM_FIELD, "")
    nonce = FormIds(ctx.session_secret).read(signed)
    if nonce is None:
        return _refuse(viewer, 403, "This form has expired or is not this dashboard's: reload.")
    return Acting(ctx, viewer, team_id, Fields(values), nonce, signed)


async def _claim(acting: Acting) -> Response | None:
    ctx = acting.ctx
    if not await blocking(dashboard.claim_form, ctx.db, acting.nonce, ctx.clock()):
        return _refuse(
            acting.viewer, 409, "This form was already submitted: nothing was done again."
        )
    return None


def _back(team_id: str, done: str) -> Response:
    return RedirectResponse(f"/dashboard/teams/{quote(team_id)}?done={done}", 303, headers=HEADERS)


Handler = Callable[[Acting], Awaitable[Response]]


def _action(handler: Handler, operator_only: bool) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        checked = await _check(request, operator_only)
        if isinstance(checked, Response):
            return checked
        try:
            return await handler(checked)
        except LedgerError as exc:
            return _error(checked.viewer, exc)

    return endpoint


def _confirm(acting: Acting, action: str, question: str, button: str) -> Response:
    """The confirmation page: the same form again (same one-time id), now with confirm=1."""
    fields = {k: v for k, v in acting.fields.values.items() if k not in (CSRF_FIELD, CONFIRM_FIELD)}
    return render(
        "confirm.html",
        viewer=acting.viewer,
        csrf=acting.viewer.session.csrf,
        action=action,
        question=question,
        button=button,
        fields=sorted(fields.items()),
        back=f"/dashboard/teams/{acting.team_id}",
    )


# --- the operator's ---------------------------------------------------------------------------


async def create_team(acting: Acting) -> Response:
    ctx, f = acting.ctx, acting.fields
    name = f.text("name", TEAM_NAME_MAX)
    assert name is not None
    plan = f.choice("plan", await blocking(dashboard.plan_ids, ctx.db))
    # A taken name (names are unique) is refused before the form is used up, so going back
    # and choosing another name works; create_team checks again in its own write.
    await blocking(team_service.refuse_taken_name, ctx.db, name)
    if blocked := await _claim(acting):
        return blocked
    team = await blocking(team_service.create_team, ctx.db, name, ctx.clock(), plan_id=plan)
    return _back(team.id, "team-created")


async def grant(acting: Acting) -> Response:
    return await _grant(acting, acting.fields.choice("kind", GRANT_KINDS), "granted")


async def top_up(acting: Acting) -> Response:
    return await _grant(acting, "topup", "topped-up")


async def _grant(acting: Acting, kind: str, done: str) -> Response:
    ctx, f = acting.ctx, acting.fields
    assert acting.team_id is not None
    credits = f.integer("credits", 1, MAX_CREDITS)
    assert credits is not None
    request = ledger.GrantRequest(
        team_id=acting.team_id,
        credits=credits,
        kind=kind,
        expires_at=f.day("expires"),
        note=f.text("note", NOTE_MAX, required=False),
        idempotency_key=f"dashboard:{acting.nonce}",  # one form, one grant, whatever happens
    )
    if blocked := await _claim(acting):
        return blocked
    await ctx.write(ledger.Grant(request, ctx.clock()), acting.team_id)
    return _back(acting.team_id, done)


async def change_plan(acting: Acting) -> Response:
    ctx, f = acting.ctx, acting.fields
    assert acting.team_id is not None
    plan = f.choice("plan", await blocking(dashboard.plan_ids, ctx.db))
    now = f.flag("now")
    if blocked := await _claim(acting):
        return blocked
    await blocking(
        team_service.update_team, ctx.db, acting.team_id, ctx.clock(), plan_id=plan, plan_now=now
    )
    return _back(acting.team_id, "plan-changed")


async def add_alert(acting: Acting) -> Response:
    ctx, f = acting.ctx, acting.fields
    assert acting.team_id is not None
    kind = f.choice("kind", [str(k) for k in RuleKind])
    threshold = f.integer("threshold", 0, MAX_CREDITS)
    key_id = f.text("key", 64, required=False)
    if key_id is not None:
        await blocking(dashboard.team_key, ctx.db, acting.team_id, key_id)
    if blocked := await _claim(acting):
        return blocked
    await blocking(alerts.add_rule, ctx.db, acting.team_id, kind, threshold, ctx.clock(), key_id)
    return _back(acting.team_id, "alert-added")


async def remove_alert(acting: Acting) -> Response:
    """Remove a rule (added back with the form above: no confirmation)."""
    ctx = acting.ctx
    assert acting.team_id is not None
    rule_id = acting.fields.text("rule", 64)
    assert rule_id is not None
    if blocked := await _claim(acting):
        return blocked
    await blocking(alerts.remove_rule, ctx.db, acting.team_id, rule_id)
    return _back(acting.team_id, "alert-removed")


async def rotate_key(acting: Acting) -> Response:
    ctx, f = acting.ctx, acting.fields
    assert acting.team_id is not None
    key_id = acting.fields.values.get("key", "")
    key = await blocking(dashboard.team_key, ctx.db, acting.team_id, key_id)
    overlap = f.integer("overlap", 0, MAX_OVERLAP_SECONDS, required=False) or 0
    if not f.flag(CONFIRM_FIELD):
        ends = "now" if overlap == 0 else f"in {overlap:,} seconds"
        question = (
            f"Rotate key “{key.name}” ({key.hint})? A new secret replaces it; the old one stops "
            f"working {ends}. This cannot be undone."
        )
        return _confirm(acting, "rotate", question, "Rotate the key")
    if blocked := await _claim(acting):
        return blocked
    rotation = await blocking(key_service.rotate_key, ctx.db, key.id, ctx.clock(), overlap)
    return _secret(acting, rotation.new.key.name, rotation.new.secret, "rotated")


# --- a team's own keys (and the operator's, for any team) -----------------------------------


async def create_key(acting: Acting) -> Response:
    ctx, f = acting.ctx, acting.fields
    assert acting.team_id is not None
    name = f.text("name", NAME_MAX, required=False)
    cap = f.integer("cap", 1, MAX_CREDITS, required=False) if acting.viewer.is_admin else None
    if blocked := await _claim(acting):
        return blocked
    created = await blocking(
        key_service.create_key, ctx.db, acting.team_id, ctx.clock(), name=name, cap=cap
    )
    return _secret(acting, created.key.name, created.secret, "created")


async def revoke_key(acting: Acting) -> Response:
    ctx = acting.ctx
    assert acting.team_id is not None
    key = await blocking(
        dashboard.team_key, ctx.db, acting.team_id, acting.fields.values.get("key", "")
    )
    if key.revoked_at is not None:
        raise InvalidInput(f"Key {key.name} is already revoked.", field="key")
    if not acting.fields.flag(CONFIRM_FIELD):
        own = acting.viewer.session.key_id == key.id
        question = (
            f"Revoke key “{key.name}” ({key.hint})? Requests with it are refused from now on."
            + (" You are signed in with it: this signs you out." if own else "")
            + " This cannot be undone."
        )
        return _confirm(acting, "revoke", question, "Revoke the key")
    if blocked := await _claim(acting):
        return blocked
    await blocking(key_service.revoke_key, ctx.db, key.id, ctx.clock())
    return _back(acting.team_id, "key-revoked")


def _secret(acting: Acting, name: str, secret: str, verb: str) -> Response:
    """The new key, shown this once (the page is not cached; the key is not stored in clear)."""
    return render(
        "secret.html",
        201,
        viewer=acting.viewer,
        csrf=acting.viewer.session.csrf,
        key_name=name,
        secret=secret,
        verb=verb,
        back=f"/dashboard/teams/{acting.team_id}",
    )


ACTIONS: list[tuple[str, Handler, bool]] = [
    ("/dashboard/teams", create_team, True),
    ("/dashboard/teams/{team_id}/grants", grant, True),
    ("/dashboard/teams/{team_id}/topups", top_up, True),
    ("/dashboard/teams/{team_id}/plan", change_plan, True),
    ("/dashboard/teams/{team_id}/alerts", add_alert, True),
    ("/dashboard/teams/{team_id}/alerts/remove", remove_alert, True),
    ("/dashboard/teams/{team_id}/keys/rotate", rotate_key, True),
    ("/dashboard/teams/{team_id}/keys", create_key, False),
    ("/dashboard/teams/{team_id}/keys/revoke", revoke_key, False),
]


def routes() -> list[BaseRoute]:
    return [Route(path, _action(h, only), methods=["POST"]) for path, h, only in ACTIONS]
