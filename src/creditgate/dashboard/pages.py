"""The dashboard's routes: sign-in, sign-out, the operator's overview and a team's page.

A handler finds who is signed in (session.py, re-checked against the database), calls one
service (services/dashboard.py: the same calls the account and admin APIs answer from), turns
its figures into chart shapes (charts.py) and renders a template. Templates autoescape
everything and hold no logic beyond loops and conditions.

Access: a team key's session sees its own team's page only (any other team's is a 404, as is
an unknown team); the operator's (admin token) sees the overview and every team. Every POST
carries the session's CSRF token (the sign-in form: the sign-in cookie's), checked before
anything else; a cross-origin POST is refused on its Origin header too.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from creditgate.dashboard import charts
from creditgate.dashboard.forms import FormIds, parse_day
from creditgate.dashboard.session import CSRF_FIELD, Cookies, Session, new_token, same_token
from creditgate.domain import keys as keygen
from creditgate.domain.errors import InvalidInput, NotFound
from creditgate.domain.instants import Instant, format_iso
from creditgate.services import dashboard, export
from creditgate.services import keys as key_service
from creditgate.web.context import AppContext, blocking, context
from creditgate.web.requestlog import fields

SIGNIN_FAILURES_PER_MINUTE = 10  # failed sign-ins per client address
MAX_FORM_BYTES = 4096
MAX_FORM_FIELDS = 16
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _day(instant: Instant) -> str:
    return format_iso(instant)[:10]


def _when(instant: Instant | None) -> str:
    return "" if instant is None else format_iso(instant)


def _num(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _readable(value: Instant | str | None) -> str:
    """An instant as people read it, in UTC and saying so: 2026-12-07 21:04:05 UTC."""
    if value is None or value == "":
        return ""
    text = value if isinstance(value, str) else format_iso(value)
    return f"{text[:10]} {text[11:19]} UTC"


_env = Environment(
    loader=PackageLoader("creditgate.dashboard", "templates"),
    autoescape=True,  # every value printed is escaped: team and key names are user input
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(day=_day, when=_when, num=_num, readable=_readable)


def render(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = _env.get_template(name).render(**values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _cookies(request: Request) -> Cookies:
    ctx = context(request)
    secure = (ctx.public_url or "").startswith("https://") or request.url.scheme == "https"
    return Cookies(ctx.session_secret, secure)


@dataclass(frozen=True, slots=True)
class Viewer:
    session: Session
    team_id: str | None  # a team's session; None: the operator

    @property
    def is_admin(self) -> bool:
        return self.team_id is None


async def viewer_of(request: Request) -> Viewer | None:
    """Who is signed in, re-checked now: the key live with the same hash and its team not
    suspended, or the admin token unchanged. None: signed out."""
    ctx = context(request)
    cookies = _cookies(request)
    session = cookies.read(request)
    if session is None:
        return None
    if session.role == "admin":
        if ctx.admin_token is None or not cookies.matches(session, ctx.admin_token):
            return None
        return Viewer(session, None)
    assert session.key_id is not None
    found = await blocking(key_service.session_key, ctx.db, session.key_id)
    if found is None:
        return None
    key, team, key_hash = found
    if not key.live_at(ctx.clock()) or team.suspended or not cookies.matches(session, key_hash):
        return None
    logged = fields(request)
    logged.team, logged.key = team.id, key.hint
    return Viewer(session, team.id)


def _to_signin(request: Request) -> Response:
    response = RedirectResponse("/dashboard/signin", status_code=303, headers=HEADERS)
    if request.cookies.get("creditgate_session"):
        _cookies(request).clear(response)  # a stale or invalid session: drop it
    return response


def _not_found(viewer: Viewer | None) -> Response:
    return render("error.html", 404, viewer=viewer, message="No such page.")


def _refused(viewer: Viewer | None, message: str) -> Response:
    return render("error.html", 403, viewer=viewer, message=message)


async def form_body(request: Request) -> dict[str, str] | None:
    """An urlencoded form's fields (first value each); None when it is not one or too big."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in parsed.items()}


