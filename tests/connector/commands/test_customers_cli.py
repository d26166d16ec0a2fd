"""``care-connector customers import`` and ``db upgrade`` through the real CLI group and app."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from connector import ledger
from connector.cli import cli
from connector.db import Database, alembic_config
from connector.models import Customer, LedgerEntry

Run = Callable[..., Result]

EXAMPLE: dict[str, Any] = {
    "email": "owner@shop.example",
    "name": "Shop Owner",
    "locale": "ru",
    "timezone": "Europe/Berlin",
    "licenses": [
        {"ref": "L-1001", "product": "cs-cart", "kind": "first", "purchased_on": "2026-01-10"}
    ],
    "subscriptions": [{"plan": "vip", "starts_on": "2026-01-01", "ends_on": "2026-12-31"}],
    "upgrades_until": "2027-01-10",
    "credit_purchases": [{"ref": "order-77", "credits": 100, "purchased_on": "2026-02-01"}],
    "identities": {"zendesk": ["8447388090494"], "helpscout": ["29418"]},
}
SECOND: dict[str, Any] = {
    "email": "second@shop.example",
    "licenses": [
        {"ref": "L-2", "product": "cs-cart", "kind": "additional", "purchased_on": "2026-01-10"}
    ],
}


def use_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> None:
    """Point the app at ``url`` through the environment, with no config file around."""
    monkeypatch.chdir(tmp_path)
    for name in ("CARE_CONFIG", "CARE_PUBLIC_URL", "FLASK_APP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CARE_DATABASE_URL", url)
    monkeypatch.setenv("USER", "mila")


@pytest.fixture
def run(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    use_database(monkeypatch, tmp_path, database.engine.url.render_as_string(hide_password=False))

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), prog_name="care-connector")

    return invoke


def write(tmp_path: Path, document: Any, name: str = "customers.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def customer_count(database: Database) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(Customer)) or 0


def test_import_prints_the_counts(run: Run, tmp_path: Path, database: Database) -> None:
    result = run("customers", "import", write(tmp_path, {"customers": [EXAMPLE, SECOND]}))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "customers: 2 created, 0 updated, 0 unchanged",
        "licenses added: 2",
        "credit purchases added: 1",
        "identities added: 2",
        "credits granted: 180",
    ]
    assert result.stderr == ""
    with database.transaction() as session:
        assert ledger.verify(session) == []
        actors = set(session.scalars(select(LedgerEntry.actor)))
        sources = set(session.scalars(select(LedgerEntry.source)))
    assert (actors, sources) == ({"mila"}, {"import"})


def test_importing_twice_changes_nothing(run: Run, tmp_path: Path, database: Database) -> None:
    path = write(tmp_path, {"customers": [EXAMPLE, SECOND]})
    assert run("customers", "import", path).exit_code == 0
    result = run("customers", "import", path, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "customers_created": 0,
        "customers_updated": 0,
        "customers_unchanged": 2,
        "licenses_added": 0,
        "purchases_added": 0,
        "identities_added": 0,
        "credits_granted": 0,
    }
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 3


def test_the_credits_command_sees_the_imported_balance(run: Run, tmp_path: Path) -> None:
    assert run("customers", "import", write(tmp_path, {"customers": [EXAMPLE]})).exit_code == 0
    result = run("credits", "balance", "OWNER@shop.example", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"email": "owner@shop.example", "balance": 150}


INVALID: list[tuple[str, Any, str]] = [
    (
        "bad date",
        {
            "customers": [
                SECOND,
                {**EXAMPLE, "licenses": [{**EXAMPLE["licenses"][0], "purchased_on": "2026-13-10"}]},
            ]
        },
        "Error: owner@shop.example: licenses[0].purchased_on: Not a valid date.",
    ),
    (
        "unknown desk",
        {"customers": [{**EXAMPLE, "identities": {"jira": ["1"]}}]},
        "Error: owner@shop.example: identities.jira: Not a configured desk (desks: freshdesk,"
        " helpscout, rt, zammad, zendesk).",
    ),
    ("not a list", {"customers": {"email": "a@b.c"}}, "customers: expected a list of customers"),
    ("no customers key", [EXAMPLE], 'expected an object {"customers": [...]}'),
    ("extra top-level key", {"customers": [], "version": 2}, "unknown top-level key 'version'"),
]


@pytest.mark.parametrize(
    ("document", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_an_invalid_file_imports_nothing_and_exits_2(
    run: Run, tmp_path: Path, database: Database, document: Any, message: str
) -> None:
    result = run("customers", "import", write(tmp_path, document))
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert message in line and line.startswith("Error: ")
    assert customer_count(database) == 0


def test_a_json_syntax_error_exits_2(run: Run, tmp_path: Path, database: Database) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"customers": [\n  {"email": "a@b.c",}\n]}', encoding="utf-8")
    result = run("customers", "import", str(path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path}: not valid JSON: Expecting property name enclosed in double quotes"
        " (line 2, column 21)\n"
    )
    assert customer_count(database) == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.json", "cannot read the file: No such file or directory"),
        (lambda p: _binary(p / "latin1.json"), "cannot read the file: 'utf-8' codec"),
    ],
    ids=["missing", "not utf-8"],
)
def test_an_unreadable_file_exits_2(
    run: Run, tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    result = run("customers", "import", str(make(tmp_path)))
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


def _binary(path: Path) -> Path:
    path.write_bytes('{"customers": [{"email": "café@x.example"}]}'.encode("latin-1"))
    return path


def test_a_conflict_with_stored_data_exits_2(run: Run, tmp_path: Path, database: Database) -> None:
    assert run("customers", "import", write(tmp_path, {"customers": [EXAMPLE]})).exit_code == 0
    thief = {"email": "thief@x.example", "credit_purchases": EXAMPLE["credit_purchases"]}
    result = run("customers", "import", write(tmp_path, {"customers": [SECOND, thief]}, "b.json"))
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: thief@x.example: credit_purchases[0].ref: order-77 belongs to another customer"
        " (owner@shop.example)\n"
    )
    assert customer_count(database) == 1


def test_an_unreachable_database_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_database(monkeypatch, tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none")
    path = write(tmp_path, {"customers": [EXAMPLE]})
    result = CliRunner().invoke(cli, ["customers", "import", path], prog_name="care-connector")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: nothing imported: database error at postgresql+psycopg://")


def test_db_upgrade_migrates_an_empty_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    use_database(monkeypatch, tmp_path, url)
    first = CliRunner().invoke(cli, ["db", "upgrade"], prog_name="care-connector")
    assert first.exit_code == 0, first.stderr
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert first.stdout == f"{url}: upgraded from an empty database to {head}\n"
    again = CliRunner().invoke(cli, ["db", "upgrade"], prog_name="care-connector")
    assert again.stdout == f"{url}: already at revision {head}\n"
    assert Database.from_url(url).current_revision() == head


def test_db_upgrade_reports_an_unreachable_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_database(monkeypatch, tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(cli, ["db", "upgrade"], prog_name="care-connector")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: cannot upgrade the database at postgresql+psycopg://")
