"""Indexes for the workers' hot reads: pending outbox rows in id order, each ticket's open
outbox rows, and a customer's tickets by creation time.

The outbox claim asks for the due pending rows in id order whose ticket has no earlier open
row. Read through (status, next_attempt_at), every open entry was read, dead ones included
until a vacuum (about 3,000 index entries per claim in the scale-out run). A partial index of
the pending rows by id offers them in order, and a partial index of each ticket's open rows
answers "has this ticket an earlier open row" from the open rows alone.

"Other recent tickets of the customer" read every ticket of the desk through the (desk,
external_id) key when the table's statistics were young; (customer_id, created_at) answers it
exactly and serves lookups by customer as before.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_PENDING = sa.text("status = 'pending'")
_OPEN = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_pending_id",
        "outbox",
        ["id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_index(
        "ix_outbox_open_ticket_key_id",
        "outbox",
        ["ticket_key", "id"],
        postgresql_where=_OPEN,
        sqlite_where=_OPEN,
    )
    op.create_index("ix_tickets_customer_id_created_at", "tickets", ["customer_id", "created_at"])
    op.drop_index("ix_tickets_customer_id", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_tickets_customer_id", "tickets", ["customer_id"])
    op.drop_index("ix_tickets_customer_id_created_at", table_name="tickets")
    op.drop_index("ix_outbox_open_ticket_key_id", table_name="outbox")
    op.drop_index("ix_outbox_pending_id", table_name="outbox")
