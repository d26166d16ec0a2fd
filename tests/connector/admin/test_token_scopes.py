"""Admin tokens with a scope and an expiry, and the admin API's body cap.

The configuration (``[admin] tokens`` as a variable's name or a table, ``max_body_bytes``),
then the API and the pages with four tokens: ``alice`` (write, never expires), ``reader``
(scope read), ``temp`` (expires on the test day: works through its end, UTC) and ``old``
(expired before the test). The time is the connector's clock, moved by the tests.
"""

from __future__ import annotations

import io
import json
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from connector import ledger
from connector.admin import pages
from connector.config import (
    DEFAULT_ADMIN_MAX_BODY_BYTES,
    AdminToken,
    ConfigError,
    load_settings,
)
from connector.db import Database
from connector.extension import ConnectorState
from connector.models import AdminAudit, InboundDelivery, OutboxAction, Ticket
from tests.connector.admin.conftest import (
    ALICE,
    NOW,
    Api,
    Deliver,
    admin_app,
    config,
    customer_id,
    desk_environment,
    run_pipeline,
    signed_sender,
    ticket_body,
)
from tests.connector.conftest import CountingBody, post_stream

ROOT = Path(__file__).resolve().parents[3]
READER = "reader-admin-token-5555555555"
TEMP = "temp-admin-token-7777777777"
OLD = "old-admin-token-3333333333"
#: The API's body cap in these tests (small, so bodies over it are cheap to make).
CAP = 4096
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FORM_KEY = re.compile(r'name="key" value="([^"]+)"')

TOKENS: dict[str, Any] = {
    "alice": "CARE_TEST_ADMIN_ALICE",
    "reader": {"env": "CARE_TEST_ADMIN_READER", "scope": "read"},
    "temp": {"env": "CARE_TEST_ADMIN_TEMP", "scope": "write", "expires": NOW.date()},
    "old": {"env": "CARE_TEST_ADMIN_OLD", "expires": datetime(2026, 3, 1, 12, 0, tzinfo=UTC)},
}
ENVIRON = {
    "CARE_TEST_ADMIN_ALICE": ALICE,
    "CARE_TEST_ADMIN_READER": READER,
    "CARE_TEST_ADMIN_TEMP": TEMP,
    "CARE_TEST_ADMIN_OLD": OLD,
}


# --------------------------------------------------------------------------------------------
# Configuration


def admin_config(tokens: Any, **more: Any) -> dict[str, Any]:
    return {"admin": {"tokens": tokens, **more}}


def config_error(config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ=ENVIRON)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_token_is_a_variable_name_or_a_table() -> None:
    admin = load_settings(admin_config(TOKENS), environ=ENVIRON).admin
    assert admin.token_env == {
        "alice": "CARE_TEST_ADMIN_ALICE",
        "reader": "CARE_TEST_ADMIN_READER",
        "temp": "CARE_TEST_ADMIN_TEMP",
        "old": "CARE_TEST_ADMIN_OLD",
    }
    assert admin.tokens == {"alice": ALICE, "reader": READER, "temp": TEMP, "old": OLD}
    assert admin.access["alice"] == AdminToken(env="CARE_TEST_ADMIN_ALICE")
    assert admin.access["reader"] == AdminToken(env="CARE_TEST_ADMIN_READER", scope="read")
    # A date: the token works through the end of that day, UTC.
    assert admin.access["temp"].expires == datetime(2026, 3, 11, tzinfo=UTC)
    assert admin.access["old"].expires == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert admin.max_body_bytes == DEFAULT_ADMIN_MAX_BODY_BYTES == 16 * 1024 * 1024
    for value in (ALICE, READER, TEMP, OLD):
        assert value not in repr(admin)


def test_expiry_edges() -> None:
    token = AdminToken(env="X", expires=datetime(2026, 3, 11, tzinfo=UTC))
    assert not token.expired(datetime(2026, 3, 10, 23, 59, 59, 999999, tzinfo=UTC))
    assert token.expired(datetime(2026, 3, 11, tzinfo=UTC))
    # The same instant seen from another zone.
    assert token.expired(datetime(2026, 3, 11, 4, 0, tzinfo=timezone(timedelta(hours=4))))
    assert not AdminToken(env="X").expired(datetime(9999, 12, 31, tzinfo=UTC))


