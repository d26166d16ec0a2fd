"""``care-connector config check``: an invalid file is exit 2 naming the keys; each desk is
reached with its credentials (one authenticated read, answered here by ``responses``) and
reported ok or failed with the reason; a failed desk is exit 1."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner, Result

from connector.cli import cli

ZENDESK = "https://shop.zendesk.com"
FRESHDESK = "https://shop.freshdesk.com"
ZAMMAD = "https://support.shop.example"
HELPSCOUT = "https://api.helpscout.net"

DESKS = f"""
[desks.zendesk]
adapter = "zendesk"
base_url = "{ZENDESK}"
secret_env = ["CHECK_ZD_SECRET"]
email = "bot@shop.example"
token_env = "CHECK_ZD_TOKEN"

[desks.freshdesk]
adapter = "freshdesk"
base_url = "{FRESHDESK}"
secret_env = ["CHECK_FD_SECRET"]
api_key_env = "CHECK_FD_KEY"

[desks.zammad]
adapter = "zammad"
base_url = "{ZAMMAD}"
secret_env = ["CHECK_ZM_SECRET"]
token_env = "CHECK_ZM_TOKEN"

[desks.helpscout]
adapter = "helpscout"
base_url = "{HELPSCOUT}"
secret_env = ["CHECK_HS_SECRET"]
client_id_env = "CHECK_HS_ID"
client_secret_env = "CHECK_HS_SECRET_KEY"
"""

ENV = {
    "CHECK_ZD_SECRET": "zd-webhook-secret",
    "CHECK_ZD_TOKEN": "zd-token",
    "CHECK_FD_SECRET": "fd-webhook-secret",
    "CHECK_FD_KEY": "fd-key",
    "CHECK_ZM_SECRET": "zm-webhook-secret",
    "CHECK_ZM_TOKEN": "zm-token",
    "CHECK_HS_SECRET": "hs-webhook-secret",
    "CHECK_HS_ID": "hs-client",
    "CHECK_HS_SECRET_KEY": "hs-client-secret",
}


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CARE_CONFIG", raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def check(*args: str) -> Result:
    return CliRunner().invoke(cli, ["config", "check", *args])


def stub_all_ok() -> None:
    responses.get(
        f"{ZENDESK}/api/v2/users/me",
        json={
            "user": {"id": 900, "name": "Care Bot", "email": "bot@shop.example", "role": "admin"}
        },
    )
    responses.get(
        f"{FRESHDESK}/api/v2/agents/me",
        json={"id": 80012, "contact": {"name": "Care Bot", "email": "bot@shop.example"}},
    )
    responses.get(
        f"{ZAMMAD}/api/v1/users/me",
        json={"id": 3, "firstname": "Care", "lastname": "Bot", "email": "bot@shop.example"},
    )
    responses.post(
        f"{HELPSCOUT}/v2/oauth2/token",
        json={"access_token": "hs-access", "token_type": "bearer", "expires_in": 7200},
    )
    responses.get(
        f"{HELPSCOUT}/v2/users/me",
        json={"id": 29418, "firstName": "Care", "lastName": "Bot", "email": "bot@shop.example"},
    )


# --------------------------------------------------------------------------------------------
# Reaching the desks


@responses.activate
def test_every_desk_reached_with_its_credentials(tmp_path: Path) -> None:
    path = write(tmp_path, DESKS)
    stub_all_ok()

    result = check("--config", str(path))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{path}: valid",
        f"zendesk (zendesk, {ZENDESK}): ok: user 900 Care Bot <bot@shop.example>, admin",
        f"freshdesk (freshdesk, {FRESHDESK}): ok: agent 80012 Care Bot <bot@shop.example>",
        f"zammad (zammad, {ZAMMAD}): ok: user 3 Care Bot <bot@shop.example>",
        f"helpscout (helpscout, {HELPSCOUT}): ok: user 29418 Care Bot <bot@shop.example>",
    ]
    sent = {call.request.url: call.request.headers.get("Authorization") for call in responses.calls}
    basic = base64.b64encode(b"bot@shop.example/token:zd-token").decode()
    assert sent[f"{ZENDESK}/api/v2/users/me"] == f"Basic {basic}"
    key = base64.b64encode(b"fd-key:X").decode()
    assert sent[f"{FRESHDESK}/api/v2/agents/me"] == f"Basic {key}"
    assert sent[f"{ZAMMAD}/api/v1/users/me"] == "Token token=zm-token"
    assert sent[f"{HELPSCOUT}/v2/users/me"] == "Bearer hs-access"
    assert all(call.request.method in ("GET", "POST") for call in responses.calls)


@responses.activate
def test_a_desk_that_refuses_its_credentials_fails_with_the_reason(tmp_path: Path) -> None:
    path = write(tmp_path, DESKS)
    stub_all_ok()
    responses.replace(
        responses.GET,
        f"{FRESHDESK}/api/v2/agents/me",
        status=401,
        json={"code": "invalid_credentials", "message": "You have to be logged in"},
    )
    responses.replace(
        responses.POST,
        f"{HELPSCOUT}/v2/oauth2/token",
        status=401,
        json={"error": "invalid_client"},
    )

    result = check("--config", str(path))

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[1].startswith(f"zendesk (zendesk, {ZENDESK}): ok: ")
    assert lines[2] == (
        f"freshdesk (freshdesk, {FRESHDESK}): failed: GET {FRESHDESK}/api/v2/agents/me: "
        'HTTP 401: {"code": "invalid_credentials", "message": "You have to be logged in"}'
    )
    assert lines[3].startswith(f"zammad (zammad, {ZAMMAD}): ok: ")
    assert lines[4].startswith(f"helpscout (helpscout, {HELPSCOUT}): failed: POST ")
    assert "HTTP 401" in lines[4] and "invalid_client" in lines[4]
    assert "hs-client-secret" not in result.output and "fd-key" not in result.output


@responses.activate
def test_zendesk_answering_as_an_anonymous_user_is_a_refusal(tmp_path: Path) -> None:
    desk = DESKS.split("[desks.freshdesk]")[0]
    path = write(tmp_path, desk)
    responses.get(
        f"{ZENDESK}/api/v2/users/me",
        json={"user": {"id": None, "name": "Anonymous user", "role": "end-user"}},
    )
    result = check("--config", str(path))
    assert result.exit_code == 1
    assert result.output.splitlines()[1] == (
        f"zendesk (zendesk, {ZENDESK}): failed: GET /api/v2/users/me: Zendesk did not accept "
        "the credentials (it answered as an anonymous user)"
    )


@responses.activate
def test_missing_credentials_fail_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, DESKS)
    for name in ("CHECK_ZD_TOKEN", "CHECK_FD_KEY", "CHECK_ZM_TOKEN", "CHECK_HS_SECRET_KEY"):
        monkeypatch.delenv(name)

    result = check("--config", str(path))

    assert result.exit_code == 1
    assert len(responses.calls) == 0
    lines = result.output.splitlines()
    assert lines[1].endswith(
        "failed: desk 'zendesk' has no API credentials: set email and token_env "
        '(or token_env with options.auth = "oauth")'
    )
    assert lines[2].endswith("failed: desk 'freshdesk' has no API key: set api_key_env")
    assert lines[3].endswith("failed: desk 'zammad' has no API credentials: set token_env")
    assert "failed: desk 'helpscout' has no Help Scout credentials" in lines[4]


@responses.activate
def test_an_unreachable_desk_fails(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[desks.zammad]\nadapter = "zammad"\nbase_url = "http://127.0.0.1:1"\n'
        'secret_env = ["CHECK_ZM_SECRET"]\ntoken_env = "CHECK_ZM_TOKEN"\ntimeout = 2\n',
    )
    responses.add_passthru("http://127.0.0.1:1")
    result = check("--config", str(path))
    assert result.exit_code == 1
    assert "failed: GET http://127.0.0.1:1/api/v1/users/me: cannot reach the desk" in result.output


# --------------------------------------------------------------------------------------------
# The file


def test_offline_validates_without_calling_anyone(tmp_path: Path) -> None:
    path = write(tmp_path, DESKS)
    with responses.RequestsMock() as mock:  # any request would fail the test
        result = check("--config", str(path), "--offline")
        assert len(mock.calls) == 0
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [
        f"zendesk (zendesk, {ZENDESK}): not reached (--offline)",
        f"freshdesk (freshdesk, {FRESHDESK}): not reached (--offline)",
        f"zammad (zammad, {ZAMMAD}): not reached (--offline)",
        f"helpscout (helpscout, {HELPSCOUT}): not reached (--offline)",
    ]


def test_an_invalid_file_names_every_bad_key_and_exits_2(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[hours]\nzone = "Mars/Base"\n[metrics]\nallow = ["intranet"]\n'
        '[desks.zendesk]\nadapter = "zendesk"\nbase_url = "not a url"\n',
    )
    result = check("--config", str(path), "--offline")
    assert result.exit_code == 2
    errors = result.output.splitlines()
    assert all(line.startswith(f"error: {path}: ") for line in errors)
    text = "\n".join(errors)
    assert "hours.zone: unknown time zone 'Mars/Base'" in text
    assert "metrics.allow[0]: not a network 'intranet'" in text
    assert "desks.zendesk.base_url: not an http(s) URL: 'not a url'" in text
    assert "Traceback" not in result.output


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = check("--config", str(tmp_path / "nowhere.toml"))
    assert result.exit_code == 2
    assert "nowhere.toml" in result.output and result.output.startswith("error: ")


def test_not_toml_exits_2(tmp_path: Path) -> None:
    result = check("--config", str(write(tmp_path, "[desks\n")))
    assert result.exit_code == 2 and result.output.startswith("error: ")


def test_the_file_is_discovered_like_every_command(tmp_path: Path) -> None:
    write(tmp_path, '[policy]\ndefault_language = "ru"\n')
    result = check()
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "config.toml: valid",
        "no [desks.*] configured: nothing to reach",
    ]


def test_without_a_file_the_defaults_are_checked(tmp_path: Path) -> None:
    result = check()
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "the built-in defaults: valid"


def test_a_desk_without_its_webhook_secret_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHECK_ZM_SECRET")
    path = write(tmp_path, DESKS)
    result = check("--config", str(path), "--offline")
    assert result.exit_code == 0
    assert (
        "  warning: no webhook secret is set (CHECK_ZM_SECRET): every delivery will be refused "
        "until it is (`care-connector webhooks install` prints it)"
    ) in result.output.splitlines()
