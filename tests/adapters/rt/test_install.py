"""``webhooks install`` for RT: the plan, the initialdata file (checked by Perl itself where it
is installed), and applying or printing it. The file is applied to a real RT in
tests/integration/rt/."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from adapters.errors import HelpdeskAPIError
from adapters.rt import RTAdapter
from adapters.rt import install as installer
from tests.adapters.rt.support import API_USER, SECRET, rt_desk

URL = "https://care.example.com"
SETUP = "/usr/sbin/rt-setup-database-5"


def found(name: str) -> str | None:
    return SETUP if name == installer.DEFAULT_SETUP_COMMAND else None


def local_plan(**overrides: Any) -> installer.RTInstallPlan:
    desk = rt_desk(base_url="http://127.0.0.1:8080", **overrides)
    return installer.plan(URL, desk, which=found)


class FakeSetup:
    """Stands in for ``rt-setup-database``: records the command and the file it was given."""

    def __init__(self, stdout: str, returncode: int = 0, stderr: str = "") -> None:
        self.stdout, self.returncode, self.stderr = stdout, returncode, stderr
        self.commands: list[list[str]] = []
        self.files: list[str] = []
        self.modes: list[int] = []

    def __call__(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(command))
        path = command[command.index("--datafile") + 1]
        self.files.append(Path(path).read_text(encoding="utf-8"))
        self.modes.append(stat.S_IMODE(os.stat(path).st_mode))
        return subprocess.CompletedProcess(list(command), self.returncode, self.stdout, self.stderr)


REPORT = (
    "Working with:\nType:\tSQLite\nNow inserting data.\n"
    "care-connector: created custom field 'Care' (2)\n"
    "care-connector: created scrip 'Care Connector (rt): webhook' (18)\n"
    "care-connector: done\nDone inserting data.\nDone.\n"
)


# --------------------------------------------------------------------------------------------
# The plan


def test_the_plan_on_a_local_rt() -> None:
    plan = local_plan()
    assert plan.endpoint == f"{URL}/hooks/rt"
    assert (plan.api_user_id, plan.tags_field, plan.mode) == (API_USER, "Care", "auto")
    assert plan.local and plan.applies
    assert plan.setup_command == "rt-setup-database-5"
    assert plan.description == "Care Connector (rt): webhook"
    assert plan.configured_secret == SECRET
    assert plan.describe() == [
        "custom field 'Care': multiple values, the connector's tags",
        "scrip 'Care Connector (rt): webhook': POST https://care.example.com/hooks/rt on "
        "Create, Correspond, Comment, CustomField, Status (signed; loop guard: not by RT "
        "user 33)",
        "applied here with rt-setup-database-5",
    ]


@pytest.mark.parametrize(
    ("base_url", "which", "local"),
    [
        ("http://127.0.0.1:8080", found, True),
        ("http://localhost/rt", found, True),
        ("http://[::1]:8080", found, True),
        ("http://127.0.0.1:8080", lambda name: None, False),
        ("https://rt.example.com", found, False),
        ("http://10.0.0.5", found, False),
    ],
)
def test_rt_is_local_on_loopback_with_the_setup_command(
    base_url: str, which: Any, local: bool
) -> None:
    plan = installer.plan(URL, rt_desk(base_url=base_url), which=which)
    assert (plan.local, plan.applies) == (local, local)


def test_install_modes() -> None:
    printed = local_plan(options={"install": "print"})
    assert not printed.applies
    assert printed.describe()[-1] == "printed, with the command for the RT admin"
    remote = installer.plan(URL, rt_desk(options={"install": "apply"}), which=found)
    assert remote.applies and not remote.local


def test_the_setup_command_can_be_named() -> None:
    plan = installer.plan(
        URL, rt_desk(options={"setup_command": "/opt/rt5/sbin/rt-setup-database"}), which=found
    )
    assert plan.setup_command == "/opt/rt5/sbin/rt-setup-database"
    assert plan.command("f.pl") == [
        "/opt/rt5/sbin/rt-setup-database",
        "--action",
        "insert",
        "--datafile",
        "f.pl",
        "--skip-create",
    ]


def test_without_a_secret_one_will_be_generated() -> None:
    plan = local_plan(secrets=(), secret_env=())
    assert plan.secret_env == "CARE_RT_SECRET"
    assert plan.describe()[-1] == "a new signing secret will be generated (none in CARE_RT_SECRET)"


@pytest.mark.parametrize(
    ("overrides", "url", "words"),
    [
        ({}, "not a url", "not an http"),
        ({}, "ftp://care.example.com", "not an http"),
        ({"api_user_id": ""}, URL, "api_user_id must be the numeric id"),
        ({"api_user_id": "care-connector"}, URL, "api_user_id must be the numeric id"),
        ({"options": {"install": "later"}}, URL, "options.install must be one of"),
        ({"options": {"tags_field": "a\nb"}}, URL, "tags_field"),
        ({"options": {"setup_command": " "}}, URL, "setup_command must not be empty"),
    ],
)
def test_plan_refuses_bad_settings(overrides: dict[str, Any], url: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        installer.plan(url, rt_desk(**overrides), which=found)


# --------------------------------------------------------------------------------------------
# The file


def test_the_file_holds_the_endpoint_the_secret_and_the_loop_guard() -> None:
    plan = local_plan()
    text = installer.initialdata(plan, "s3cr'et\\x")
    assert "my $url = 'https://care.example.com/hooks/rt';" in text
    assert "my $secret = 's3cr\\'et\\\\x';" in text
    assert f"return 0 if $txn->Creator == {API_USER};" in text
    assert "qw(Create Correspond Comment CustomField Status)" in text
    assert "my $description = 'Care Connector (rt): webhook';" in text
    assert "my $field_name = 'Care';" in text
    assert "'X-Care-Delivery' => $txn->id" in text
    assert text.rstrip().endswith("1;")


def test_perl_strings_escape_quotes_and_backslashes() -> None:
    assert installer.perl_string("it's \\ ok") == "'it\\'s \\\\ ok'"


def _perl_has(*modules: str) -> bool:
    if shutil.which("perl") is None:
        return False
    loads = " ".join(f"-M{m}" for m in modules)
    return subprocess.run(f"perl {loads} -e 1", shell=True, capture_output=True).returncode == 0


@pytest.mark.skipif(not _perl_has("JSON", "HTTP::Tiny", "Digest::SHA"), reason="no Perl/JSON")
def test_perl_compiles_the_file_and_the_scrip_code(tmp_path: Path) -> None:
    plan = local_plan()
    datafile = tmp_path / "care.initialdata"
    datafile.write_text(installer.initialdata(plan, SECRET), encoding="utf-8")
    checked = subprocess.run(["perl", "-c", str(datafile)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    for name, code in (
        ("condition", installer.condition_code(API_USER)),
        ("action", installer.scrip_code(plan.endpoint, SECRET)),
    ):
        source = tmp_path / f"{name}.pl"
        source.write_text(f"sub {{ my $self = shift;\n{code}\n}};\n", encoding="utf-8")
        checked = subprocess.run(["perl", "-c", str(source)], capture_output=True, text=True)
        assert checked.returncode == 0, (name, checked.stderr)


# --------------------------------------------------------------------------------------------
# Applying or printing


def test_a_local_install_runs_the_setup_command_with_a_private_file() -> None:
    setup = FakeSetup(REPORT)
    result = installer.execute(local_plan(), run=setup)
    (command,) = setup.commands
    assert (
        command[:3] == ["rt-setup-database-5", "--action", "insert"]
        and command[-1] == "--skip-create"
    )
    assert setup.modes == [0o600]
    assert "my $secret = 'rt-signing-current';" in setup.files[0]
    assert not Path(command[command.index("--datafile") + 1]).exists()
    assert result.applied and not result.generated
    assert result.describe() == [
        "created custom field 'Care' (2)",
        "created scrip 'Care Connector (rt): webhook' (18)",
        "the scrip signs with the current secret of CARE_RT_SECRET",
    ]


def test_a_generated_secret_goes_in_the_scrip_and_the_report() -> None:
    setup = FakeSetup(REPORT)
    plan = local_plan(secrets=())
    result = installer.execute(plan, run=setup, make_secret=lambda: "fresh-secret")
    assert "my $secret = 'fresh-secret';" in setup.files[0]
    assert result.generated and result.secret == "fresh-secret"
    assert result.describe()[-1].startswith("set CARE_RT_SECRET to fresh-secret")


@pytest.mark.parametrize(
    ("stdout", "code", "stderr", "words"),
    [
        (
            "Now inserting data.\n",
            0,
            "[error]: Failed to run one of final actions: no user",
            "no user",
        ),
        (REPORT, 255, "ERROR: cannot connect", "exited with 255"),
        ("", 1, "", "no output"),
    ],
)
def test_a_failed_setup_is_a_permanent_error(
    stdout: str, code: int, stderr: str, words: str
) -> None:
    with pytest.raises(HelpdeskAPIError, match=words) as caught:
        installer.execute(local_plan(), run=FakeSetup(stdout, code, stderr))
    assert caught.value.permanent


def test_a_setup_command_that_cannot_run_is_a_permanent_error() -> None:
    def missing(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(command[0])

    with pytest.raises(HelpdeskAPIError, match="rt-setup-database-5") as caught:
        installer.execute(local_plan(), run=missing)
    assert caught.value.permanent


def test_elsewhere_the_file_is_printed_with_the_command() -> None:
    plan = installer.plan(URL, rt_desk(), which=found)
    setup = FakeSetup(REPORT)
    result = installer.execute(plan, run=setup)
    assert setup.commands == [] and not result.applied
    lines = result.describe()
    assert lines[0] == (
        "# Save the lines between the markers as care-connector-rt.initialdata on the RT "
        "server, then run:"
    )
    assert lines[1] == (
        "#   rt-setup-database-5 --action insert --datafile care-connector-rt.initialdata "
        "--skip-create"
    )
    begin, end = lines.index("# ----- begin -----"), lines.index("# ----- end -----")
    assert "\n".join(lines[begin + 1 : end]) + "\n" == result.datafile
    assert "my $url = 'https://care.example.com/hooks/rt';" in result.datafile


def test_the_adapter_plans_and_executes(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = RTAdapter(rt_desk(options={"install": "print"}))
    assert adapter.install_plan(URL).endpoint == f"{URL}/hooks/rt"
    result = adapter.install(URL)
    assert not result.applied and result.secret == SECRET


# --------------------------------------------------------------------------------------------
# Through the command line


def _cli_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, desk: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "care.sqlite3"}"\n\n{desk}', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARE_CONFIG", str(config))
    monkeypatch.delenv("CARE_DATABASE_URL", raising=False)
    monkeypatch.setenv("CARE_CLI_RT_SECRET", "cli-secret")


def _invoke(*args: str) -> Any:
    from click.testing import CliRunner

    from connector.cli import cli

    return CliRunner().invoke(cli, list(args), prog_name="care-connector")


def test_the_command_prints_the_file_for_a_remote_rt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli_desk(
        tmp_path,
        monkeypatch,
        '[desks.rt]\nadapter = "rt"\nbase_url = "https://rt.example.com"\n'
        'secret_env = ["CARE_CLI_RT_SECRET"]\napi_user_id = "22"\n',
    )
    result = _invoke("webhooks", "install", "--desk", "rt", "--url", URL)
    assert result.exit_code == 0, result.output
    assert "--action insert --datafile care-connector-rt.initialdata --skip-create" in result.output
    assert "my $secret = 'cli-secret';" in result.output
    assert "return 0 if $txn->Creator == 22;" in result.output


def test_the_command_names_a_missing_api_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli_desk(tmp_path, monkeypatch, '[desks.rt]\nadapter = "rt"\nbase_url = "https://rt.x"\n')
    result = _invoke("webhooks", "install", "--desk", "rt", "--url", URL)
    assert result.exit_code == 2
    assert "--desk rt: desk 'rt': api_user_id must be the numeric id" in result.output