def test_an_offset_date_time_is_taken_as_that_instant_in_utc() -> None:
    plus4 = timezone(timedelta(hours=4))
    tokens = {
        "a": {"env": "A", "expires": datetime(2027, 1, 15, 18, 0, tzinfo=plus4)},
        "b": {"env": "B", "expires": "2027-01-15T18:00:00Z"},
        "c": {"env": "C", "expires": "2027-03-01"},
    }
    access = load_settings(admin_config(tokens), environ={}).admin.access
    assert access["a"].expires == datetime(2027, 1, 15, 14, 0, tzinfo=UTC)
    assert access["a"].expires.tzinfo is UTC
    assert access["b"].expires == datetime(2027, 1, 15, 18, 0, tzinfo=UTC)
    assert access["c"].expires == datetime(2027, 3, 2, tzinfo=UTC)


def test_toml_dates_and_date_times(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[admin.tokens]\n"
        'alice = "CARE_TEST_ADMIN_ALICE"\n'
        'auditor = { env = "AUDITOR", scope = "read", expires = 2027-03-01 }\n'
        'contractor = { env = "CONTRACTOR", expires = 2027-01-15T18:00:00+04:00 }\n',
        encoding="utf-8",
    )
    access = load_settings(path, environ={}).admin.access
    assert access["auditor"] == AdminToken(
        env="AUDITOR", scope="read", expires=datetime(2027, 3, 2, tzinfo=UTC)
    )
    assert access["contractor"].expires == datetime(2027, 1, 15, 14, 0, tzinfo=UTC)
    assert access["alice"].scope == "write" and access["alice"].expires is None


def test_the_example_files_admin_example_loads(tmp_path: Path) -> None:
    """The commented ``[admin.tokens]`` example of config.example.toml, put in place of its
    ``tokens = {}`` line, is a valid configuration."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    section = text[text.index("\n[admin]\n") : text.index("\n[outbox]\n")]
    example = re.search(r"#   \[admin\.tokens\]\n(?:#   .+\n)+", section)
    assert example is not None
    lines = "".join(line.removeprefix("#   ") + "\n" for line in example.group(0).splitlines())
    assert section.rstrip().endswith("tokens = {}")
    changed = text.replace(section, section.rstrip().removesuffix("tokens = {}") + lines)
    path = tmp_path / "config.toml"
    path.write_text(changed, encoding="utf-8")
    tomllib.loads(changed)  # still TOML
    access = load_settings(path, environ={}).admin.access
    assert set(access) == {"alice", "auditor", "contractor"}
    assert access["auditor"].scope == "read"
    assert access["auditor"].expires == datetime(2027, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"env": "R", "scope": "admin"}, "admin.tokens.r.scope: unknown scope 'admin'"),
        ({"env": "R", "scope": "READ"}, "admin.tokens.r.scope: unknown scope 'READ'"),
        ({"env": "R", "scope": 1}, "admin.tokens.r.scope: must be a string"),
        ({"env": "R", "expires": "tomorrow"}, "admin.tokens.r.expires: not a date"),
        ({"env": "R", "expires": "2027-02-30"}, "admin.tokens.r.expires: not a date"),
        ({"env": "R", "expires": 20270301}, "admin.tokens.r.expires: not a date"),
        ({"env": "R", "expires": True}, "admin.tokens.r.expires: not a date"),
        ({"env": "R", "expires": datetime(2027, 3, 1, 12, 0)}, "admin.tokens.r.expires"),
        ({"env": "R", "expires": "2027-03-01T12:00:00"}, "has no UTC offset"),
        ({"env": "R", "expires": date.max}, "admin.tokens.r.expires: out of range"),
        ({"env": "R", "expiry": "2027-03-01"}, "admin.tokens.r.expiry: unknown key"),
        ({"scope": "read"}, "admin.tokens.r.env"),
        ({"env": ""}, "admin.tokens.r.env: must not be empty"),
        ({"env": "not a variable"}, "admin.tokens.r.env"),
        ("", "admin.tokens.r: must not be empty"),
        (5, "admin.tokens.r: must be the NAME of an environment variable"),
        (["R"], "admin.tokens.r: must be the NAME of an environment variable"),
    ],
)
def test_bad_token_entries_are_refused_naming_the_key(entry: Any, fragment: str) -> None:
    assert fragment in config_error(admin_config({"r": entry}))


def test_a_local_date_time_asks_for_an_offset() -> None:
    message = config_error(admin_config({"r": {"env": "R", "expires": datetime(2027, 3, 1)}}))
    assert "admin.tokens.r.expires: 2027-03-01T00:00:00 has no UTC offset" in message


def test_the_expiry_hint_names_a_did_you_mean() -> None:
    assert "did you mean 'expires'?" in config_error(
        admin_config({"r": {"env": "R", "expiry": "2027-03-01"}})
    )


@pytest.mark.parametrize("value", [0, -1, "16MiB", 1.5, True])
def test_a_bad_body_cap_is_refused(value: Any) -> None:
    assert "admin.max_body_bytes" in config_error(admin_config({}, max_body_bytes=value))


# --------------------------------------------------------------------------------------------
# The app: four tokens, a small body cap


@pytest.fixture
def scoped(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The admin tests' app (customers imported) with the four tokens and ``CAP``."""
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    settings = config(database)
    settings["admin"] = {"tokens": TOKENS, "max_body_bytes": CAP}
    desk_environment(monkeypatch)
    app = admin_app(settings)
    yield app
    app.extensions["care_connector"].database.dispose()


