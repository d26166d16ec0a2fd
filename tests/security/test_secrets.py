"""Secrets come from the environment (a config file names the variables, never holds the
values), and no configuration message or ``repr`` shows one.
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.config import ConfigError, load_settings

LITERAL = "sk-live-0123456789abcdefXYZ"


def refused(config: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ=environ or {})
    return str(caught.value)


def desk(**extra: Any) -> dict[str, Any]:
    return {"desks": {"main": {"adapter": "zendesk", "base_url": "https://a.example", **extra}}}


@pytest.mark.parametrize(
    "key", ["secret", "secrets", "token", "api_key", "password", "client_secret", "webhook_secret"]
)
def test_a_desk_takes_no_secret_value_in_the_file(key: str) -> None:
    message = refused(desk(**{key: LITERAL}))
    assert "unknown key" in message and f"desks.main.{key}" in message
    assert LITERAL not in message


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"token_env": LITERAL}, "desks.main.token_env"),
        ({"api_key_env": LITERAL}, "desks.main.api_key_env"),
        ({"password_env": LITERAL}, "desks.main.password_env"),
        ({"client_secret_env": LITERAL}, "desks.main.client_secret_env"),
        ({"secret_env": [LITERAL]}, "desks.main.secret_env[0]"),
    ],
)
def test_a_secret_pasted_where_its_variable_name_goes_is_not_shown(
    extra: dict[str, Any], path: str
) -> None:
    message = refused(desk(**extra))
    assert path in message and "not an environment variable name" in message
    assert LITERAL not in message and LITERAL[4:] not in message
    assert f"{len(LITERAL)} characters, not shown" in message


def test_an_admin_token_pasted_into_the_file_is_not_shown() -> None:
    message = refused({"admin": {"tokens": {"alice": LITERAL}}})
    assert "admin.tokens.alice" in message and LITERAL not in message


def test_a_short_bad_name_is_still_quoted() -> None:
    assert "'a b' is not an environment variable name" in refused(desk(secret_env=["a b"]))


def test_a_password_in_a_desk_url_is_refused_and_not_shown() -> None:
    message = refused(desk(base_url="https://bot:hunter2-pass@acme.zendesk.com"))
    assert "must not carry credentials" in message
    assert "hunter2-pass" not in message and "bot:***@" in message


def test_a_password_in_a_bad_database_url_is_not_shown() -> None:
    message = refused({}, {"CARE_DATABASE_URL": "postgresql://care:db-pass-word@db/care bad"})
    assert "db-pass-word" not in message and "care:***@" in message
    message = refused({"database": {"url": "postgres ql://care:db-pass-word@db/care"}})
    assert "db-pass-word" not in message


def test_reprs_hold_no_secret() -> None:
    environ = {
        "CARE_DATABASE_URL": "postgresql+psycopg://care:db-pass-word@db/care",
        "S_WEBHOOK": "webhook-secret-value",
        "S_TOKEN": "api-token-value",
        "S_KEY": "api-key-value",
        "S_ID": "client-id-value",
        "S_CLIENT": "client-secret-value",
        "S_PASSWORD": "password-value",
        "S_ADMIN": "admin-token-value",
        "S_METRICS": "metrics-token-value",
    }
    settings = load_settings(
        {
            "admin": {"tokens": {"alice": "S_ADMIN"}},
            "metrics": {"token_env": "S_METRICS"},
            "desks": {
                "main": {
                    "adapter": "zendesk",
                    "base_url": "https://acme.zendesk.com",
                    "secret_env": ["S_WEBHOOK"],
                    "token_env": "S_TOKEN",
                    "api_key_env": "S_KEY",
                    "client_id_env": "S_ID",
                    "client_secret_env": "S_CLIENT",
                    "password_env": "S_PASSWORD",
                }
            },
        },
        environ=environ,
    )
    main = settings.desks["main"]
    # Read from the environment, once, at load...
    assert main.secrets == ("webhook-secret-value",) and main.token == "api-token-value"
    assert settings.admin.tokens == {"alice": "admin-token-value"}
    # ...and never shown.
    shown = repr(settings) + repr(main) + str(settings) + repr(settings.admin)
    for name, value in environ.items():
        secret = value.split(":", 2)[-1].split("@")[0] if name == "CARE_DATABASE_URL" else value
        assert secret not in shown, name


def test_a_secret_not_in_the_environment_is_no_secret() -> None:
    settings = load_settings(desk(secret_env=["S_UNSET"], token_env="T_UNSET"), environ={})
    main = settings.desks["main"]
    assert main.secrets == () and main.token == ""
