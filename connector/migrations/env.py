"""Alembic environment: runs on the connection :meth:`connector.db.Database.upgrade` passes in.

There is no ``alembic.ini``; ``connector.db.alembic_config()`` builds the configuration. Offline
(``--sql``) mode is not supported: upgrades always run against a live database.
"""

from __future__ import annotations

from alembic import context

from connector.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Run migrations with `care-connector db upgrade` (connector.db.Database.upgrade)."
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