def same_origin(request: Request) -> bool:
    """A POST from a page of another origin is refused (SameSite=Strict and the CSRF token
    already stop it; this is the third lock). No Origin header (old clients) passes."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    ctx = context(request)
    own = {f"{request.url.scheme}://{request.url.netloc}"}
    if ctx.public_url:
        parts = urlsplit(ctx.public_url)
        own.add(f"{parts.scheme}://{parts.netloc}")
    return origin in own


# --- routes ---------------------------------------------------------------------------------


async def index(request: Request) -> Response:
    viewer = await viewer_of(request)
    if viewer is None:
        return _to_signin(request)
    if viewer.team_id is not None:
        return RedirectResponse(f"/dashboard/teams/{viewer.team_id}", 303, headers=HEADERS)
    ctx = context(request)
    found = await blocking(dashboard.overview, ctx.db, ctx.clock())
    plan_ids = await blocking(dashboard.plan_ids, ctx.db)
    return render(
        "operator.html",
        viewer=viewer,
        overview=found,
        csrf=viewer.session.csrf,
        form_id=FormIds(ctx.session_secret).new,
        plan_ids=plan_ids,
    )


async def signin_page(request: Request) -> Response:
    if await viewer_of(request) is not None:
        return RedirectResponse("/dashboard", 303, headers=HEADERS)
    return _signin_form(request, None, 200)


def _signin_form(request: Request, error: str | None, status: int) -> Response:
    token = new_token()
    response = render("signin.html", status, viewer=None, error=error, csrf=token)
    _cookies(request).set_signin_token(response, token)
    return response


async def signin(request: Request) -> Response:
    ctx = context(request)
    cookies = _cookies(request)
    form = await form_body(request)
    if (
        form is None
        or not same_origin(request)
        or not same_token(form.get(CSRF_FIELD), cookies.signin_token(request))
    ):
        return _refused(None, "The form was not sent from this dashboard (CSRF check failed).")
    token = form.get("token", "").strip()
    session = await _session_for(ctx, cookies, token)
    if session is None:
        # Failures are limited per address; a correct credential always signs in (an attacker
        # at the same address cannot lock the admin out). Guessing stays hopeless: a key is 128
        # random bits, the admin token at least 16 characters (settings.ADMIN_TOKEN_MIN).
        client = request.client.host if request.client else "unknown"
        decision = await ctx.limiter.hit(
            f"dashboard:{client}", "signin", SIGNIN_FAILURES_PER_MINUTE, ctx.clock()
        )
        if not decision.allowed:
            return _signin_form(request, "Too many failed sign-ins: wait a minute.", 429)
        return _signin_form(request, "Sign-in failed: unknown, revoked or suspended key.", 401)
    response = RedirectResponse("/dashboard", 303, headers=HEADERS)
    cookies.write(response, session)
    return response


async def _session_for(ctx: AppContext, cookies: Cookies, token: str) -> Session | None:
    """A new session for a team key that is live (its team not suspended), or for the admin
    token; None for anything else."""
    if ctx.admin_token is not None and hmac.compare_digest(
        token.encode(), ctx.admin_token.encode()
    ):
        return cookies.new_session("admin", None, ctx.admin_token)
    if not keygen.is_well_formed(token):
        return None
    found = await blocking(key_service.authenticate, ctx.db, token)
    if found is None:
        return None
    key, team = found
    if not key.live_at(ctx.clock()) or team.suspended:
        return None
    return cookies.new_session("team", key.id, keygen.hash_key(token))


async def signout(request: Request) -> Response:
    cookies = _cookies(request)
    session = cookies.read(request)
    form = await form_body(request)
    if (
        session is None
        or form is None
        or not same_origin(request)
        or not same_token(form.get(CSRF_FIELD), session.csrf)
    ):
        return _refused(None, "The form was not sent from this dashboard (CSRF check failed).")
    response = RedirectResponse("/dashboard/signin", 303, headers=HEADERS)
    cookies.clear(response)
    return response


DONE = {  # the notice after an action (a fixed text: nothing from the URL is printed)
    "team-created": "Team created.",
    "granted": "Credits granted.",
    "topped-up": "Credits topped up.",
    "plan-changed": "Plan changed.",
    "alert-added": "Alert rule added.",
    "alert-removed": "Alert rule removed.",
    "key-revoked": "Key revoked.",
}


def _range(request: Request, default_first: Instant, now: Instant) -> dashboard.DayRange:
    """The page's date range from ?from=YYYY-MM-DD&to=YYYY-MM-DD (both days included)."""
    given = {n: request.query_params.get(n) or None for n in ("from", "to")}
    first = None if given["from"] is None else parse_day(given["from"], "from")
    last = None if given["to"] is None else parse_day(given["to"], "to")
    return dashboard.day_range(first, last, default_first, now)


