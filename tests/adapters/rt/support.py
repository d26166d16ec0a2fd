"""How the tests, and the shared adapter contract, drive the Request Tracker adapter.

Signatures are computed here with :mod:`hmac` (``sha256=<hex HMAC-SHA256(secret, body)>``, as
the scrip's ``Digest::SHA::hmac_sha256_hex``), independently of the adapter, never pasted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

import responses

from connector.config import DeskSettings
from rules.priorities import PriorityMap
from tests.adapters.support import (
    AdapterSupport,
    Delivery,
    desk_fixture,
    desk_fixture_headers,
    desk_fixture_json,
)

BASE = "https://rt.example.com"
API = f"{BASE}/REST/2.0"
#: The connector's own RT user in the test desk.
API_USER = "33"
SECRET = "rt-signing-current"
#: Logical field name -> RT custom field name.
FIELDS = {"care_category": "Care category", "care_price": "Care price"}


def rt_desk(**overrides: Any) -> DeskSettings:
    """An RT desk as the config builds it; keyword arguments override fields."""
    values: dict[str, Any] = {
        "key": "rt",
        "adapter": "rt",
        "base_url": BASE,
        "priority": PriorityMap(kind="field", highest="90", high="70", regular="50"),
        "secret_env": ("CARE_RT_SECRET",),
        "secrets": (SECRET,),
        "username": "care-connector",
        "password_env": "CARE_RT_PASSWORD",
        "password": "rt-password",
        "api_user_id": API_USER,
        "fields": dict(FIELDS),
        "timeout": 10.0,
    }
    values.update(overrides)
    return DeskSettings(**values)


#: The fixtures under ``tests/fixtures/rt/``: raw bytes, parsed JSON, and the headers sent
#: with each (its ``.headers.json``).
fixture = partial(desk_fixture, "rt")
fixture_json = partial(desk_fixture_json, "rt")
fixture_headers = partial(desk_fixture_headers, "rt")


def signature(secret: str, body: bytes) -> str:
    """``X-Care-Signature`` as the scrip computes it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(body: bytes, headers: Mapping[str, str], secret: str, now: datetime) -> dict[str, str]:
    """The contract's signer: the scrip signs the body only (no timestamp)."""
    return {
        **headers,
        "Content-Type": "application/json",
        "X-Care-Signature": signature(secret, body),
    }


def dumps(data: Any) -> bytes:
    """JSON as the scrip writes it (UTF-8, keys sorted, no spaces)."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def unknown_event() -> Delivery:
    return fixture("unknown_transaction.json"), fixture_headers("unknown_transaction.json")


def ticket_created(
    ticket_id: str, requester_id: str, email: str, subject: str, description: str
) -> Delivery:
    body = fixture_json("create.json")
    requestor = {"id": requester_id, "name": email, "email": email, "real_name": "", "lang": ""}
    body["ticket"].update(
        id=int(ticket_id),
        subject=subject,
        priority=0,
        status="new",
        created="2026-03-10T09:58:00Z",
        requestors=[requestor],
        custom_fields={"Care": []},
    )
    body["transaction"].update(
        id=int(ticket_id) * 10 + 1,
        content=description,
        created="2026-03-10T09:58:00Z",
        creator=requestor,
    )
    headers = fixture_headers("create.json")
    headers["X-Care-Delivery"] = str(body["transaction"]["id"])
    return dumps(body), headers


def ticket_answer(ticket_id: str, *, tags: list[str] | None = None, priority: int = 0) -> Any:
    """``GET /ticket/{id}`` as RT answers it (the parts the client reads)."""
    return {
        "id": int(ticket_id),
        "Subject": "How to set up shipping methods?",
        "Priority": str(priority),
        "Status": "new",
        "CustomFields": [
            {"id": "2", "type": "customfield", "name": "Care", "values": list(tags or [])},
            {"id": "3", "type": "customfield", "name": "Care category", "values": []},
        ],
    }


def stub_writes(mock: responses.RequestsMock, ticket_id: str) -> None:
    """200 answers for every call the client makes on ``ticket_id``: the ticket it reads
    before changing its tags, the update, comments and correspondence, and the attachments
    it reads back."""
    mock.get(f"{API}/ticket/{ticket_id}", json=ticket_answer(ticket_id))
    mock.put(f"{API}/ticket/{ticket_id}", json=["Priority changed from '0' to '90'"])
    mock.post(f"{API}/ticket/{ticket_id}/comment", status=201, json=["Comments added"])
    mock.post(f"{API}/ticket/{ticket_id}/correspond", status=201, json=["Correspondence added"])
    mock.get(
        f"{API}/ticket/{ticket_id}/attachments",
        json={"items": [], "page": 1, "pages": 0, "per_page": 100, "total": 0, "count": 0},
    )


SUPPORT = AdapterSupport(
    key="rt",
    desk={
        "adapter": "rt",
        "base_url": BASE,
        "username": "care-connector",
        "password_env": "CARE_CONTRACT_RT_PASSWORD",
        "api_user_id": API_USER,
    },
    env={"CARE_CONTRACT_RT_PASSWORD": "rt-password"},
    sign=sign,
    event_fixtures={
        "Create": "create.json",
        "Correspond": "correspond_requestor.json",
        "Comment": "comment_agent_html.json",
        "CustomField": "customfield_added.json",
        "Status": "status_resolved.json",
        "Delete": "status_deleted.json",
    },
    unknown_event=unknown_event,
    ticket_created=ticket_created,
    stub_writes=stub_writes,
)
