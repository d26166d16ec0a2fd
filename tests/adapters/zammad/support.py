"""How the tests, and the shared adapter contract, drive the Zammad adapter.

Signatures are computed here with :mod:`hmac` (``sha1=<hex HMAC-SHA1(secret, body)>``),
independently of the adapter, never pasted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
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

BASE = "https://support.example.com"
API = f"{BASE}/api/v1"
#: The connector's own Zammad user in the test desk.
API_USER = "12"
SECRET = "zammad-signing-current"
#: Logical field name -> Zammad custom ticket attribute.
FIELDS = {
    "care_category": "care_category",
    "care_price": "care_price",
    "care_preapproval": "care_preapproval",
}
#: Zammad's default priorities, as ``GET /api/v1/ticket_priorities`` lists them.
PRIORITIES = [
    {"id": 1, "name": "1 low", "default_create": False, "active": True},
    {"id": 2, "name": "2 normal", "default_create": True, "active": True},
    {"id": 3, "name": "3 high", "default_create": False, "active": True},
]


def zammad_desk(**overrides: Any) -> DeskSettings:
    """A Zammad desk as the config builds it; keyword arguments override fields."""
    values: dict[str, Any] = {
        "key": "zammad",
        "adapter": "zammad",
        "base_url": BASE,
        "priority": PriorityMap(kind="field", highest="3 high", high="3 high", regular="2 normal"),
        "secret_env": ("CARE_ZAMMAD_SECRET",),
        "secrets": (SECRET,),
        "token_env": "CARE_ZAMMAD_TOKEN",
        "token": "zammad-token",
        "api_user_id": API_USER,
        "fields": dict(FIELDS),
        "timeout": 10.0,
    }
    values.update(overrides)
    return DeskSettings(**values)


#: The fixtures under ``tests/fixtures/zammad/``: raw bytes, parsed JSON, and the headers sent
#: with each (its ``.headers.json``).
fixture = partial(desk_fixture, "zammad")
fixture_json = partial(desk_fixture_json, "zammad")
fixture_headers = partial(desk_fixture_headers, "zammad")


def signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature`` as Zammad computes it (``lib/user_agent.rb``)."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def sign(body: bytes, headers: Mapping[str, str], secret: str, now: datetime) -> dict[str, str]:
    """The contract's signer: Zammad signs the body only (no timestamp)."""
    return {
        **headers,
        "Content-Type": "application/json; charset=utf-8",
        "X-Hub-Signature": signature(secret, body),
    }


def unknown_event() -> Delivery:
    return fixture("custom_unknown_event.json"), fixture_headers("custom_unknown_event.json")


def ticket_created(
    ticket_id: str, requester_id: str, email: str, subject: str, description: str
) -> Delivery:
    body = fixture_json("custom_created.json")
    body["ticket"].update(
        id=ticket_id,
        title=subject,
        customer_id=requester_id,
        created_by_id=requester_id,
        updated_by_id=requester_id,
        priority="2 normal",
        state="new",
        created_at="2026-03-10 09:58:00 UTC",
        updated_at="2026-03-10 09:58:00 UTC",
        fields={attribute: "" for attribute in FIELDS.values()},
    )
    body["customer"].update(id=requester_id, email=email, firstname="", lastname="")
    body["article"].update(
        body=description,
        content_type="text/plain",
        created_by_id=requester_id,
        created_at="2026-03-10 09:58:00 UTC",
    )
    headers = fixture_headers("custom_created.json")
    headers["X-Zammad-Delivery"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"zammad/{ticket_id}"))
    return json.dumps(body).encode(), headers


def stub_writes(mock: responses.RequestsMock, ticket_id: str) -> None:
    """200 answers for every call the client makes on ``ticket_id``: the priority list it
    reads before writing a priority, the ticket and customer it reads before a reply."""
    mock.get(f"{API}/ticket_priorities", json=PRIORITIES)
    mock.put(f"{API}/tickets/{ticket_id}", json={"id": int(ticket_id), "priority_id": 3})
    mock.get(f"{API}/tickets/{ticket_id}", json={"id": int(ticket_id), "customer_id": 77})
    mock.get(f"{API}/users/77", json={"id": 77, "email": "customer@shop.example"})
    mock.post(f"{API}/tags/add", status=201, json=True)
    mock.delete(f"{API}/tags/remove", json=True)
    mock.post(f"{API}/ticket_articles", status=201, json={"id": 9001})
    mock.get(f"{API}/ticket_articles/by_ticket/{ticket_id}", json=[])


SUPPORT = AdapterSupport(
    key="zammad",
    desk={
        "adapter": "zammad",
        "base_url": BASE,
        "token_env": "CARE_CONTRACT_ZAMMAD_TOKEN",
        "api_user_id": API_USER,
    },
    env={"CARE_CONTRACT_ZAMMAD_TOKEN": "zammad-token"},
    sign=sign,
    event_fixtures={
        "created": "custom_created.json",
        "updated": "custom_updated.json",
        "article": "custom_article_reply.json",
        "default:created": "ticket_trigger_default.json",
        "default:updated": "default_update_no_article.json",
        "default:article": "default_article_customer_reply.json",
    },
    unknown_event=unknown_event,
    ticket_created=ticket_created,
    stub_writes=stub_writes,
)
