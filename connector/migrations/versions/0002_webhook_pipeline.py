"""Webhook pipeline: raw deliveries, events (dedup), outbox, requester cache, app secrets.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
    )
    op.create_table(
        "inbound_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remote_ip", sa.String(), nullable=True),
        sa.Column("content_type", sa.String(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("delivery_key", sa.String(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_deliveries")),
    )
    with op.batch_alter_table("inbound_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_deliveries_desk_id", ["desk", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_inbound_deliveries_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "requester_cache",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("locale", sa.String(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requester_cache")),
        sa.UniqueConstraint(
            "desk", "external_id", name=op.f("uq_requester_cache_desk_external_id")
        ),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk", sa.String(), nullable=False),
        sa.Column("delivery_key", sa.String(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("ticket_key", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["inbound_deliveries.id"],
            name=op.f("fk_events_delivery_id_inbound_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("desk", "delivery_key", name=op.f("uq_events_desk_delivery_key")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_status_id", ["status", "id"], unique=False)
        batch_op.create_index("ix_events_ticket_key_id", ["ticket_key", "id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk", sa.String(), nullable=False),
        sa.Column("ticket_id", sa.String(), nullable=False),
        sa.Column("ticket_key", sa.String(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("marker", sa.String(), nullable=False),
        sa.Column("status", sa.String(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unclear", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_outbox_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("marker", name=op.f("uq_outbox_marker")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_status_next", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_outbox_ticket_key_id", ["ticket_key", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_ticket_key_id")
        batch_op.drop_index("ix_outbox_status_next")

    op.drop_table("outbox")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_ticket_key_id")
        batch_op.drop_index("ix_events_status_id")

    op.drop_table("events")
    op.drop_table("requester_cache")
    with op.batch_alter_table("inbound_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_deliveries_received_at"))
        batch_op.drop_index("ix_inbound_deliveries_desk_id")

    op.drop_table("inbound_deliveries")
    op.drop_table("app_secrets")
