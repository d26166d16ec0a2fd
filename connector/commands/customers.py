"""``care-connector customers import FILE.json``: load customers, licenses and purchases.

The file's shape and the update rules are in :mod:`connector.customers`. The whole file is one
transaction: any invalid entry and nothing is imported (one ``Error: ...`` line naming the
entry's email and the field, exit code 2).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from connector.customers import CustomerImportError, import_file
from connector.ledger import LedgerError

USAGE_ERROR = 2
FAILURE = 1


@click.group("customers")
def customers_group() -> None:
    """Customers: import them from a JSON file."""


@customers_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@with_appcontext
def import_command(file: Path, as_json: bool) -> None:
    """Import customers from FILE (JSON: {"customers": [...]}) in one transaction.

    Customers are matched by email; licenses and credit purchases are added once by ref, and
    their credits granted once. Importing the same file again changes nothing.
    """
    from connector.extension import state

    settings = state().settings
    database = state().database
    try:
        counts = import_file(
            database,
            file,
            policy=settings.policy,
            desks=settings.desks.keys(),
            at=datetime.now(UTC),
            actor=os.environ.get("USER") or "import",
        )
    except CustomerImportError as err:
        _fail(str(err), USAGE_ERROR)
    except LedgerError as err:  # A movement raced with this import (PostgreSQL).
        _fail(f"nothing imported: {err}", FAILURE)
    except SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        _fail(f"nothing imported: database error at {database.url}: {reason}", FAILURE)
    if as_json:
        click.echo(json.dumps(counts.as_dict()))
        return
    click.echo(
        f"customers: {counts.customers_created} created, {counts.customers_updated} updated,"
        f" {counts.customers_unchanged} unchanged"
    )
    click.echo(f"licenses added: {counts.licenses_added}")
    click.echo(f"credit purchases added: {counts.purchases_added}")
    click.echo(f"identities added: {counts.identities_added}")
    click.echo(f"credits granted: {counts.credits_granted}")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(code)
