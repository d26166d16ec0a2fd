"""Operating the pipeline: ``simulate``, ``replay``, ``webhooks install``, ``worker``, ``run``."""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from adapters.errors import HelpdeskAPIError
from connector.extension import state


class CommandError(click.ClickException):
    """One line on stderr and exit code 2 (bad arguments), or the code given."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return state().clock()
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise CommandError(f"--now {text!r}: not an ISO 8601 date-time") from err
    if value.tzinfo is None:
        raise CommandError(f"--now {text!r}: give a time zone, e.g. {text}+00:00")
    return value


@click.command("simulate")
@click.option("--desk", required=True, help="The desk key the payloads are delivered to.")
@click.option("--customers", type=click.Path(path_type=Path), help="A customer import file.")
@click.option("--now", "now_text", help="The clock, ISO 8601 with a zone (default: now).")
@click.option("--secret", help="Check signatures with this secret, as in production.")
@click.option("--header", "headers", multiple=True, help="NAME:VALUE for every payload.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("payloads", nargs=-1, required=True, type=click.Path(path_type=Path))
@with_appcontext
def simulate_command(
    desk: str,
    customers: Path | None,
    now_text: str | None,
    secret: str | None,
    headers: tuple[str, ...],
    as_json: bool,
    payloads: tuple[Path, ...],
) -> None:
    """Run PAYLOADs through the whole pipeline on a throw-away database; nothing is sent."""
    from connector import simulate

    try:
        parsed = [simulate.parse_header(h) for h in headers]
        outcome = simulate.run(
            state().settings,
            desk=desk,
            payloads=list(payloads),
            customers=customers,
            now=_parse_now(now_text),
            secret=secret,
            headers=parsed,
        )
    except simulate.SimulationError as err:
        raise CommandError(str(err), err.exit_code) from err
    if as_json:
        click.echo(json.dumps(outcome.as_json(), indent=2, ensure_ascii=False))
        return
    for path, result in zip(payloads, outcome.results, strict=True):
        click.echo(f"{path}: {_describe(result)}")
        for request in result.get("requests", []):
            click.echo(f"  {request['method']} {request['url']} {json.dumps(request['json'])}")
    for email, balance in outcome.balances.items():
        click.echo(f"balance {email}: {balance}")


def _describe(result: dict[str, Any]) -> str:
    if result.get("status") != "processed":
        return str(result.get("status"))
    return (
        f"plan {result['plan']}, category {result['category']}, estimate {result['credits']}, "
        f"charged {result['charged']}, "
        f"approval {'required' if result['approval_required'] else 'no'}, "
        f"priority {result['priority']}, tags {' '.join(result['tags'])}"
    )


@click.command("replay")
@click.argument("delivery_id", type=int)
@with_appcontext
def replay_command(delivery_id: int) -> None:
    """Take stored delivery DELIVERY_ID again (its signature is checked again) and process it."""
    from connector.intake import replay
    from connector.runner import drain

    st = state()
    result = replay(st, delivery_id)
    if result.status >= 400:
        raise CommandError(f"delivery {delivery_id}: {result.body.get('message')}", 1)
    done = drain(st)
    click.echo(
        f"delivery {delivery_id}: {result.body['status']}; "
        f"{len(done.processed)} event(s) processed, {len(done.sent)} write-back(s) sent"
    )


@click.group("webhooks")
def webhooks_group() -> None:
    """Install the connector's webhooks in a help desk."""


@webhooks_group.command("install")
@click.option("--desk", required=True, help="The desk key.")
@click.option("--url", "public_url", required=True, help="The connector's public base URL.")
@with_appcontext
def install_command(desk: str, public_url: str) -> None:
    """Create (or update) the webhook and triggers for DESK; safe to re-run."""
    st = state()
    if st.desk(desk) is None:
        raise CommandError(f"--desk {desk!r}: no such desk (configured: {', '.join(st.adapters)})")
    adapter = st.adapter(desk)
    try:
        adapter.install_plan(public_url)
        result = adapter.install(public_url, st.client(desk))
    except ValueError as err:
        # A bad URL or desk setting: the adapter's message names which.
        raise CommandError(f"--desk {desk}: {err}") from err
    except HelpdeskAPIError as err:
        raise CommandError(f"{desk}: the help desk refused: {err}", 1) from err
    for line in result.describe():
        click.echo(line)
    if result.secret:
        click.echo(
            f"Set {result.secret_env} to the signing secret shown by the desk, then restart."
        )


def _serve_until_signalled() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@click.command("worker")
@click.option(
    "--idle",
    default=0.5,
    show_default=True,
    help="Longest wait between rounds when there is nothing to do (seconds).",
)
@with_appcontext
def worker_command(idle: float) -> None:
    """Run the processing worker and the outbox worker (a thread each) until SIGTERM or
    Ctrl-C."""
    from connector.runner import loop_in_threads

    stop = _serve_until_signalled()
    click.echo("worker: processing events and sending write-backs (Ctrl-C to stop)")
    loop_in_threads(state(), stop, idle_seconds=idle)


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Also run the scheduled jobs in a thread (safe beside a `scheduler` process).",
)
@with_appcontext
def run_command(host: str, port: int, scheduler: bool) -> None:
    """The embedded default: the web server with the workers (and the scheduler) as threads
    of this process."""
    from werkzeug.serving import run_simple

    from connector.runner import start_thread

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    start_thread(state())
    if scheduler:
        from connector.scheduler import start_background

        start_background(state())
    run_simple(host, port, app, threaded=True, use_reloader=False)
