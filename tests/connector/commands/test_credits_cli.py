"""``care-connector credits`` through the real CLI group and app, on a temporary SQLite file."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from connector import ledger
from connector.cli import cli
from connector.db import Database
from connector.ledger import EntryKind, Source
from connector.models import Customer

AT = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
HISTORY_FIELDS = {
    "id",
    "at",
    "kind",
    "amount",
    "balance_after",
    "ticket",
    "actor",
    "source",
    "reason",
    "key",
}

Run = Callable[..., Result]


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A migrated SQLite file named by CARE_DATABASE_URL, with two customers:
    owner@shop.example (bought 100, charged 30 for ticket zendesk:4711) and empty@shop.example.
    """
    url = f"sqlite:///{tmp_path / 'care.sqlite3'}"
    monkeypatch.chdir(tmp_path)
    for name in ("CARE_CONFIG", "CARE_PUBLIC_URL", "FLASK_APP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CARE_DATABASE_URL", url)
    monkeypatch.setenv("USER", "mila")
    database = Database.from_url(url)
    database.upgrade()
    with database.transaction() as session:
        owner = Customer(email="owner@shop.example", name="Shop Owner")
        session.add_all([owner, Customer(email="empty@shop.example")])
        session.flush()
        ledger.grant(
            session,
            customer_id=owner.id,
            credits=100,
            key="order-77",
            actor="import",
            source=Source.IMPORT,
            kind=EntryKind.PURCHASE,
            reason="order-77",
            at=AT,
        )
        ledger.charge(
            session,
            customer_id=owner.id,
            credits=30,
            key="zendesk:d-1:charge",
            actor="system",
            source=Source.WEBHOOK,
            reason="configuration",
            ticket="zendesk:4711",
            at=AT.replace(hour=10),
        )
    yield database
    database.dispose()


@pytest.fixture
def run(cli_database: Database) -> Run:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), prog_name="care-connector")

    return invoke


def history_json(run: Run, email: str) -> list[dict[str, object]]:
    result = run("credits", "history", email, "--json")
    assert result.exit_code == 0, result.stderr
    data: list[dict[str, object]] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("owner@shop.example", {"email": "owner@shop.example", "balance": 70}),
        ("  OWNER@Shop.Example ", {"email": "owner@shop.example", "balance": 70}),
        ("empty@shop.example", {"email": "empty@shop.example", "balance": 0}),
    ],
)
def test_balance_json(run: Run, email: str, expected: dict[str, object]) -> None:
    result = run("credits", "balance", email, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_balance_text(run: Run) -> None:
    result = run("credits", "balance", "owner@shop.example")
    assert (result.exit_code, result.stdout) == (0, "owner@shop.example: 70 credits\n")


def test_history_json_lists_entries_oldest_first(run: Run) -> None:
    entries = history_json(run, "owner@shop.example")
    assert [set(e) for e in entries] == [HISTORY_FIELDS, HISTORY_FIELDS]
    assert [(e["kind"], e["amount"], e["balance_after"], e["key"]) for e in entries] == [
        ("purchase", 100, 100, "order-77"),
        ("charge", -30, 70, "zendesk:d-1:charge"),
    ]
    charge = entries[1]
    assert (charge["ticket"], charge["actor"], charge["source"], charge["reason"]) == (
        "zendesk:4711",
        "system",
        "webhook",
        "configuration",
    )
    assert entries[0]["ticket"] is None
    assert [datetime.fromisoformat(str(e["at"])) for e in entries] == [AT, AT.replace(hour=10)]
    assert isinstance(entries[0]["id"], int) and entries[0]["id"] < entries[1]["id"]  # type: ignore[operator]


def test_history_of_a_customer_without_entries(run: Run) -> None:
    assert history_json(run, "empty@shop.example") == []
    result = run("credits", "history", "empty@shop.example")
    assert (result.exit_code, result.stdout) == (0, "no entries\n")


def test_history_text_shows_one_line_per_entry(run: Run) -> None:
    result = run("credits", "history", "owner@shop.example")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "purchase" in lines[0] and "+100" in lines[0] and "order-77" in lines[0]
    assert "charge" in lines[1] and "-30" in lines[1] and "zendesk:4711" in lines[1]


def test_grant_posts_a_cli_entry_with_a_fresh_key(run: Run) -> None:
    first = run("credits", "grant", "Owner@shop.example", "25", "--reason", "sorry for the wait")
    assert first.exit_code == 0, first.stderr
    assert "granted 25 credits to owner@shop.example" in first.stdout
    assert "balance 95" in first.stdout
    second = run("credits", "grant", "owner@shop.example", "5", "--reason", "goodwill")
    assert second.exit_code == 0, second.stderr

    entries = history_json(run, "owner@shop.example")
    granted = entries[2:]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in granted] == [
        ("grant", 25, 95),
        ("grant", 5, 100),
    ]
    assert [(e["source"], e["actor"], e["reason"]) for e in granted] == [
        ("cli", "mila", "sorry for the wait"),
        ("cli", "mila", "goodwill"),
    ]
    keys = [str(e["key"]) for e in granted]
    assert keys[0] != keys[1] and all(k.startswith("cli:grant:") for k in keys)
    assert json.loads(run("credits", "balance", "owner@shop.example", "--json").stdout) == {
        "email": "owner@shop.example",
        "balance": 100,
    }