async def _team_of(request: Request) -> tuple[Viewer, str] | Response:
    """The signed-in viewer and the path's team, if this viewer may see it."""
    viewer = await viewer_of(request)
    if viewer is None:
        return _to_signin(request)
    team_id = request.path_params["team_id"]
    if viewer.team_id is not None and viewer.team_id != team_id:
        return _not_found(viewer)  # another team's page does not exist for this key
    return viewer, team_id


async def team_page(request: Request) -> Response:
    found = await _team_of(request)
    if isinstance(found, Response):
        return found
    viewer, team_id = found
    ctx = context(request)
    now = ctx.clock()
    try:
        queued = await ctx.limiter.queued(team_id)  # requests waiting for a slot (queue-status)
        view = await blocking(dashboard.team_view, ctx.db, team_id, now, queued)
    except NotFound:
        return _not_found(viewer)
    try:
        days = _range(request, await blocking(dashboard.period_start, ctx.db, team_id, now), now)
    except InvalidInput as exc:
        return render(
            "error.html", 400, viewer=viewer, csrf=viewer.session.csrf, message=exc.message
        )
    daily = await blocking(dashboard.daily_in, ctx.db, team_id, days)
    entries = await blocking(dashboard.entries_in, ctx.db, team_id, days)
    grants = await blocking(dashboard.grants, ctx.db, team_id) if viewer.is_admin else None
    plan_ids = await blocking(dashboard.plan_ids, ctx.db) if viewer.is_admin else []
    alerts = await blocking(dashboard.team_alerts, ctx.db, team_id, now)
    form_ids = FormIds(ctx.session_secret)
    range_query = urlencode({"from": _day(days.first), "to": _day(days.last)})
    return render(
        "team.html",
        viewer=viewer,
        csrf=viewer.session.csrf,
        form_id=form_ids.new,
        done=DONE.get(request.query_params.get("done", "")),
        view=view,
        days=days,
        range_query=range_query,
        daily_usage=daily,
        entries=entries,
        grants=grants,
        plan_ids=plan_ids,
        alerts=alerts,
        gauge=charts.gauge(view.usage.remaining, view.usage.plan_credits),
        daily=charts.axis_chart([values for _, values in daily.series]),
        history=charts.shares([r.credits for r in view.history]),
        palette=charts.PALETTE_SIZE,
    )


async def export_csv(request: Request) -> Response:
    """What the page shows for its date range, as CSV: the ledger entries (what=entries) or the
    daily chart's figures (what=day), through services/export.py (formulas neutralised)."""
    found = await _team_of(request)
    if isinstance(found, Response):
        return found
    viewer, team_id = found
    ctx = context(request)
    now = ctx.clock()
    what = request.query_params.get("what")
    try:
        days = _range(request, await blocking(dashboard.period_start, ctx.db, team_id, now), now)
        if what not in ("entries", "day"):
            raise InvalidInput("what: must be one of entries, day", field="what")
        wanted = ("entries", None) if what == "entries" else ("usage", "day")
        prepared = await blocking(
            export.prepare, ctx.db, team_id, *wanted, "csv", days.start_iso, days.end_iso
        )
    except NotFound:
        return _not_found(viewer)
    except InvalidInput as exc:
        return render(
            "error.html", 400, viewer=viewer, csrf=viewer.session.csrf, message=exc.message
        )
    body = b"".join(await blocking(lambda: list(export.stream(ctx.db, prepared))))
    name = f"{team_id}-{what}-{_day(days.first)}-{_day(days.last)}.csv"
    return Response(
        body,
        media_type=prepared.media_type,
        headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )


async def stylesheet(_request: Request) -> Response:
    css = resources.files("creditgate.dashboard").joinpath("static/dashboard.css").read_bytes()
    return Response(
        css,
        media_type="text/css",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/dashboard", index, methods=["GET"]),
        Route("/dashboard/signin", signin_page, methods=["GET"]),
        Route("/dashboard/signin", signin, methods=["POST"]),
        Route("/dashboard/signout", signout, methods=["POST"]),
        Route("/dashboard/teams/{team_id}", team_page, methods=["GET"]),
        Route("/dashboard/teams/{team_id}/export.csv", export_csv, methods=["GET"]),
        Route("/dashboard/static/dashboard.css", stylesheet, methods=["GET"]),
    ]
