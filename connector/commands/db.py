"""``care-connector db upgrade``: migrate the database to the latest schema.

Run it once per deploy on PostgreSQL (web processes and workers do not migrate). The embedded
SQLite default migrates itself on first use, so the command is only needed there to migrate
ahead of time.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

FAILURE = 1


@click.group("db")
def db_group() -> None:
    """The database: schema migrations."""


@db_group.command("upgrade")
@with_appcontext
def upgrade_command() -> None:
    """Migrate the configured database (CARE_DATABASE_URL) to the latest revision."""
    from connector.extension import state

    database = state().database
    try:
        before = database.current_revision()
        database.upgrade()
        after = database.current_revision()
    except SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        click.echo(f"Error: cannot upgrade the database at {database.url}: {reason}", err=True)
        raise click.exceptions.Exit(FAILURE) from err
    if before == after:
        click.echo(f"{database.url}: already at revision {after}")
    else:
        click.echo(f"{database.url}: upgraded from {before or 'an empty database'} to {after}")
