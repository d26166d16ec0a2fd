"""``care-connector config check``: validate a configuration file, then reach each desk's API
with its credentials.

Exit codes: 0 all good; 1 a desk refused its credentials or could not be reached; 2 the
file is invalid (each problem on its own line, naming the key).
"""

from __future__ import annotations

from pathlib import Path

import click
import requests

from adapters import load_adapters
from adapters.base import HelpdeskAdapter
from adapters.errors import AdapterRegistryError, HelpdeskAPIError, UnsupportedOperationError
from connector.config import ConfigError, DeskSettings, load_settings

INVALID = 2
DESK_FAILED = 1


@click.group("config")
def config_group() -> None:
    """The configuration file: check it before a deploy."""


@config_group.command("check")
@click.option(
    "--config",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The TOML file (default: CARE_CONFIG, then ./config.toml, then the defaults).",
)
@click.option("--offline", is_flag=True, help="Validate the file only; call no desk.")
def check_command(path: Path | None, offline: bool) -> None:
    """Validate the configuration, then make one authenticated read on each desk's API."""
    try:
        settings = load_settings(path)
    except ConfigError as err:
        for problem in err.problems:
            click.echo(f"error: {problem}", err=True)
        raise click.exceptions.Exit(INVALID) from err
    click.echo(f"{settings.source_path or 'the built-in defaults'}: valid")
    if not settings.desks_configured:
        click.echo("no [desks.*] configured: nothing to reach")
        return
    try:
        registry = load_adapters()
    except AdapterRegistryError as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(INVALID) from err
    failed = False
    for key, desk in settings.desks.items():
        name = f"{key} ({desk.adapter}, {desk.base_url})"
        if desk.adapter not in registry:
            click.echo(f"{name}: failed: the {desk.adapter!r} adapter is not installed")
            failed = True
            continue
        if offline:
            click.echo(f"{name}: not reached (--offline)")
        else:
            ok, line = _reach(registry[desk.adapter](desk), desk)
            click.echo(f"{name}: {line}")
            failed = failed or not ok
        for warning in _warnings(desk):
            click.echo(f"  warning: {warning}")
    if failed:
        raise click.exceptions.Exit(DESK_FAILED)


def _reach(adapter: HelpdeskAdapter, desk: DeskSettings) -> tuple[bool, str]:
    """``(ok, "ok: user 900 ...")`` or ``(False, "failed: <reason>")``."""
    with requests.Session() as session:
        try:
            who = adapter.client(session).check_credentials()
        except UnsupportedOperationError:
            return True, f"skipped: the {desk.adapter} adapter cannot check credentials"
        except HelpdeskAPIError as err:
            return False, f"failed: {err.message}"
        except ValueError as err:  # a desk option the client refuses
            return False, f"failed: {err}"
    return True, f"ok: {who}"


def _warnings(desk: DeskSettings) -> list[str]:
    if desk.secrets:
        return []
    names = ", ".join(desk.secret_env) if desk.secret_env else "no secret_env"
    return [
        f"no webhook secret is set ({names}): every delivery will be refused until it is "
        "(`care-connector webhooks install` prints it)"
    ]
