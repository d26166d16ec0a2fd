"""The command group itself: a broken configuration is one line and exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import cli


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CARE_DATABASE_URL": "mysql://db/x"}, "Unsupported database 'mysql'"),
        ({"CARE_CONFIG": "{missing}"}, "missing.toml"),
        ({"CARE_CONFIG": "{bad}"}, "hours.zone: unknown time zone 'Mars/Base'"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[hours]\nzone = "Mars/Base"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(missing=tmp_path / "missing.toml", bad=bad))
    result = CliRunner().invoke(cli, ["credits", "verify"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
