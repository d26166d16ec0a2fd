"""No secret is shown on a page, on every registered desk.

After the whole path of tests/security/pipeline.py (stored deliveries carry their
signature or shared-secret headers; dead-lettered write-backs carry the desk's answer,
which echoed the credentials sent), every GET route of the app is opened, signed in to the
admin pages and with the admin API's bearer token, every route with an id for each stored
row: the approval page, the admin pages and API, health and metrics. No answer may show a
configured secret, a credential sent in an ``Authorization`` header, or (outside the approval
page and the admin pages, whose staff see the links on the tickets) an approval link's token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from connector.extension import ConnectorState
from connector.models import Customer, InboundDelivery, OutboxAction, Ticket
from tests.adapters.hostile import Desk
from tests.security.pipeline import (
    ADMIN_TOKEN,
    METRICS_TOKEN,
    Traffic,
    leaks,
    run_pipeline,
)

ARGUMENTS = {
    "customer_id": Customer.id,
    "ticket_id": Ticket.id,
    "delivery_id": InboundDelivery.id,
    "action_id": OutboxAction.id,
}


def signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    form = client.get("/admin/sign-in").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    answer = client.post("/admin/sign-in", data={"csrf": csrf[1], "token": ADMIN_TOKEN})
    assert answer.status_code == 303
    return client


def urls(app: Flask, desk: Desk, traffic: Traffic) -> Iterator[str]:
    """Every GET route, each route with ids once per stored row."""
    st: ConnectorState = app.extensions["care_connector"]
    with st.database.transaction(read_only=True) as session:
        ids = {name: list(session.scalars(select(column))) for name, column in ARGUMENTS.items()}
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or rule.endpoint == "static":
            continue
        arguments = set(rule.arguments)
        if not arguments:
            yield rule.rule
        elif arguments == {"token"}:
            yield from (rule.rule.replace("<token>", t) for t in traffic.approval_tokens)
        elif len(arguments) == 1 and (name := arguments.pop()) in ARGUMENTS:
            for value in ids[name]:
                yield re.sub(r"<(int:)?" + name + ">", str(value), rule.rule)


def test_no_secret_is_shown_on_any_page(app: Flask, desk: Desk) -> None:
    traffic = run_pipeline(app, desk)
    admin = signed_in(app)
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    opened = 0
    for url in urls(app, desk, traffic):
        if url.startswith("/admin/api/"):
            answer = app.test_client().get(url, headers=bearer)
        elif url == "/metrics":
            answer = app.test_client().get(
                url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            )
        else:
            answer = admin.get(url)
        # /healthz is 503 here by design: no worker or scheduler has beaten yet.
        assert answer.status_code < 500 or url == "/healthz", (url, answer.status_code)
        text = answer.get_data(as_text=True)
        leaked = leaks(text, app, desk, traffic)
        if url.startswith(("/approvals/", "/admin/")):
            # The approval page's address is its token; staff see the links anyway (they are
            # posted on the ticket), so the admin pages may show them.
            leaked = {item for item in leaked if not item.startswith("approval token")}
        assert not leaked, f"{url} shows {sorted(leaked)}"
        opened += answer.status_code == 200
    assert opened >= 20, f"only {opened} pages opened: the crawl found too little"
