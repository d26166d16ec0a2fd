"""The ``care-connector`` command: a Flask CLI group (so ``run`` and ``routes`` work too)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from connector.commands.config import config_group
from connector.commands.credits import credits_group
from connector.commands.customers import customers_group
from connector.commands.db import db_group
from connector.commands.hours import hours_command
from connector.commands.jobs import jobs_group, scheduler_command
from connector.commands.pipeline import (
    replay_command,
    run_command,
    simulate_command,
    webhooks_group,
    worker_command,
)
from connector.commands.quote import quote_command


class ConfigProblem(click.ClickException):
    """A configuration that cannot be loaded: one line on stderr, exit code 1.

    (Exit code 2 is kept for bad arguments, as click uses it.)
    """

    exit_code = 1


def _create_app() -> Flask:
    from connector.app import create_app
    from connector.config import ConfigError

    try:
        app = create_app()
    except ConfigError as err:
        raise ConfigProblem(str(err)) from err
    _service_logging(app)
    return app


#: The long-running commands; they log through the connector's handler ([logging]).
SERVICE_COMMANDS = ("run", "worker", "scheduler")


def _service_logging(app: Flask) -> None:
    ctx = click.get_current_context(silent=True)
    top_level = ctx is not None and ctx.parent is not None and ctx.parent.parent is None
    if ctx is not None and top_level and ctx.info_name in SERVICE_COMMANDS:
        from connector.logging_setup import configure_logging

        configure_logging(app.extensions["care_connector"].settings)


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def cli() -> None:
    """Care Connector: support plans, credits and approvals for your help desk."""


cli.add_command(quote_command)
cli.add_command(hours_command)
cli.add_command(credits_group)
cli.add_command(customers_group)
cli.add_command(db_group)
cli.add_command(simulate_command)
cli.add_command(replay_command)
cli.add_command(webhooks_group)
cli.add_command(worker_command)
cli.add_command(scheduler_command)
cli.add_command(jobs_group)
cli.add_command(config_group)
cli.add_command(run_command)  # replaces Flask's own: the embedded default runs the workers too


def main() -> None:
    cli(prog_name="care-connector")


if __name__ == "__main__":
    main()
