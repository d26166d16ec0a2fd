"""The admin JSON API: every endpoint, its auth failures and its bad input.

Tickets, deliveries and write-backs are made by the real pipeline (signed Zendesk deliveries,
the worker, the outbox against ``responses``); the API is called with the Flask test client.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from connector import create_app, ledger
from connector.customers import find_customer
from connector.db import Database
from connector.extension import ConnectorState
from connector.jobs import quota_reset_statement
from connector.models import (
    AdminAudit,
    Event,
    Identity,
    InboundDelivery,
    LedgerEntry,
    OutboxAction,
    QuotaAllowance,
    QuotaUsage,
    Subscription,
    Ticket,
)
from tests.connector.admin.conftest import (
    ALICE,
    BOB,
    NOW,
    SECRET,
    Api,
    Deliver,
    config,
    customer_id,
    make_ticket,
    run_pipeline,
    ticket_body,
)

# --------------------------------------------------------------------------------------------
# Helpers


def audit_rows(st: ConnectorState) -> list[tuple[str, str, str]]:
    with st.database.transaction(read_only=True) as session:
        return [
            (a.actor, a.action, a.target)
            for a in session.scalars(select(AdminAudit).order_by(AdminAudit.id))
        ]


def assert_error(response: Any, status: int, *fields: str) -> dict[str, Any]:
    """The one error shape, with ``status`` and (when given) errors naming ``fields``."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"code", "status", "message", "errors"}
    assert body["code"] == status and body["message"]
    for name in fields:
        assert name in body["errors"], body
    return body  # type: ignore[no-any-return]


