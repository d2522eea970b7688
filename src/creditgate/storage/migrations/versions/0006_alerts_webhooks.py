"""alerts and webhooks: rules, what fired, events, endpoints, the delivery outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Every team starts with these: 80% and 100% of its period's credits used.
DEFAULT_PERCENTS = (80, 100)


def upgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("event_seq", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cap_fired_period_ms", sa.BigInteger(), nullable=True))
    op.create_table(
        "alert_rules",
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("fired_period_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_alert_rules_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_alert_rules")),
    )
    op.create_table(
        "alerts_fired",
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("rule_id", sa.String(length=80), nullable=False),
        sa.Column("period_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("fired_ms", sa.BigInteger(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_alerts_fired_team_id_teams")
        ),
        sa.PrimaryKeyConstraint(
            "team_id", "rule_id", "period_start_ms", name=op.f("pk_alerts_fired")
        ),
    )
    op.create_table(
        "events",
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_events_team_id_teams")),
        sa.PrimaryKeyConstraint("team_id", "seq", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_id"), ["id"], unique=True)
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column("previous_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("event_types", sa.String(length=500), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("disabled_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_webhook_endpoints_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("endpoint_id", sa.String(length=36), nullable=False),
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_attempt_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_webhook_deliveries_team_id_teams")
        ),
        sa.PrimaryKeyConstraint(
            "endpoint_id", "team_id", "event_seq", name=op.f("pk_webhook_deliveries")
        ),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_status_next_attempt_ms"),
            ["status", "next_attempt_ms"],
            unique=False,
        )
    # Existing teams get the default rules too (a new team gets them when it is created).
    teams = sa.table("teams", sa.column("id", sa.String), sa.column("created_ms", sa.BigInteger))
    rules = sa.table(
        "alert_rules",
        sa.column("team_id", sa.String),
        sa.column("id", sa.String),
        sa.column("key_id", sa.String),
        sa.column("kind", sa.String),
        sa.column("threshold", sa.BigInteger),
        sa.column("created_ms", sa.BigInteger),
    )
    bind = op.get_bind()
    found = bind.execute(sa.select(teams.c.id, teams.c.created_ms)).all()
    rows = [
        {
            "team_id": team_id,
            "id": f"default-{percent}",
            "key_id": None,
            "kind": "percent",
            "threshold": percent,
            "created_ms": created,
        }
        for team_id, created in found
        for percent in DEFAULT_PERCENTS
    ]
    if rows:
        op.bulk_insert(rules, rows)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_status_next_attempt_ms"))
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_id"))
    op.drop_table("events")
    op.drop_table("alerts_fired")
    op.drop_table("alert_rules")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("cap_fired_period_ms")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("event_seq")
