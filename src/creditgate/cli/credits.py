"""`creditgate grant TEAM CREDITS` and `creditgate charge KEY CREDITS`: credits in and out,
through the ledger or, with --server, the admin API's grant and charge routes; either way the
admin API's answer and whether it was an idempotent replay."""

from __future__ import annotations

import click

from creditgate.cli.args import NegativeNumbers, checked_iso, instant, resolve_team, segment
from creditgate.cli.output import Output, command_options
from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import now


@click.command(cls=NegativeNumbers)
@click.argument("team_id", metavar="TEAM")
@click.argument("credits", type=int)
@click.option("--expires", default=None, help="When the credits expire (ISO 8601); default never.")
@click.option("--kind", type=click.Choice(["pack", "coupon", "topup"]), default="pack")
@click.option("--note", default=None)
@click.option("--id", "idempotency_key", default=None, help="Idempotency key.")
@command_options
def grant(
    out: Output,
    team_id: str,
    credits: int,
    expires: str | None,
    kind: str,
    note: str | None,
    idempotency_key: str | None,
) -> None:
    """Add credits to a team (its id or name): a pack, coupon or top-up."""
    if credits < 1:
        raise InvalidInput(f"credits must be a positive integer (got {credits})", field="credits")
    if out.remote is not None:
        body = {
            "credits": credits,
            "kind": kind,
            "expiresAt": checked_iso(expires, "expires"),
            "note": note,
            "idempotencyKey": idempotency_key,
        }
        found = resolve_team(out, team_id)
        granted = out.remote.post(f"/admin/teams/{segment(found)}/grants", body)
        replayed = out.remote.replayed
    else:
        from creditgate.services import ledger
        from creditgate.services.wire import grant_json

        result = ledger.grant(
            out.db,
            ledger.GrantRequest(
                team_id=resolve_team(out, team_id),
                credits=credits,
                kind=kind,
                expires_at=instant(expires, "expires"),
                note=note,
                idempotency_key=idempotency_key,
            ),
            now(),
        )
        granted, replayed = grant_json(result), result.replayed
    out.emit(
        granted | {"replayed": replayed},
        f"granted {granted['credits']} credits; team has {granted['remainingCredits']} available"
        + (" (replayed)" if replayed else ""),
    )


@click.command(cls=NegativeNumbers)
@click.argument("key")
@click.argument("credits", type=int)
@click.option("--endpoint", default=None, help="scrape, crawl, map, search, extract, ...")
@click.option("--at", default=None, help="When the work happened (ISO 8601); default now.")
@click.option("--job-id", default=None)
@click.option("--target", default=None, help="The URL worked on.")
@click.option("--id", "idempotency_key", default=None, help="Idempotency key.")
@command_options
def charge(
    out: Output,
    key: str,
    credits: int,
    endpoint: str | None,
    at: str | None,
    job_id: str | None,
    target: str | None,
    idempotency_key: str | None,
) -> None:
    """Record usage by KEY (the fc- key or its id). Refused if it does not fit."""
    if credits < 0:
        raise InvalidInput(f"credits must not be negative (got {credits})", field="credits")
    if out.remote is not None:
        body = {
            ("key" if key.startswith("fc-") else "keyId"): key,
            "credits": credits,
            "at": checked_iso(at, "at"),
            "endpoint": endpoint,
            "jobId": job_id,
            "target": target,
            "idempotencyKey": idempotency_key,
        }
        charged = out.remote.post("/admin/charges", body)
        replayed = out.remote.replayed
    else:
        from creditgate.services import ledger
        from creditgate.services.wire import charge_json

        result = ledger.charge(
            out.db,
            ledger.ChargeRequest(
                key=key,
                credits=credits,
                at=instant(at, "at"),
                endpoint=endpoint,
                job_id=job_id,
                target=target,
                idempotency_key=idempotency_key,
            ),
            now(),
        )
        charged, replayed = charge_json(result), result.replayed
    out.emit(
        charged | {"replayed": replayed},
        f"charged {charged['credits']} credits; team has {charged['remainingCredits']} available"
        + (" (replayed)" if replayed else ""),
    )