@pytest.fixture
def sst(scoped: Flask) -> ConnectorState:
    return scoped.extensions["care_connector"]  # type: ignore[no-any-return]


@pytest.fixture
def sapi(scoped: Flask) -> Api:
    return Api(scoped.test_client())


def set_clock(st: ConnectorState, moment: datetime) -> None:
    st.clock = lambda: moment


def audit_rows(st: ConnectorState) -> list[tuple[str, str]]:
    with st.database.transaction(read_only=True) as session:
        return [(a.actor, a.action) for a in session.scalars(select(AdminAudit))]


def balance(st: ConnectorState, email: str) -> int:
    with st.database.transaction(read_only=True) as session:
        return ledger.balance(session, customer_id(st, email))


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"code", "status", "message", "errors"}
    assert body["code"] == status
    return body  # type: ignore[no-any-return]


def documented(api: Api, token: str) -> list[tuple[str, str]]:
    doc = api.get("/openapi.json", token=token).get_json()
    ops = []
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{[a-z_]+\}", "1", path.removeprefix("/admin/api"))
        ops += [(method.upper(), concrete) for method in item if method != "parameters"]
    return ops


# --------------------------------------------------------------------------------------------
# The API: expiry


def test_an_expired_token_is_refused_saying_so(sapi: Api, sst: ConnectorState) -> None:
    for path in ("/customers", "/openapi.json", "/no-such-thing"):
        body = error_of(sapi.get(path, token=OLD), 401)
        assert "'old' expired at 2026-03-01 12:00 UTC" in body["message"]
    refused = sapi.get("/customers", token=OLD)
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    grant = sapi.post(
        f"/customers/{customer_id(sst, 'std@shop.example')}/grants",
        {"credits": 5, "reason": "late"},
        token=OLD,
    )
    assert "expired" in error_of(grant, 401)["message"]
    assert audit_rows(sst) == []


def test_a_date_expiry_works_through_the_end_of_that_day_utc(
    sapi: Api, sst: ConnectorState
) -> None:
    assert sapi.get("/customers", token=TEMP).status_code == 200
    set_clock(sst, datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC))
    assert sapi.get("/customers", token=TEMP).status_code == 200
    set_clock(sst, datetime(2026, 3, 11, 0, 0, tzinfo=UTC))
    body = error_of(sapi.get("/customers", token=TEMP), 401)
    assert "'temp' expired at 2026-03-11 00:00 UTC" in body["message"]
    # The other tokens are untouched by it.
    assert sapi.get("/customers", token=ALICE).status_code == 200


def test_an_unexpired_token_acts_under_its_name(sapi: Api, sst: ConnectorState) -> None:
    cid = customer_id(sst, "std@shop.example")
    answer = sapi.post(f"/customers/{cid}/grants", {"credits": 7, "reason": "temp"}, token=TEMP)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["actor"] == "temp"
    assert audit_rows(sst)[-1][0] == "temp"


def test_wrong_and_missing_tokens_still_get_the_plain_401(sapi: Api) -> None:
    for token in (None, "nope", OLD + "x"):
        body = error_of(sapi.get("/customers", token=token), 401)
        assert "A valid admin token is required" in body["message"]


