"""Desks whose webhook bodies carry no tags (Zammad): the worker reads them back, so an
engineer's tag (here ``care_approved``) still answers a pending estimate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses
from sqlalchemy import select

from connector import create_app
from connector.customers import find_customer, import_customers, validate_entries
from connector.ledger import balance
from connector.models import Ticket
from connector.runner import drain
from tests.adapters.zammad.support import API, SUPPORT

NOW = datetime(2026, 3, 10, 10, 25, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zammad"


def test_an_engineers_tag_read_back_from_zammad_approves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**SUPPORT.env, "CARE_TAGS_SECRET": "tags-secret"}.items():
        monkeypatch.setenv(name, value)
    app = create_app(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'tags.sqlite3'}"},
            "desks": {"zammad": {**SUPPORT.desk, "secret_env": ["CARE_TAGS_SECRET"]}},
        }
    )
    st = app.extensions["care_connector"]
    st.clock = lambda: NOW
    customer = {
        "email": "owner@shop.example",
        "licenses": [
            {"ref": "CS-9", "product": "cs-cart", "kind": "first", "purchased_on": "2025-01-10"}
        ],
        "upgrades_until": "2027-01-10",
        "credit_purchases": [{"ref": "o-9", "credits": 70, "purchased_on": "2026-02-01"}],
    }
    records = validate_entries([customer], policy=st.settings.policy, desks=["zammad"])
    with st.database.transaction() as session:
        import_customers(session, records, policy=st.settings.policy, at=NOW)

    def deliver(body: bytes, headers: dict[str, str]) -> int:
        signed = SUPPORT.sign(body, headers, "tags-secret", NOW)
        return app.test_client().post("/hooks/zammad", data=body, headers=signed).status_code

    created, headers = SUPPORT.ticket_created(
        "1042", "27", "owner@shop.example", "Upgrade", "Please upgrade from 4.3.1 to 4.3.9"
    )
    update = json.loads((FIXTURES / "custom_updated.json").read_text())
    update["ticket"]["fields"] = {"care_category": "", "care_price": "", "care_preapproval": ""}
    update_headers = json.loads((FIXTURES / "custom_updated.headers.json").read_text())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        SUPPORT.stub_writes(mock, "1042")
        mock.get(f"{API}/tags", json={"tags": ["care_awaiting_approval", "care_approved"]})
        assert deliver(created, headers) == 200
        drain(st)
        assert deliver(json.dumps(update).encode(), update_headers) == 200
        drain(st)
        reads = [c.request.url for c in mock.calls if "/api/v1/tags?" in c.request.url]
    assert reads, "the worker did not read the ticket's tags"
    with st.database.transaction(read_only=True) as session:
        ticket = session.execute(select(Ticket)).scalar_one()
        assert (ticket.approval_state, ticket.credits_charged) == ("approved", 50)
        customer_id = find_customer(session, email="owner@shop.example")
        assert customer_id is not None and balance(session, customer_id) == 70
    st.database.dispose()
