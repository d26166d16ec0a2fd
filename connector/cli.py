"""The ``care-connector`` command: a Flask CLI group (so ``run`` and ``routes`` work too)."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from connector.commands.credits import credits_group
from connector.commands.customers import customers_group
from connector.commands.db import db_group
from connector.commands.hours import hours_command
from connector.commands.quote import quote_command


def _create_app():  # type: ignore[no-untyped-def]
    from connector.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def cli() -> None:
    """Care Connector: support plans, credits and approvals for your help desk."""


cli.add_command(quote_command)
cli.add_command(hours_command)
cli.add_command(credits_group)
cli.add_command(customers_group)
cli.add_command(db_group)


def main() -> None:
    cli(prog_name="care-connector")
