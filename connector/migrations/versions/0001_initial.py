"""Initial schema: customers, entitlements, tickets, quotas and the credit ledger.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("name", sa.String(), server_default="", nullable=False),
        sa.Column("locale", sa.String(), server_default="en", nullable=False),
        sa.Column("timezone", sa.String(), nullable=True),
        sa.Column("upgrades_until", sa.Date(), nullable=True),
        sa.Column("upgrades_lifetime", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("balance", sa.Integer(), server_default="0", nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_customers_balance_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("email", name=op.f("uq_customers_email")),
    )
    op.create_table(
        "credit_purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("purchased_on", sa.Date(), nullable=False),
        sa.CheckConstraint("credits > 0", name=op.f("ck_credit_purchases_credits_positive")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_credit_purchases_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_purchases")),
        sa.UniqueConstraint("ref", name=op.f("uq_credit_purchases_ref")),
    )
    op.create_index(op.f("ix_credit_purchases_customer_id"), "credit_purchases", ["customer_id"])
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("desk", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_identities_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("desk", "external_id", name=op.f("uq_identities_desk_external_id")),
    )
    op.create_index(op.f("ix_identities_customer_id"), "identities", ["customer_id"])
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("ticket", sa.String(), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("reverses_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "balance_after >= 0", name=op.f("ck_ledger_entries_balance_after_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_ledger_entries_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_entries_reverses_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_entries_key")),
    )
    op.create_index("ix_ledger_entries_customer_id_id", "ledger_entries", ["customer_id", "id"])
    op.create_index(op.f("ix_ledger_entries_ticket"), "ledger_entries", ["ticket"])
    op.create_table(
        "licenses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(), nullable=False),
        sa.Column("product", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("purchased_on", sa.Date(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('first', 'additional', 'additional_storefront')",
            name=op.f("ck_licenses_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_licenses_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licenses")),
        sa.UniqueConstraint("ref", name=op.f("uq_licenses_ref")),
    )
    op.create_index(op.f("ix_licenses_customer_id"), "licenses", ["customer_id"])
    op.create_table(
        "quota_allowances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("allowance", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_quota_allowances_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_allowances")),
        sa.UniqueConstraint(
            "customer_id",
            "period",
            "kind",
            name=op.f("uq_quota_allowances_customer_id_period_kind"),
        ),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.String(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.CheckConstraint("starts_on <= ends_on", name=op.f("ck_subscriptions_dates_ordered")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_subscriptions_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(op.f("ix_subscriptions_customer_id"), "subscriptions", ["customer_id"])
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("desk", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("requester_email", sa.String(), nullable=True),
        sa.Column("subject", sa.Text(), server_default="", nullable=False),
        sa.Column("locale", sa.String(), nullable=True),
        sa.Column("plan", sa.String(), nullable=True),
        sa.Column("category", sa.String(), nullable=True),
        sa.Column("category_source", sa.String(), nullable=True),
        sa.Column("credits_estimated", sa.Integer(), nullable=True),
        sa.Column("credits_charged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("approval_state", sa.String(), server_default="none", nullable=False),
        sa.Column("approval_amount", sa.Integer(), nullable=True),
        sa.Column("first_reply_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_agent_reply_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_tickets_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("desk", "external_id", name=op.f("uq_tickets_desk_external_id")),
    )
    op.create_index(op.f("ix_tickets_customer_id"), "tickets", ["customer_id"])
    op.create_table(
        "quota_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_quota_usage_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_quota_usage_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_usage")),
        sa.UniqueConstraint("ticket_id", "kind", name=op.f("uq_quota_usage_ticket_id_kind")),
    )
    op.create_index(
        "ix_quota_usage_customer_period", "quota_usage", ["customer_id", "period", "kind"]
    )
    op.create_table(
        "ticket_status_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_status_history_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_status_history")),
    )
    op.create_index(
        op.f("ix_ticket_status_history_ticket_id"), "ticket_status_history", ["ticket_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_status_history_ticket_id"), table_name="ticket_status_history")
    op.drop_table("ticket_status_history")
    op.drop_index("ix_quota_usage_customer_period", table_name="quota_usage")
    op.drop_table("quota_usage")
    op.drop_index(op.f("ix_tickets_customer_id"), table_name="tickets")
    op.drop_table("tickets")
    op.drop_index(op.f("ix_subscriptions_customer_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("quota_allowances")
    op.drop_index(op.f("ix_licenses_customer_id"), table_name="licenses")
    op.drop_table("licenses")
    op.drop_index(op.f("ix_ledger_entries_ticket"), table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_customer_id_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index(op.f("ix_identities_customer_id"), table_name="identities")
    op.drop_table("identities")
    op.drop_index(op.f("ix_credit_purchases_customer_id"), table_name="credit_purchases")
    op.drop_table("credit_purchases")
    op.drop_table("customers")