# --------------------------------------------------------------------------------------------
# The API: a read token


def test_a_read_token_may_get_every_documented_operation(sapi: Api) -> None:
    ops = documented(sapi, READER)
    gets = [path for method, path in ops if method == "GET"]
    assert len(gets) >= 12
    for path in gets:
        answer = sapi.get(path, token=READER)
        assert answer.status_code in (200, 404), (path, answer.get_json())
        head = sapi.client.head(f"/admin/api{path}", headers={"Authorization": f"Bearer {READER}"})
        assert head.status_code == answer.status_code, path


def test_a_read_token_is_refused_every_change(sapi: Api, sst: ConnectorState) -> None:
    cid = customer_id(sst, "credits@shop.example")
    before = balance(sst, "credits@shop.example")
    ops = [(m, p) for m, p in documented(sapi, READER) if m != "GET"]
    assert len(ops) >= 10
    ops += [
        ("POST", f"/customers/{cid}/grants"),
        ("DELETE", f"/customers/{cid}"),
        ("PUT", "/customers"),
        ("PATCH", f"/customers/{cid}"),
        ("DELETE", "/no-such-thing"),
    ]
    for method, path in ops:
        answer = sapi.client.open(
            f"/admin/api{path}",
            method=method,
            headers={"Authorization": f"Bearer {READER}"},
            json={"credits": 20, "reason": "read token", "amount": 1},
        )
        body = error_of(answer, 403)
        assert "'reader' is read-only" in body["message"], (method, path)
        assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
    assert balance(sst, "credits@shop.example") == before
    assert audit_rows(sst) == []
    # The same change with a write token goes through.
    grant = sapi.post(f"/customers/{cid}/grants", {"credits": 20, "reason": "ok"})
    assert grant.status_code == 201


def test_the_document_names_403_and_413_on_changes(sapi: Api) -> None:
    doc = sapi.get("/openapi.json", token=READER).get_json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "post":
                assert {"401", "403", "413"} <= set(op["responses"]), path
            elif method == "get":
                assert "403" not in op["responses"], path


# --------------------------------------------------------------------------------------------
# The API: the body cap


def raw_call(
    app: Flask, path: str, body: io.RawIOBase, token: str = ALICE, **environ: Any
) -> tuple[int, Any]:
    """POST ``body`` to the API with the given environ keys and no computed Content-Length;
    the status and the JSON answer."""
    return post_stream(
        app, f"/admin/api{path}", body, headers={"Authorization": f"Bearer {token}"}, **environ
    )


def test_a_content_length_over_the_cap_is_refused_unread(scoped: Flask) -> None:
    for size in (CAP + 1, 1024 * CAP):
        body = CountingBody(size)
        status, answer = raw_call(scoped, "/customers/import", body, CONTENT_LENGTH=str(size))
        assert (status, answer["code"]) == (413, 413)
        assert set(answer) == {"code", "status", "message", "errors"}
        assert f"larger than {CAP} bytes" in answer["message"]
        assert body.read_bytes == 0


def test_a_chunked_body_over_the_cap_is_refused_one_byte_past_it(scoped: Flask) -> None:
    for size in (CAP + 1, 1024 * CAP):
        body = CountingBody(size)
        status, answer = raw_call(
            scoped, "/customers/import", body, **{"wsgi.input_terminated": True}
        )
        assert (status, answer["code"]) == (413, 413), size
        assert body.read_bytes == CAP + 1


def test_bodies_up_to_the_cap_are_read(scoped: Flask, sst: ConnectorState) -> None:
    entry = {"email": "new@shop.example", "name": "New Customer"}
    document = json.dumps({"customers": [entry]}).encode()
    padded = document + b" " * (CAP - len(document))  # exactly the cap: JSON allows spaces
    assert len(padded) == CAP
    status, answer = raw_call(
        scoped, "/customers/import", io.BytesIO(padded), **{"wsgi.input_terminated": True}
    )
    assert status == 200, answer
    assert answer["customers_created"] == 1
    client = Api(scoped.test_client())
    again = client.post("/customers/import", data=padded, content_type="application/json")
    assert again.status_code == 200