def documented_operations(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document, ids filled in with 1."""
    doc = api.get("/openapi.json").get_json()
    ops = []
    for path, item in doc["paths"].items():
        concrete = path.removeprefix("/admin/api")
        for name in ("customer_id", "subscription_id", "license_id", "entry_id", "ticket_id"):
            concrete = concrete.replace("{" + name + "}", "1")
        for name in ("delivery_id", "action_id"):
            concrete = concrete.replace("{" + name + "}", "1")
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                ops.append((method.upper(), concrete))
    return ops


# --------------------------------------------------------------------------------------------
# Authentication


def test_every_operation_refuses_a_missing_or_wrong_token(api: Api) -> None:
    ops = documented_operations(api)
    assert len(ops) >= 20
    for method, path in ops + [("GET", "/openapi.json"), ("GET", "/no-such-thing")]:
        for token, headers in (
            (None, {}),
            ("wrong-token", {}),
            (ALICE + "x", {}),
            (None, {"Authorization": f"Basic {ALICE}"}),
            (None, {"Authorization": "Bearer"}),
        ):
            call = api.client.open(
                f"/admin/api{path}",
                method=method,
                headers={**headers, **({"Authorization": f"Bearer {token}"} if token else {})},
                json={},
            )
            body = assert_error(call, 401)
            assert call.headers["WWW-Authenticate"].startswith("Bearer")
            assert "token" in body["message"]


def test_a_named_token_whose_variable_is_unset_is_no_token(api: Api, st: ConnectorState) -> None:
    assert set(st.settings.admin.tokens) == {"alice", "bob"}
    assert st.settings.admin.token_env["carol"] == "CARE_TEST_ADMIN_CAROL_UNSET"
    assert "alice-admin" not in repr(st.settings.admin)
    assert_error(api.get("/customers", token=""), 401)


def test_no_token_configured_refuses_every_request(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARE_TEST_ADMIN_ALICE", ALICE)
    app = create_app(config(database, tokens={}))
    client = Api(app.test_client())
    for path in ("/customers", "/openapi.json", "/outbox", "/nothing"):
        body = assert_error(client.get(path), 401)
        assert "No admin token is configured" in body["message"]
    app.extensions["care_connector"].database.dispose()


def test_the_token_name_is_the_actor_of_changes(api: Api, st: ConnectorState) -> None:
    anna = customer_id(st, "credits@shop.example")
    answer = api.post(f"/customers/{anna}/grants", {"credits": 7, "reason": "goodwill"}, token=BOB)
    assert answer.status_code == 201
    assert answer.get_json()["actor"] == "bob"
    assert audit_rows(st) == [("bob", "credits.grant", f"customer:{anna}")]


# --------------------------------------------------------------------------------------------
# Errors and routing


def test_unknown_paths_and_methods_answer_in_the_one_shape(api: Api) -> None:
    assert_error(api.get("/nothing/here"), 404)
    assert_error(api.get("/customers/2147483648"), 404)  # beyond any id: no row, no 500
    wrong = api.client.delete("/admin/api/customers", headers={"Authorization": f"Bearer {ALICE}"})
    assert_error(wrong, 405)
    assert wrong.headers["Allow"] == "GET"
    assert_error(api.get("/customers", query_string={"page": 0}), 422, "query.page")
    assert_error(api.get("/customers", query_string={"per_page": 501}), 422, "query.per_page")
    assert_error(api.get("/customers", query_string={"q": "a\x00b"}), 422, "query.q")
    bad_json = api.post("/customers/1/grants", data="{", content_type="application/json")
    assert_error(bad_json, 400, "$")


def test_other_routes_of_the_app_keep_their_own_errors(api: Api) -> None:
    answer = api.client.get("/no-such-page")
    assert answer.status_code == 404
    assert answer.content_type.startswith("text/html")  # Flask's own page, not the API's


def test_a_host_app_keeps_its_error_handlers_and_its_own_api(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_smorest import Api as HostApi
    from flask_smorest import Blueprint as HostBlueprint

    from connector import CareConnector

    monkeypatch.setenv("CARE_TEST_ADMIN_ALICE", ALICE)
    host = Flask("host")
    host.config.update(API_TITLE="Host", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    host.config["OPENAPI_URL_PREFIX"] = "/docs"
    host_api = HostApi(host)
    pets = HostBlueprint("pets", __name__)

    @pets.route("/pets")
    def list_pets() -> dict[str, Any]:
        return {"pets": []}

    host_api.register_blueprint(pets)

    @host.errorhandler(404)
    def host_not_found(err: Exception) -> tuple[str, int]:
        return "host says: not found", 404

    host.config["CARE_CONFIG"] = config(database)
    host.config["CARE_URL_PREFIX"] = "/care"
    CareConnector(host)
    client = host.test_client()
    assert client.get("/nowhere").get_data(as_text=True) == "host says: not found"
    host_doc = client.get("/docs/openapi.json").get_json()
    assert list(host_doc["paths"]) == ["/pets"]
    headers = {"Authorization": f"Bearer {ALICE}"}
    admin_doc = client.get("/care/admin/api/openapi.json", headers=headers).get_json()
    assert "/care/admin/api/customers" in admin_doc["paths"]
    assert "/pets" not in admin_doc["paths"]
    assert client.get("/care/admin/api/customers", headers=headers).status_code == 200
    assert_error(client.get("/care/admin/api/customers"), 401)
    assert_error(client.get("/care/admin/api/nope", headers=headers), 404)
    host.extensions["care_connector"].database.dispose()


def test_openapi_document_is_generated(api: Api) -> None:
    doc = api.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.0.3"
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    grants = doc["paths"]["/admin/api/customers/{customer_id}/grants"]["post"]
    body = grants["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/GrantRequest"}
    assert set(doc["components"]["schemas"]["GrantRequest"]["required"]) == {"credits", "reason"}
    assert {"201", "401", "404", "409", "422"} <= set(grants["responses"])


# --------------------------------------------------------------------------------------------
# Customers


def test_search_customers_by_email_or_name(api: Api) -> None:
    by_email = api.get("/customers", query_string={"q": "VIP@"}).get_json()
    assert [c["email"] for c in by_email["items"]] == ["vip@shop.example"]
    by_name = api.get("/customers", query_string={"q": "anna cred"}).get_json()
    assert [c["email"] for c in by_name["items"]] == ["credits@shop.example"]
    assert by_name["items"][0]["balance"] == 120
    # LIKE wildcards are matched literally.
    assert api.get("/customers", query_string={"q": "%"}).get_json()["total"] == 0
    everyone = api.get("/customers", query_string={"per_page": 3, "page": 2}).get_json()
    assert (everyone["total"], everyone["pages"], len(everyone["items"])) == (4, 2, 1)
    assert everyone["items"][0]["email"] == "vip@shop.example"  # by email


def test_customer_detail(api: Api, st: ConnectorState, deliver: Deliver) -> None:
    vera = customer_id(st, "vip@shop.example")
    ticket = make_ticket(st, deliver, "301", "vip@shop.example", requester_id="1001")
    with st.database.transaction() as session:
        session.add(
            QuotaUsage(customer_id=vera, period="2026-03", kind="modification", ticket_id=ticket)
        )
    detail = api.get(f"/customers/{vera}").get_json()
    assert detail["email"] == "vip@shop.example" and detail["today"] == "2026-03-10"
    assert detail["plan"]["key"] == "vip"
    assert "subscription vip until 2026-12-31" in detail["plan"]["reason"]
    assert detail["quota"] == {"kind": "modification", "period": "2026-03", "used": 1, "limit": 7}
    assert detail["entitlements"] == [
        {
            "plan": "vip",
            "starts_on": "2026-01-01",
            "ends_on": "2026-12-31",
            "source": "subscription vip",
            "license_ref": None,
            "active": True,
        }
    ]
    assert detail["identities"] == [{"desk": "zendesk", "external_id": "1001"}]
    assert detail["has_upgrades_today"] is True and detail["upgrades_lifetime"] is True
    assert [t["external_id"] for t in detail["tickets"]] == ["301"]

    fred = api.get(f"/customers/{customer_id(st, 'free@shop.example')}").get_json()
    assert fred["plan"]["key"] == "free_period"
    assert fred["entitlements"][0]["ends_on"] == "2026-04-14"  # 45 days from 1 March
    assert fred["licenses"][0]["ref"] == "MV-1" and fred["licenses"][0]["ended_on"] is None
    assert fred["quota"]["limit"] is None

    assert_error(api.get("/customers/999999"), 404)


def test_ledger_is_paginated_newest_first(api: Api, st: ConnectorState) -> None:
    anna = customer_id(st, "credits@shop.example")
    for n in range(3):
        assert (
            api.post(f"/customers/{anna}/grants", {"credits": n + 1, "reason": f"r{n}"}).status_code
            == 201
        )
    first = api.get(f"/customers/{anna}/ledger", query_string={"per_page": 2}).get_json()
    assert (first["total"], first["pages"]) == (5, 3)  # license 50, purchase 70, three grants
    assert [e["amount"] for e in first["items"]] == [3, 2]
    last = api.get(f"/customers/{anna}/ledger", query_string={"per_page": 2, "page": 3}).get_json()
    assert [e["kind"] for e in last["items"]] == ["license_grant"]
    assert_error(api.get("/customers/999999/ledger"), 404)
    assert_error(
        api.get(f"/customers/{anna}/ledger", query_string={"page": "x"}), 422, "query.page"
    )


def test_grant_credits(api: Api, st: ConnectorState) -> None:
    anna = customer_id(st, "credits@shop.example")
    answer = api.post(
        f"/customers/{anna}/grants", {"credits": 20, "reason": " outage ", "key": "k1"}
    )
    assert answer.status_code == 201
    entry = answer.get_json()
    assert (entry["kind"], entry["amount"], entry["balance_after"]) == ("grant", 20, 140)
    assert (entry["source"], entry["actor"], entry["reason"]) == ("admin", "alice", "outage")
    again = api.post(f"/customers/{anna}/grants", {"credits": 20, "reason": "outage", "key": "k1"})
    assert again.status_code == 201 and again.get_json()["id"] == entry["id"]  # idempotent
    conflict = api.post(f"/customers/{anna}/grants", {"credits": 21, "reason": "x", "key": "k1"})
    assert_error(conflict, 409, "key")
    with st.database.transaction(read_only=True) as session:
        assert ledger.balance(session, anna) == 140
        assert ledger.verify(session) == []

    for bad, field in (
        ({"credits": 0, "reason": "x"}, "credits"),
        ({"credits": -3, "reason": "x"}, "credits"),
        ({"credits": "5", "reason": "x"}, "credits"),
        ({"credits": 1.5, "reason": "x"}, "credits"),
        ({"credits": 2**31, "reason": "x"}, "credits"),
        ({"credits": 5}, "reason"),
        ({"credits": 5, "reason": "x", "extra": 1}, "extra"),
        ({"credits": 5, "reason": "   "}, "reason"),
    ):
        assert_error(api.post(f"/customers/{anna}/grants", bad), 422, field)
    assert_error(api.post(f"/customers/{anna}/grants", [1, 2]), 422)
    assert_error(api.post("/customers/999999/grants", {"credits": 5, "reason": "x"}), 404)


def test_adjust_and_reverse(api: Api, st: ConnectorState) -> None:
    anna = customer_id(st, "credits@shop.example")
    down = api.post(f"/customers/{anna}/adjustments", {"amount": -20, "reason": "double import"})
    assert down.status_code == 201
    assert (down.get_json()["kind"], down.get_json()["balance_after"]) == ("adjustment", 100)
    too_far = api.post(f"/customers/{anna}/adjustments", {"amount": -101, "reason": "x"})
    body = assert_error(too_far, 409, "amount")
    assert "short by 1" in body["message"]
    assert_error(
        api.post(f"/customers/{anna}/adjustments", {"amount": 0, "reason": "x"}), 422, "amount"
    )

    undone = api.post(f"/ledger/{down.get_json()['id']}/reverse", {"reason": "mistake"})
    assert undone.status_code == 201
    assert (undone.get_json()["amount"], undone.get_json()["reverses_id"]) == (
        20,
        down.get_json()["id"],
    )
    assert undone.get_json()["balance_after"] == 120
    # Reversing twice is one reversal: the same entry comes back, no second movement.
    twice = api.post(f"/ledger/{down.get_json()['id']}/reverse", {"reason": "again"})
    assert twice.status_code == 201 and twice.get_json()["id"] == undone.get_json()["id"]
    # The reversal itself can be reversed once (it is an entry like any other).
    back = api.post(f"/ledger/{undone.get_json()['id']}/reverse", {"reason": "undo the undo"})
    assert back.get_json()["balance_after"] == 100
    assert_error(api.post("/ledger/999999/reverse", {"reason": "x"}), 404)
    assert_error(api.post("/ledger/1/reverse", {}), 422, "reason")
    assert [a[1] for a in audit_rows(st)] == [
        "credits.adjust",
        "credits.reverse",
        "credits.reverse",
        "credits.reverse",
    ]


def test_import_customers(api: Api, st: ConnectorState) -> None:
    document = {
        "customers": [
            {
                "email": "New@Shop.example",
                "name": "Nina New",
                "credit_purchases": [
                    {"ref": "order-9", "credits": 30, "purchased_on": "2026-03-01"}
                ],
            }
        ]
    }
    answer = api.post("/customers/import", document)
    assert answer.status_code == 200
    assert answer.get_json()["customers_created"] == 1
    assert answer.get_json()["credits_granted"] == 30
    assert api.post("/customers/import", document).get_json()["credits_granted"] == 0
    nina = customer_id(st, "new@shop.example")
    entries = api.get(f"/customers/{nina}/ledger").get_json()["items"]
    assert [(e["source"], e["actor"], e["amount"]) for e in entries] == [("import", "alice", 30)]

    broken = {
        "customers": [{"email": "ok@shop.example"}, {"email": "bad@shop.example", "locale": "xx"}]
    }
    body = assert_error(api.post("/customers/import", broken), 422, "customers")
    assert body["message"].startswith("bad@shop.example: locale:")
    with st.database.transaction(read_only=True) as session:
        assert find_customer(session, email="ok@shop.example") is None  # nothing imported
    assert_error(api.post("/customers/import", {"customers": "x"}), 422, "customers")
    assert_error(api.post("/customers/import", {"people": []}), 422)
    assert_error(api.post("/customers/import", {"customers": [1]}), 422)


def test_end_a_subscription_early(api: Api, st: ConnectorState, deliver: Deliver) -> None:
    vera = customer_id(st, "vip@shop.example")
    sub = api.get(f"/customers/{vera}").get_json()["subscriptions"][0]
    for day in ("2025-12-31", "2026-12-31", "2027-01-05"):
        assert_error(
            api.post(f"/subscriptions/{sub['id']}/end", {"last_day": day}), 422, "last_day"
        )
    assert_error(api.post(f"/subscriptions/{sub['id']}/end", {"last_day": "soon"}), 422, "last_day")
    ended = api.post(f"/subscriptions/{sub['id']}/end", {"last_day": "2026-03-09"})
    assert ended.status_code == 200 and ended.get_json()["ends_on"] == "2026-03-09"
    assert api.get(f"/customers/{vera}").get_json()["plan"]["key"] == "credits"
    # The worker honours it: a new ticket is handled under the fallback plan.
    ticket = make_ticket(st, deliver, "302", "vip@shop.example", requester_id="1001")
    assert api.get(f"/tickets/{ticket}").get_json()["plan"] == "credits"
    assert_error(api.post("/subscriptions/999999/end", {}), 404)
    assert audit_rows(st) == [("alice", "subscription.end", f"customer:{vera}")]


def test_end_a_subscription_today_by_default(api: Api, st: ConnectorState) -> None:
    stan = customer_id(st, "std@shop.example")
    sub = api.get(f"/customers/{stan}").get_json()["subscriptions"][0]
    ended = api.post(f"/subscriptions/{sub['id']}/end", {})
    assert ended.get_json()["ends_on"] == "2026-03-10"  # today in the support zone
    assert api.get(f"/customers/{stan}").get_json()["plan"]["key"] == "standard"  # still today
    with st.database.transaction(read_only=True) as session:
        assert session.get(Subscription, sub["id"]).ends_on.isoformat() == "2026-03-10"


def test_end_a_license_early(api: Api, st: ConnectorState, deliver: Deliver) -> None:
    fred = customer_id(st, "free@shop.example")
    lic = api.get(f"/customers/{fred}").get_json()["licenses"][0]
    assert_error(
        api.post(f"/licenses/{lic['id']}/end", {"last_day": "2026-02-28"}), 422, "last_day"
    )
    ended = api.post(f"/licenses/{lic['id']}/end", {"last_day": "2026-03-05"})
    assert ended.status_code == 200 and ended.get_json()["ended_on"] == "2026-03-05"
    detail = api.get(f"/customers/{fred}").get_json()
    assert detail["plan"]["key"] == "credits"
    assert "ended on 2026-03-05" in detail["plan"]["reason"]
    assert detail["entitlements"][0]["ends_on"] == "2026-03-05"
    assert_error(api.post(f"/licenses/{lic['id']}/end", {"last_day": "2026-03-06"}), 422)
    ticket = make_ticket(st, deliver, "303", "free@shop.example", requester_id="3003")
    assert api.get(f"/tickets/{ticket}").get_json()["plan"] == "credits"
    assert_error(api.post("/licenses/999999/end", {}), 404)


# --------------------------------------------------------------------------------------------
# Ledger export, personal data, erasure


def test_ledger_csv_export(api: Api, st: ConnectorState, deliver: Deliver) -> None:
    anna = customer_id(st, "credits@shop.example")
    api.post(f"/customers/{anna}/grants", {"credits": 3, "reason": '=HYPERLINK("x")'})
    make_ticket(st, deliver, "311", "credits@shop.example", requester_id="5005")
    answer = api.get("/ledger/export.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="ledger-')
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [r["kind"] for r in rows] == ["license_grant", "purchase", "grant", "charge"]
    assert rows[2]["reason"] == '\'=HYPERLINK("x")'  # not run as a formula
    assert rows[3]["ticket"] == "zendesk:311" and rows[3]["amount"] == "-5"
    assert rows[3]["email"] == "credits@shop.example" and rows[3]["balance_after"] == "118"
    with st.database.transaction(read_only=True) as session:
        assert sum(int(r["amount"]) for r in rows) == ledger.balance(session, anna)

    since = api.get("/ledger/export.csv", query_string={"since": "2026-03-01T00:00:00+00:00"})
    assert len(list(csv.DictReader(io.StringIO(since.get_data(as_text=True))))) == 2
    mine = api.get(
        "/ledger/export.csv", query_string={"customer_id": customer_id(st, "vip@shop.example")}
    )
    assert mine.get_data(as_text=True).strip().count("\n") == 0  # the header only
    naive = api.get("/ledger/export.csv", query_string={"since": "2026-03-01T00:00:00"})
    assert_error(naive, 422, "query.since")
    assert_error(api.get("/ledger/export.csv", query_string={"customer_id": 999999}), 404)


def test_personal_data_export(api: Api, st: ConnectorState, deliver: Deliver) -> None:
    make_ticket(st, deliver, "321", "credits@shop.example", requester_id="5005")
    anna = customer_id(st, "credits@shop.example")
    data = api.get(f"/customers/{anna}/personal-data").get_json()
    assert data["customer"]["email"] == "credits@shop.example"
    assert data["customer"]["name"] == "Anna Credits"
    assert data["identities"] == [{"desk": "zendesk", "external_id": "5005"}]
    assert [lic["ref"] for lic in data["licenses"]] == ["CS-1"]
    assert [e["kind"] for e in data["ledger"]] == ["license_grant", "purchase", "charge"]
    (ticket,) = data["tickets"]
    assert ticket["subject"] == "How to set up shipping methods?"
    assert ticket["events"][0]["payload"]["requester_email"] == "credits@shop.example"
    assert {m["kind"] for m in data["messages"]} == {"note"}
    assert audit_rows(st) == [("alice", "customer.export", f"customer:{anna}")]
    assert_error(api.get("/customers/999999/personal-data"), 404)


def test_erasure_keeps_balances_and_forgets_the_person(
    api: Api, st: ConnectorState, deliver: Deliver
) -> None:
    make_ticket(st, deliver, "331", "credits@shop.example", requester_id="5005")
    anna = customer_id(st, "credits@shop.example")
    api.post(f"/customers/{anna}/grants", {"credits": 10, "reason": "sorry, Anna"})
    with st.database.transaction(read_only=True) as session:
        before = ledger.balance(session, anna)
        entries_before = session.scalar(select(func.count()).select_from(LedgerEntry))

    answer = api.post(f"/customers/{anna}/erasure")
    assert answer.status_code == 200
    result = answer.get_json()
    assert (result["id"], result["balance"], result["tickets"], result["identities"]) == (
        anna,
        before,
        1,
        1,
    )
    with st.database.transaction(read_only=True) as session:
        assert ledger.balance(session, anna) == before
        assert ledger.verify(session) == []  # `credits verify` still adds up
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == entries_before
        reasons = set(
            session.scalars(select(LedgerEntry.reason).where(LedgerEntry.source == "admin"))
        )
        assert reasons == {"(erased)"}
        assert find_customer(session, email="credits@shop.example") is None
        assert find_customer(session, desk="zendesk", external_id="5005") is None
        assert (
            session.scalar(
                select(func.count()).select_from(Identity).where(Identity.customer_id == anna)
            )
            == 0
        )
        ticket = session.scalars(select(Ticket)).one()
        assert (ticket.subject, ticket.requester_email) == ("", None)
        event = session.scalars(select(Event)).one()
        assert event.payload["subject"] == "" and event.payload["requester_email"] is None
        delivery = session.scalars(select(InboundDelivery)).one()
        assert delivery.body == b""
        assert delivery.headers["X-Zendesk-Webhook-Signature"] == "********"
        bodies = {
            a.payload.get("body") for a in session.scalars(select(OutboxAction)) if a.kind == "note"
        }
        assert bodies == {"(erased)"}
    detail = api.get(f"/customers/{anna}").get_json()
    assert detail["email"] == f"erased-{anna}@erased.invalid" and detail["name"] == ""
    assert detail["erased_at"] == NOW.isoformat()
    assert api.get("/customers", query_string={"q": "erased"}).get_json()["total"] == 0
    assert (
        api.get("/customers", query_string={"q": "erased", "include_erased": "true"}).get_json()[
            "total"
        ]
        == 1
    )
    exported = json.dumps(api.get(f"/customers/{anna}/personal-data").get_json())
    assert "credits@shop.example" not in exported and "Anna" not in exported

    assert_error(api.post(f"/customers/{anna}/erasure"), 409)
    assert_error(api.post("/customers/999999/erasure"), 404)
    # The same person writing again is an unknown requester: nothing charged.
    after = make_ticket(st, deliver, "332", "credits@shop.example", requester_id="5005")
    assert api.get(f"/tickets/{after}").get_json()["customer_id"] is None
    with st.database.transaction(read_only=True) as session:
        assert ledger.balance(session, anna) == before


# --------------------------------------------------------------------------------------------
# Tickets


def test_ticket_detail_explains_the_decision(
    api: Api, st: ConnectorState, deliver: Deliver
) -> None:
    ticket = make_ticket(
        st,
        deliver,
        "341",
        "credits@shop.example",
        subject="Upgrade",
        description="Please upgrade our store from 4.3.1 to 4.3.9",
        requester_id="5005",
    )
    detail = api.get(f"/tickets/{ticket}").get_json()
    assert (detail["plan"], detail["category"], detail["credits_estimated"]) == (
        "credits",
        "upgrade",
        50,
    )
    assert detail["approval"]["state"] == "pending" and detail["approval"]["amount"] == 50
    assert detail["customer"]["email"] == "credits@shop.example"
    assert [a["kind"] for a in detail["outbox"]] == ["tags", "note", "reply"]
    assert detail["events"][0]["decision"]["credits"] == 50
    steps = {s["step"]: s for s in detail["explanation"]}
    assert list(steps) == [
        "plan",
        "category",
        "estimate",
        "coverage",
        "approval",
        "charge",
        "first_reply",
    ]
    assert "Credit-based support" in steps["plan"]["detail"]
    assert steps["category"]["outcome"] == "upgrade" and "Detected" in steps["category"]["detail"]
    assert "20 + 5 × (8 − 2) = 50 credits" in steps["estimate"]["detail"]
    assert "4.3.1 → 4.3.9" in steps["estimate"]["detail"]
    assert steps["coverage"]["outcome"] == "paid from credits"
    assert steps["approval"]["outcome"] == "pending"
    assert steps["charge"]["outcome"] == "0 credits"

    question = make_ticket(st, deliver, "342", "credits@shop.example", requester_id="5005")
    charged = api.get(f"/tickets/{question}").get_json()
    assert [e["amount"] for e in charged["ledger"]] == [-5]
    assert {s["step"]: s["outcome"] for s in charged["explanation"]}["charge"] == "5 credits"

    vip = make_ticket(
        st,
        deliver,
        "343",
        "vip@shop.example",
        requester_id="1001",
        tags="care_category_configuration",
    )
    steps = {s["step"]: s for s in api.get(f"/tickets/{vip}").get_json()["explanation"]}
    assert "tag care_category_configuration" in steps["category"]["detail"]
    assert steps["coverage"]["outcome"] == "included in the plan"
    assert "2 business hours" in steps["first_reply"]["detail"]

    listed = api.get(
        "/tickets", query_string={"customer_id": customer_id(st, "credits@shop.example")}
    )
    assert [t["external_id"] for t in listed.get_json()["items"]] == ["342", "341"]
    by_key = api.get("/tickets", query_string={"desk": "zendesk", "external_id": "343"})
    assert [t["id"] for t in by_key.get_json()["items"]] == [vip]
    assert_error(api.get("/tickets/999999"), 404)
    assert_error(api.get("/tickets", query_string={"customer_id": 0}), 422, "query.customer_id")


# --------------------------------------------------------------------------------------------
# Deliveries and replay


def test_deliveries_mask_secrets_and_show_the_verification(
    api: Api, st: ConnectorState, deliver: Deliver
) -> None:
    make_ticket(st, deliver, "351", "credits@shop.example", requester_id="5005")
    refused = deliver(ticket_body("352", "credits@shop.example"), secret="not-the-secret")
    assert refused.status_code == 401
    listed = api.get("/deliveries").get_json()
    assert [(d["status_code"], d["outcome"]) for d in listed["items"]] == [
        (401, "refused"),
        (200, "accepted"),
    ]
    assert api.get("/deliveries", query_string={"outcome": "refused"}).get_json()["total"] == 1
    assert_error(api.get("/deliveries", query_string={"outcome": "lost"}), 422, "query.outcome")

    good_id = listed["items"][1]["id"]
    good = api.get(f"/deliveries/{good_id}").get_json()
    assert good["headers"]["X-Zendesk-Webhook-Signature"] == "********"
    assert good["headers"]["X-Zendesk-Webhook-Signature-Timestamp"] == "********"
    assert good["headers"]["X-Zendesk-Webhook-Invocation-Id"].startswith("inv-")
    assert SECRET not in json.dumps(good)
    assert json.loads(good["body"])["ticket"]["id"] == "351"
    assert good["verification"] == {"checked": True, "valid": True, "message": "signature valid"}
    assert [e["ticket_key"] for e in good["events"]] == ["zendesk:351"]

    bad = api.get(f"/deliveries/{listed['items'][0]['id']}").get_json()
    assert bad["verification"]["valid"] is False and bad["error"]
    assert bad["events"] == []
    assert_error(api.get("/deliveries/999999"), 404)


def test_replay(api: Api, st: ConnectorState, deliver: Deliver) -> None:
    make_ticket(st, deliver, "361", "credits@shop.example", requester_id="5005")
    deliver(ticket_body("362", "credits@shop.example"), secret="not-the-secret")
    good, bad = 1, 2
    again = api.post(f"/deliveries/{good}/replay")
    assert again.status_code == 200
    assert again.get_json() == {
        "delivery_id": good,
        "status_code": 200,
        "result": {"status": "duplicate"},
        "events": [],
    }
    # A failed event is set pending again by the replay.
    with st.database.transaction() as session:
        event = session.scalars(select(Event)).one()
        event.status, event.error = "failed", "boom"
    revived = api.post(f"/deliveries/{good}/replay").get_json()
    assert revived["result"] == {"status": "accepted"}
    with st.database.transaction(read_only=True) as session:
        assert session.scalars(select(Event.status)).one() == "pending"

    refused = api.post(f"/deliveries/{bad}/replay").get_json()
    assert refused["status_code"] == 401 and refused["result"]["code"] == 401
    assert_error(api.post("/deliveries/999999/replay"), 404)
    assert [a[1:] for a in audit_rows(st)] == [
        ("delivery.replay", f"delivery:{good}"),
        ("delivery.replay", f"delivery:{good}"),
        ("delivery.replay", f"delivery:{bad}"),
    ]


# --------------------------------------------------------------------------------------------
# Outbox


def test_dead_letters_are_listed_retried_and_sent(
    api: Api, st: ConnectorState, deliver: Deliver
) -> None:
    assert (
        deliver(ticket_body("371", "credits@shop.example", requester_id="5005")).status_code == 200
    )
    run_pipeline(st, status=422)  # the desk refuses: permanent, dead-lettered at once
    dead = api.get("/outbox", query_string={"state": "dead"}).get_json()
    assert [a["kind"] for a in dead["items"]] == ["note", "tags"]
    assert all(a["last_error"] for a in dead["items"])
    assert api.get("/outbox").get_json()["total"] == 0  # nothing pending

    note = dead["items"][0]
    detail = api.get(f"/outbox/{note['id']}").get_json()
    assert detail["status"] == "dead" and detail["ticket"] is not None
    retried = api.post(f"/outbox/{note['id']}/retry")
    assert retried.status_code == 200
    assert (retried.get_json()["status"], retried.get_json()["attempts"]) == ("pending", 0)
    assert [
        a["id"] for a in api.get("/outbox", query_string={"state": "failed"}).get_json()["items"]
    ] == [note["id"]]
    run_pipeline(st)
    assert api.get(f"/outbox/{note['id']}").get_json()["status"] == "sent"
    assert_error(api.post(f"/outbox/{note['id']}/retry"), 409)
    assert_error(api.post(f"/outbox/{note['id']}/cancel"), 409)

    tags = dead["items"][1]
    cancelled = api.post(f"/outbox/{tags['id']}/cancel")
    assert cancelled.get_json()["status"] == "cancelled"
    assert_error(api.post(f"/outbox/{tags['id']}/cancel"), 409)
    assert api.get("/outbox", query_string={"state": "cancelled"}).get_json()["total"] == 1
    assert api.post(f"/outbox/{tags['id']}/retry").get_json()["status"] == "pending"
    assert [a[1] for a in audit_rows(st)] == ["outbox.retry", "outbox.cancel", "outbox.retry"]
    assert_error(api.get("/outbox/999999"), 404)
    assert_error(api.post("/outbox/999999/retry"), 404)
    assert_error(api.post("/outbox/999999/cancel"), 404)
    assert_error(api.get("/outbox", query_string={"state": "lost"}), 422, "query.state")


def test_failing_write_backs_are_listed_as_failed_and_can_be_cancelled(
    api: Api, st: ConnectorState, deliver: Deliver
) -> None:
    assert (
        deliver(ticket_body("381", "credits@shop.example", requester_id="5005")).status_code == 200
    )
    run_pipeline(st, status=503)  # retried later with backoff
    failed = api.get("/outbox", query_string={"state": "failed"}).get_json()["items"]
    assert [a["kind"] for a in failed] == ["tags"]  # the note waits behind it
    assert api.get("/outbox").get_json()["items"][0]["kind"] == "note"
    assert api.post(f"/outbox/{failed[0]['id']}/cancel").get_json()["status"] == "cancelled"
    all_rows = api.get("/outbox", query_string={"state": "all", "desk": "zendesk"}).get_json()
    assert all_rows["total"] == 2


# --------------------------------------------------------------------------------------------
# Charts and audit


def test_charts(api: Api, st: ConnectorState, deliver: Deliver) -> None:
    make_ticket(st, deliver, "391", "credits@shop.example", requester_id="5005")
    make_ticket(st, deliver, "392", "vip@shop.example", requester_id="1001")
    days = api.get("/charts/credits", query_string={"days": 3}).get_json()
    assert days == [
        {"day": "2026-03-08", "charged": 0, "refunded": 0},
        {"day": "2026-03-09", "charged": 0, "refunded": 0},
        {"day": "2026-03-10", "charged": 5, "refunded": 0},
    ]
    plans = api.get("/charts/first-reply").get_json()
    assert [p["plan"] for p in plans] == ["vip", "standard", "free_period", "credits"]
    assert plans[0] == {"plan": "vip", "met": 0, "missed": 0, "open": 1, "total": 1}
    assert_error(api.get("/charts/credits", query_string={"days": 0}), 422, "query.days")
    assert_error(api.get("/charts/first-reply", query_string={"days": 367}), 422, "query.days")


def test_audit_log(api: Api, st: ConnectorState) -> None:
    anna = customer_id(st, "credits@shop.example")
    api.post(f"/customers/{anna}/grants", {"credits": 1, "reason": "a"})
    api.post(f"/customers/{anna}/grants", {"credits": 2, "reason": "b"}, token=BOB)
    log = api.get("/audit", query_string={"target": f"customer:{anna}"}).get_json()
    assert [(a["actor"], a["details"]["amount"]) for a in log["items"]] == [
        ("bob", 2),
        ("alice", 1),
    ]
    assert api.get("/audit", query_string={"target": "customer:0"}).get_json()["total"] == 0


def test_a_license_ended_early_opens_no_monthly_quota(api: Api, st: ConnectorState) -> None:
    entry = {
        "email": "mvu@shop.example",
        "licenses": [
            {
                "ref": "MVU-1",
                "product": "multi-vendor-ultimate",
                "kind": "first",
                "purchased_on": "2026-01-05",
            }
        ],
    }
    assert api.post("/customers/import", {"customers": [entry]}).status_code == 200
    mvu = customer_id(st, "mvu@shop.example")
    lic = api.get(f"/customers/{mvu}").get_json()["licenses"][0]
    policy = st.settings.policy

    def reset(period: str) -> int | None:
        with st.database.transaction() as session:
            day = date.fromisoformat(f"{period}-01")
            dialect = session.get_bind().dialect.name
            session.execute(quota_reset_statement(policy, period, day, NOW, dialect))
            return session.scalar(
                select(QuotaAllowance.allowance).where(
                    QuotaAllowance.customer_id == mvu, QuotaAllowance.period == period
                )
            )

    assert reset("2026-03") == 7  # first-year VIP
    api.post(f"/licenses/{lic['id']}/end", {"last_day": "2026-03-31"})
    assert reset("2026-04") is None
