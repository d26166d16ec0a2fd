"""``care-connector quote`` through the real CLI group, app and configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli

Invoke = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Invoke ``care-connector`` in an empty directory: the built-in defaults apply."""
    monkeypatch.chdir(tmp_path)
    for name in ("CARE_CONFIG", "CARE_DATABASE_URL", "CARE_PUBLIC_URL", "FLASK_APP"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), prog_name="care-connector")

    return invoke


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["upgrade", "--from", "4.3.1", "--to", "4.3.9"], {"credits": 50, "steps": 8}),
        (["upgrade", "--from", "4.3.9", "--to", "4.4.1"], {"credits": 20, "steps": 2}),
        (
            ["upgrade", "--from", "4.9.2", "--to", "4.9.2.sp4"],
            {"credits": 20, "steps": 0, "from": "4.9.2", "to": "4.9.2.SP4"},
        ),
        (
            ["upgrade", "--from", "4.4.2.SP1", "--to", "4.4.3"],
            {"credits": 20, "steps": 1, "from": "4.4.2.SP1", "to": "4.4.3"},
        ),
        (["upgrade", "--from", "4.4.1", "--to", "4.4.2.SP2"], {"credits": 20, "steps": 1}),
        (["upgrade", "--from", "v4.3.1", "--to", "4.4.1"], {"credits": 60, "steps": 10}),
        (["question"], {"credits": 5}),
        (["configuration"], {"credits": 10}),
        (["investigation"], {"credits": 20}),
        (["modification"], {"credits": 20}),
        (["modification", "--credits", "35"], {"credits": 35}),
        (["modification", "--credits", "20"], {"credits": 20}),
    ],
)
def test_quote_json(run: Invoke, args: list[str], expected: dict[str, object]) -> None:
    result = run("quote", *args, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["category"] == args[0]
    assert {key: data[key] for key in expected} == expected
    assert ("steps" in data) == (args[0] == "upgrade")
    assert data["explanation"]["en"] and data["explanation"]["ru"]


def test_category_is_case_insensitive(run: Invoke) -> None:
    result = run("quote", "Upgrade", "--from", "4.3.1", "--to", "4.3.9", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["category"] == "upgrade"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["upgrade", "--from", "4.3.1", "--to", "4.3.9"],
            "20 + 5 × (8 − 2) = 50 credits for 8 release steps",
        ),
        (
            ["upgrade", "--from", "4.9.2", "--to", "4.9.2.SP4"],
            "20 credits for 0 release steps (up to 2 steps included)",
        ),
        (["question"], "Question about functionality or setup (question): 5 credits, fixed price"),
    ],
)
def test_quote_text(run: Invoke, args: list[str], line: str) -> None:
    result = run("quote", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == line + "\n"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["modification", "--credits", "19"], "at least 20"),
        (["modification", "--credits", "-5"], "at least 20"),
        (["question", "--credits", "30"], "fixed price"),
        (["upgrade", "--from", "4.3.1", "--to", "4.3.9", "--credits", "30"], "fixed price"),
        (["bogus"], "unknown category 'bogus'"),
        (["upgrade", "--from", "4.3.1", "--to", "4.3.99"], "unknown version '4.3.99'"),
        (["upgrade", "--from", "5.0.1", "--to", "4.3.9"], "unknown version '5.0.1'"),
        (["upgrade", "--from", "4.3.1", "--to", "4.3.1"], "same version (4.3.1)"),
        (["upgrade", "--from", "4.9.2.sp4", "--to", "4.9.2.SP4"], "same version (4.9.2.SP4)"),
        (["upgrade", "--from", "4.3.9", "--to", "4.3.1"], "4.3.9 → 4.3.1 is a downgrade"),
        (["upgrade", "--from", "4..3", "--to", "4.3.9"], "malformed version '4..3'"),
        (["upgrade", "--from", "4.3.1", "--to", "abc"], "malformed version 'abc'"),
        (["upgrade", "--from", "", "--to", "4.3.9"], "malformed version ''"),
        (["upgrade", "--from", "4.3.1"], "both the from and the to version"),
        (["upgrade"], "both the from and the to version"),
        (["question", "--from", "4.3.1", "--to", "4.3.9"], "versions apply only"),
        (["modification", "--credits", "abc"], "--credits must be a whole number"),
        (["modification", "--credits", "20.5"], "--credits must be a whole number"),
        (["modification", "--credits", "2_0"], "--credits must be a whole number"),
        (["modification", "--credits", ""], "--credits must be a whole number"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_bad_input_is_one_line_exit_2(
    run: Invoke, args: list[str], named: str, as_json: bool
) -> None:
    result = run("quote", *args, *(["--json"] if as_json else []))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1
    assert named in result.stderr
    assert "Traceback" not in result.output


def test_policy_comes_from_the_config(run: Invoke, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[upgrade]\n"
        "base = 30\n"
        "included_steps = 0\n"
        "per_step = 10\n"
        'extra_releases = [{ version = "4.19.2" }, { version = "4.19.2.SP1", '
        "service_pack = true }]\n",
        encoding="utf-8",
    )
    result = run("quote", "upgrade", "--from", "4.18.3", "--to", "4.19.2.SP1", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["credits"], data["steps"]) == (50, 2)
    assert data["explanation"]["en"] == "30 + 10 × (2 − 0) = 50 credits for 2 release steps"