def test_the_body_is_read_only_for_a_token_allowed_to_send_it(scoped: Flask) -> None:
    """A stranger (401) and a read token (403) are answered before a byte is read."""
    for token, code in (("nope", 401), (OLD, 401), (READER, 403)):
        for environ in ({"CONTENT_LENGTH": str(CAP // 2)}, {"wsgi.input_terminated": True}):
            body = CountingBody(CAP // 2)
            status, _ = raw_call(scoped, "/customers/import", body, token=token, **environ)
            assert status == code
            assert body.read_bytes == 0


def test_the_default_cap_is_16_mib(app: Flask, st: ConnectorState) -> None:
    """The admin tests' app keeps the default: 16 MiB taken, one byte more refused unread."""
    limit = st.settings.admin.max_body_bytes
    assert limit == 16 * 1024 * 1024
    body = CountingBody(limit + 1)
    status, _ = raw_call(app, "/customers/import", body, CONTENT_LENGTH=str(limit + 1))
    assert status == 413 and body.read_bytes == 0
    # At the cap: read whole, then refused as JSON that is not an import document (422).
    body = CountingBody(limit)
    status, _ = raw_call(app, "/customers/import", body, CONTENT_LENGTH=str(limit))
    assert body.read_bytes == limit
    assert status in (400, 422)


# --------------------------------------------------------------------------------------------
# The pages


def csrf_of(response: Any) -> str:
    found = CSRF.search(response.get_data(as_text=True))
    assert found is not None, response.get_data(as_text=True)[:500]
    return found.group(1)


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def sign_in(client: FlaskClient, token: str) -> Any:
    form = client.get("/admin/sign-in")
    return client.post("/admin/sign-in", data={"csrf": csrf_of(form), "token": token})


def test_sign_in_with_an_expired_token_is_refused_saying_so(scoped: Flask) -> None:
    client = scoped.test_client()
    answer = sign_in(client, OLD)
    assert answer.status_code == 401
    assert "&#39;old&#39; expired at 2026-03-01 12:00 UTC" in text(answer)
    assert client.get("/admin/").status_code == 302


def test_a_session_ends_when_its_token_expires(scoped: Flask, sst: ConnectorState) -> None:
    client = scoped.test_client()
    assert sign_in(client, TEMP).status_code == 303
    home = client.get("/admin/")
    assert home.status_code == 200
    csrf = csrf_of(home)
    set_clock(sst, datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC))
    moved = client.get("/admin/customers")
    assert moved.status_code == 302
    assert moved.headers["Location"].startswith("/admin/sign-in")
    page = client.get(moved.headers["Location"])
    assert page.status_code == 200
    assert "&#39;temp&#39; expired at 2026-03-11 00:00 UTC" in text(page)
    # Ended, not only refused: with the clock back the session does not come back.
    set_clock(sst, NOW)
    assert client.get("/admin/").status_code == 302
    # A change posted after expiry is not made.
    sign_in(client, TEMP)
    csrf = csrf_of(client.get("/admin/"))
    set_clock(sst, datetime(2026, 3, 12, tzinfo=UTC))
    cid = customer_id(sst, "std@shop.example")
    before = balance(sst, "std@shop.example")
    posted = client.post(
        f"/admin/customers/{cid}/credits",
        data={"csrf": csrf, "kind": "grant", "amount": "5", "reason": "x", "key": "k" * 22},
    )
    assert posted.status_code == 303
    assert "expired" in text(client.get(posted.headers["Location"]))
    assert balance(sst, "std@shop.example") == before
    # Another, unexpired token signs in as before.
    assert sign_in(client, ALICE).status_code == 303
    assert client.get("/admin/").status_code == 200


def dead_letter(st: ConnectorState, deliver: Deliver) -> int:
    """A delivery whose write-backs the desk refuses (422): one dead-lettered action."""
    assert deliver(ticket_body("9101", "std@shop.example")).status_code == 200
    run_pipeline(st, status=422)
    with st.database.transaction(read_only=True) as session:
        found = session.scalar(
            select(OutboxAction.id).where(OutboxAction.status == "dead").limit(1)
        )
    assert found is not None
    return found


@pytest.fixture
def sdeliver(scoped: Flask) -> Deliver:
    return signed_sender(scoped.test_client())


CHANGE_FORMS = (
    "/credits",  # the grant/adjust form
    "/replay",
    "/retry",
    "/cancel",
)


def change_forms(html: str) -> list[str]:
    actions = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
    return [a for a in actions if a.endswith(CHANGE_FORMS)]


def test_a_read_session_sees_no_change_buttons_and_is_refused_posts(
    scoped: Flask, sst: ConnectorState, sdeliver: Deliver
) -> None:
    action_id = dead_letter(sst, sdeliver)
    with sst.database.transaction(read_only=True) as session:
        row = session.get(OutboxAction, action_id)
        assert row is not None
        ticket_id = row.ticket_id
    cid = customer_id(sst, "std@shop.example")
    with sst.database.transaction(read_only=True) as session:
        delivery_id = session.scalar(select(InboundDelivery.id).limit(1))
    pages_to_check = [
        f"/admin/customers/{cid}",
        f"/admin/deliveries/{delivery_id}",
        "/admin/outbox?state=dead",
        f"/admin/outbox/{action_id}",
    ]
    with sst.database.transaction(read_only=True) as session:
        tid = session.scalar(select(Ticket.id).where(Ticket.external_id == ticket_id))
    pages_to_check.append(f"/admin/tickets/{tid}")

    writer = scoped.test_client()
    assert sign_in(writer, ALICE).status_code == 303
    for path in pages_to_check:
        assert change_forms(text(writer.get(path))), path  # the write session has them

    reader = scoped.test_client()
    assert sign_in(reader, READER).status_code == 303
    home = reader.get("/admin/")
    assert 'id="read-only"' in text(home)
    for path in pages_to_check:
        page = reader.get(path)
        assert page.status_code == 200, path
        assert change_forms(text(page)) == [], path
    assert "read-only token" in text(reader.get(f"/admin/customers/{cid}"))

    csrf = csrf_of(home)
    key = FORM_KEY.search(text(writer.get(f"/admin/customers/{cid}")))
    assert key is not None
    before = balance(sst, "std@shop.example")
    posts = {
        f"/admin/customers/{cid}/credits": {
            "kind": "grant",
            "amount": "20",
            "reason": "read",
            "key": key.group(1),
        },
        f"/admin/deliveries/{delivery_id}/replay": {},
        f"/admin/outbox/{action_id}/retry": {"next": "/admin/outbox"},
        f"/admin/outbox/{action_id}/cancel": {},
    }
    for path, form in posts.items():
        refused = reader.post(path, data={"csrf": csrf, **form})
        assert refused.status_code == 403, path
        assert "&#39;reader&#39; is read-only" in text(refused)
        assert "Nothing was changed" in text(refused)
    assert balance(sst, "std@shop.example") == before
    assert audit_rows(sst) == []
    with sst.database.transaction(read_only=True) as session:
        row = session.get(OutboxAction, action_id)
        assert row is not None and row.status == "dead"
    # Signing out is no change: a read session may.
    out = reader.post("/admin/sign-out", data={"csrf": csrf})
    assert out.status_code == 303
    assert reader.get("/admin/").status_code == 302


def test_a_scope_change_in_the_config_applies_to_open_sessions(
    scoped: Flask, sst: ConnectorState
) -> None:
    """The scope is the token's as configured now, not as it was at sign-in."""
    from dataclasses import replace

    client = scoped.test_client()
    assert sign_in(client, ALICE).status_code == 303
    assert 'id="read-only"' not in text(client.get("/admin/"))
    admin = sst.settings.admin
    narrowed = {**admin.access, "alice": replace(admin.access["alice"], scope="read")}
    sst.settings = replace(sst.settings, admin=replace(admin, access=narrowed))
    assert 'id="read-only"' in text(client.get("/admin/"))


def test_a_chunked_form_over_the_cap_is_refused(scoped: Flask) -> None:
    client = scoped.test_client()
    assert sign_in(client, ALICE).status_code == 303
    body = CountingBody(50 * pages.MAX_FORM_BYTES)
    built = EnvironBuilder(
        path="/admin/sign-out",
        method="POST",
        content_type="application/x-www-form-urlencoded",
    ).get_environ()
    built.pop("CONTENT_LENGTH", None)
    built.update({"wsgi.input": body, "wsgi.input_terminated": True})
    _, status, _ = run_wsgi_app(scoped.wsgi_app, built, buffered=True)
    assert int(status.split()[0]) == 413
    assert body.read_bytes == pages.MAX_FORM_BYTES + 1
