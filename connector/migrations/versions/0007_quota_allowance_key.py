"""Quota allowances keyed by (customer, period, kind), without a surrogate id or foreign key.

The monthly reset writes a row per entitled customer in one statement; for a million
customers the per-row foreign-key check (a key-share lock on the customer's row) and the
second index of the surrogate key were more than half its time (docs/benchmarks.md).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("quota_allowances", schema=None) as batch_op:
        batch_op.drop_constraint("fk_quota_allowances_customer_id_customers", type_="foreignkey")
        batch_op.drop_constraint("uq_quota_allowances_customer_id_period_kind", type_="unique")
        batch_op.drop_constraint("pk_quota_allowances", type_="primary")
        batch_op.drop_column("id")
        batch_op.create_primary_key("pk_quota_allowances", ["customer_id", "period", "kind"])


def downgrade() -> None:
    with op.batch_alter_table("quota_allowances", schema=None) as batch_op:
        batch_op.drop_constraint("pk_quota_allowances", type_="primary")
        batch_op.add_column(sa.Column("id", sa.Integer(), autoincrement=True, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE quota_allowances_id_seq OWNED BY quota_allowances.id")
        op.execute(
            "ALTER TABLE quota_allowances ALTER COLUMN id"
            " SET DEFAULT nextval('quota_allowances_id_seq')"
        )
        op.execute("UPDATE quota_allowances SET id = nextval('quota_allowances_id_seq')")
    else:
        op.execute("UPDATE quota_allowances SET id = rowid")
    with op.batch_alter_table("quota_allowances", schema=None) as batch_op:
        batch_op.alter_column("id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_primary_key("pk_quota_allowances", ["id"])
        batch_op.create_unique_constraint(
            "uq_quota_allowances_customer_id_period_kind", ["customer_id", "period", "kind"]
        )
        batch_op.create_foreign_key(
            "fk_quota_allowances_customer_id_customers", "customers", ["customer_id"], ["id"]
        )