def test_grant_without_user_is_by_cli(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USER")
    result = run("credits", "grant", "empty@shop.example", "3", "--reason", "test")
    assert result.exit_code == 0, result.stderr
    assert history_json(run, "empty@shop.example")[0]["actor"] == "cli"


def test_verify_passes_on_a_consistent_ledger(run: Run) -> None:
    result = run("credits", "verify")
    assert result.exit_code == 0, result.stderr
    assert "ok" in result.stdout


def test_verify_names_the_customers_that_differ(run: Run, cli_database: Database) -> None:
    with cli_database.transaction() as session:
        session.execute(
            text("UPDATE customers SET balance = 65 WHERE email = 'owner@shop.example'")
        )
    result = run("credits", "verify")
    assert result.exit_code == 1
    assert result.stdout == "owner@shop.example: balance 65, entries sum to 70\n"
    assert "empty@shop.example" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["balance", "nobody@shop.example"], "no customer with email 'nobody@shop.example'"),
        (["history", "nobody@shop.example", "--json"], "no customer with email"),
        (["grant", "nobody@shop.example", "5", "--reason", "x"], "no customer with email"),
        (["grant", "owner@shop.example", "abc", "--reason", "x"], "whole number"),
        (["grant", "owner@shop.example", "2.5", "--reason", "x"], "whole number"),
        (["grant", "owner@shop.example", "1_000", "--reason", "x"], "whole number"),
        (["grant", "owner@shop.example", "0", "--reason", "x"], "positive"),
        (["grant", "owner@shop.example", "9" * 12, "--reason", "x"], "at most"),
        (["grant", "owner@shop.example", "-5", "--reason", "x"], "positive"),
        (["grant", "owner@shop.example", "5"], "--reason is required"),
        (["grant", "owner@shop.example", "5", "--reason", "  "], "--reason is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run: Run, args: list[str], message: str) -> None:
    result = run("credits", *args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert result.stdout == ""
    assert json.loads(run("credits", "balance", "owner@shop.example", "--json").stdout) == {
        "email": "owner@shop.example",
        "balance": 70,
    }


@pytest.mark.parametrize(
    "args",
    [["balance", "owner@shop.example"], ["verify"], ["grant", "a@b.example", "5", "--reason", "x"]],
)
def test_an_unusable_database_is_one_line_and_exit_1(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    missing = tmp_path / "no-such-directory" / "care.sqlite3"
    monkeypatch.setenv("CARE_DATABASE_URL", f"sqlite:///{missing}")
    result = run("credits", *args)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: database sqlite:///{missing} unavailable: unable to open database file\n"
    )
