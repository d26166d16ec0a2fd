"""``care-connector credits``: read and move customers' credit balances from the shell.

Every movement goes through :mod:`connector.ledger`; this module only parses arguments, finds
the customer by email and prints. Bad input gives one ``Error: ...`` line and exit code 2.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from connector import ledger
from connector.db import Database
from connector.models import Customer

T = TypeVar("T")

# An explicit pattern rather than int() alone: int() also takes "1_000" and other digit scripts.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


class CreditsUsageError(click.ClickException):
    """Bad input, shown as one line (``Error: ...``) with exit code 2, the usage-error code.

    Not a :class:`click.UsageError`, which also prints the usage and a help hint.
    """

    exit_code = 2


@click.group("credits")
def credits_group() -> None:
    """Customers' credit balances: balance, grant, history, verify."""


@credits_group.command("balance")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def balance_command(email: str, as_json: bool) -> None:
    """Print the credit balance of the customer with EMAIL."""

    def read(session: Session) -> tuple[str, int]:
        customer = _customer(session, email)
        return customer.email, ledger.balance(session, customer.id)

    address, credits = _read(read)
    if as_json:
        click.echo(json.dumps({"email": address, "balance": credits}))
    else:
        click.echo(f"{address}: {credits} credits")


@credits_group.command(
    "grant", context_settings={"ignore_unknown_options": True}
)  # so that "-5" reaches the amount check instead of reading as an option
@click.argument("email")
@click.argument("amount")
@click.option("--reason", default=None, help="Why the credits are granted (required).")
@with_appcontext
def grant_command(email: str, amount: str, reason: str | None) -> None:
    """Grant AMOUNT credits to the customer with EMAIL (source cli, actor $USER)."""
    credits = _positive_int(amount)
    if reason is None or not reason.strip():
        raise CreditsUsageError("--reason is required: say why the credits are granted")
    why = reason.strip()
    actor = os.environ.get("USER") or "cli"
    key = f"cli:grant:{uuid.uuid4()}"

    def post(session: Session) -> tuple[str, int, int]:
        customer = _customer(session, email)
        entry = ledger.grant(
            session,
            customer_id=customer.id,
            credits=credits,
            key=key,
            actor=actor,
            source=ledger.Source.CLI,
            reason=why,
            at=datetime.now(UTC),
        )
        return customer.email, entry.id, entry.balance_after

    address, entry_id, after = _write(post)
    click.echo(f"granted {credits} credits to {address} (entry {entry_id}); balance {after}")


@credits_group.command("history")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def history_command(email: str, as_json: bool) -> None:
    """Print the ledger entries of the customer with EMAIL, oldest first."""

    def read(session: Session) -> list[dict[str, Any]]:
        customer = _customer(session, email)
        return [ledger.entry_json(entry) for entry in ledger.history(session, customer.id)]

    entries = _read(read)
    if as_json:
        click.echo(json.dumps(entries, ensure_ascii=False))
        return
    if not entries:
        click.echo("no entries")
        return
    for e in entries:
        ticket = f" {e['ticket']}" if e["ticket"] else ""
        click.echo(
            f"{e['id']:>6}  {e['at']}  {e['kind']:<13} {e['amount']:>+6}  = {e['balance_after']:>6}"
            f"  {e['source']}/{e['actor']}{ticket}  {e['reason']}".rstrip()
        )


@credits_group.command("verify")
@with_appcontext
def verify_command() -> None:
    """Check that every balance equals the sum of its entries (exit 1 naming those that differ)."""
    discrepancies = _read(ledger.verify)
    if not discrepancies:
        click.echo("ok: every balance equals the sum of its entries")
        return
    for d in discrepancies:
        click.echo(f"{d.email}: balance {d.balance}, entries sum to {d.total}")
    raise click.exceptions.Exit(1)


def _customer(session: Session, email: str) -> Customer:
    customer = session.scalars(
        select(Customer).where(Customer.email == email.strip().lower())
    ).first()
    if customer is None:
        raise CreditsUsageError(f"no customer with email {email.strip()!r}")
    return customer


def _positive_int(text: str) -> int:
    if _WHOLE_NUMBER.fullmatch(text.strip()) is None:
        raise CreditsUsageError(f"amount must be a whole number of credits, not {text!r}")
    value = int(text.strip())
    if value <= 0:
        raise CreditsUsageError(f"amount must be a positive number of credits, not {value}")
    return value


def _database() -> Database:
    from connector.extension import state

    return state().database


def _read(fn: Callable[[Session], T]) -> T:
    database = _database()
    try:
        with database.transaction(read_only=True) as session:
            return fn(session)
    except OperationalError as err:
        raise _unavailable(database, err) from err


def _write(fn: Callable[[Session], T]) -> T:
    database = _database()
    try:
        return database.run_in_transaction(fn)
    except ledger.LedgerError as err:
        raise CreditsUsageError(str(err)) from err
    except OperationalError as err:
        raise _unavailable(database, err) from err


def _unavailable(database: Database, err: OperationalError) -> click.ClickException:
    # Not bad input: exit code 1, still one line.
    reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
    return click.ClickException(f"database {database.url} unavailable: {reason}")
