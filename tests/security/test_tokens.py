"""Tokens are scoped: each opens only its own door.

The approval links and the admin pages' session cookie are signed with the same key (the
connector's, ``CARE_SECRET_KEY`` or the one kept in the database) but with different salts,
so neither passes for the other; the admin token opens the admin API and pages, not the
metrics; the metrics token opens the metrics, not the admin API. (That approval links
expire, name one ticket and one amount and refuse tampering, and that admin sessions end
after their hours or when their token changes, is tested beside the code: see
docs/security.md.)
"""

from __future__ import annotations

import pytest
from flask import Flask
from itsdangerous import URLSafeTimedSerializer

from connector import approvals
from connector.admin.pages import COOKIE_NAME
from tests.adapters.hostile import Desk
from tests.security.pipeline import ADMIN_TOKEN, DESKS, METRICS_TOKEN
from tests.security.test_pages import signed_in

ZENDESK = next(d for d in DESKS if d.key == "zendesk")


@pytest.fixture
def desk() -> Desk:
    """Zendesk alone: the ``app`` of tests/security/conftest.py is built for it."""
    return ZENDESK


def approval_token(app: Flask, payload: object, *, salt: str = approvals.SALT) -> str:
    with app.extensions["care_connector"].database.transaction() as session:
        key = approvals.signing_key(session)
    return URLSafeTimedSerializer(key, salt=salt).dumps(payload)


def test_an_admin_session_cookie_is_no_approval_link(app: Flask) -> None:
    admin = signed_in(app)
    cookie = admin.get_cookie(COOKIE_NAME, path="/admin")
    assert cookie is not None
    answer = app.test_client().get(f"/approvals/{cookie.value}")
    assert answer.status_code == 404


def test_an_approval_link_is_no_admin_session(app: Flask) -> None:
    """A signed-in session re-signed with the approval links' salt (same key, same payload)
    opens nothing; the session as it was does."""
    cookie = signed_in(app).get_cookie(COOKIE_NAME, path="/admin")
    assert cookie is not None
    with app.test_request_context("/admin/"):
        sessions = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        data = sessions.loads(cookie.value)
        key = app.session_interface.connector_key(app)  # type: ignore[attr-defined]
    as_link = URLSafeTimedSerializer(
        key,
        salt=approvals.SALT,
        serializer=sessions.serializer,
        signer_kwargs=sessions.signer_kwargs,
    ).dumps(data)
    client = app.test_client()
    client.set_cookie(COOKIE_NAME, as_link, path="/admin")
    assert client.get("/admin/").status_code == 302  # to the sign-in page
    client.set_cookie(COOKIE_NAME, cookie.value, path="/admin")
    assert client.get("/admin/").status_code == 200


def test_a_genuine_approval_token_with_the_session_salt_is_no_link(app: Flask) -> None:
    token = approval_token(app, {"ticket": 1, "amount": 5}, salt="cookie-session")
    assert app.test_client().get(f"/approvals/{token}").status_code == 404


def test_each_token_opens_only_its_own_door(app: Flask) -> None:
    client = app.test_client()

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    assert client.get("/admin/api/customers", headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert client.get("/admin/api/customers", headers=bearer(METRICS_TOKEN)).status_code == 401
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    assert client.get("/metrics", headers=bearer(ADMIN_TOKEN)).status_code == 401
    # A webhook secret is no admin token either.
    secret = app.extensions["care_connector"].settings.desks["zendesk"].secrets[0]
    assert client.get("/admin/api/customers", headers=bearer(secret)).status_code == 401
