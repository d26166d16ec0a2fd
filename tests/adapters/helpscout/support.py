"""How the shared adapter contract drives the Help Scout adapter, and the helpers of the Help
Scout tests (the desk, fixtures, signatures computed here, the API's answers)."""

from __future__ import annotations

import base64
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
    FIXTURES,
    AdapterSupport,
    Delivery,
    desk_fixture,
    desk_fixture_headers,
    desk_fixture_json,
)

BASE = "https://api.helpscout.net"
API = f"{BASE}/v2"
TOKEN_URL = f"{API}/oauth2/token"
FOLDER = FIXTURES / "helpscout"
#: The connector's own Help Scout user (the OAuth app's user) in the fixtures.
BOT_USER = "410022"
#: The desk's custom fields: by id, and one by its name.
DESK_FIELDS = {
    "care_category": "12101",
    "care_price": "12102",
    "care_preapproval": "Care pre-approval",
}


def make_desk(**overrides: Any) -> DeskSettings:
    """A Help Scout desk as the config builds it; keyword arguments override fields."""
    values: dict[str, Any] = {
        "key": "helpscout",
        "adapter": "helpscout",
        "base_url": BASE,
        "priority": PriorityMap(
            kind="tag", highest="care_priority_highest", high="care_priority_high", regular=""
        ),
        "secret_env": ("CARE_HELPSCOUT_SECRET",),
        "secrets": ("s3cret-current",),
        "client_id_env": "CARE_HELPSCOUT_CLIENT_ID",
        "client_secret_env": "CARE_HELPSCOUT_CLIENT_SECRET",
        "client_id": "app-id-1",
        "client_secret": "app-secret-1",
        "api_user_id": BOT_USER,
        "fields": dict(DESK_FIELDS),
        "timeout": 10.0,
    }
    values.update(overrides)
    return DeskSettings(**values)


#: The fixtures under ``tests/fixtures/helpscout/``: raw bytes, parsed JSON, and the headers sent
#: with each (its ``.headers.json``).
fixture = partial(desk_fixture, "helpscout")
fixture_json = partial(desk_fixture_json, "helpscout")
fixture_headers = partial(desk_fixture_headers, "helpscout")


def signature(secret: str, body: bytes) -> str:
    """Help Scout's signature, computed here independently of the adapter:
    ``base64(HMAC-SHA1(secret, body))``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def sign(body: bytes, headers: Mapping[str, str], secret: str, now: datetime) -> dict[str, str]:
    """The headers of a signed delivery (Help Scout signs no timestamp: ``now`` is unused)."""
    return {
        **headers,
        "Content-Type": "application/json",
        "X-HelpScout-Signature": signature(secret, body),
    }


def token_answer(token: str = "tok-1", expires_in: int = 172800) -> dict[str, Any]:
    """The token endpoint's answer, as in Help Scout's authentication page."""
    return {"token_type": "bearer", "access_token": token, "expires_in": expires_in}


def conversation_answer(
    ticket_id: str, tags: list[str], customer_id: int = 238604
) -> dict[str, Any]:
    """A ``GET /v2/conversations/{id}`` answer: the real example with this id, tags and
    primary customer."""
    data = fixture_json("conversation_v2_object.json")
    data["id"] = int(ticket_id)
    data["tags"] = [{"id": 9000 + i, "color": "#929499", "tag": tag} for i, tag in enumerate(tags)]
    data["primaryCustomer"]["id"] = customer_id
    return data


def unknown_event() -> Delivery:
    return fixture("convo_assigned.json"), fixture_headers("convo_assigned.json")


def ticket_created(
    ticket_id: str, requester_id: str, email: str, subject: str, description: str
) -> Delivery:
    body = fixture_json("convo_created.json")
    body.update(id=int(ticket_id), subject=subject, preview=description[:100], tags=[])
    body["customFields"] = []
    body["createdAt"] = "2026-03-10T09:58:00Z"
    customer = {"id": requester_id, "type": "customer", "first": "", "last": "", "email": email}
    body["primaryCustomer"] = customer
    body["createdBy"] = dict(customer)
    (thread,) = body["_embedded"]["threads"]
    thread.update(body=description, createdAt="2026-03-10T09:58:00Z", createdBy=dict(customer))
    thread["customer"] = dict(customer)
    return json.dumps(body).encode(), {"X-HelpScout-Event": "convo.created"}


def stub_writes(mock: responses.RequestsMock, ticket_id: str) -> None:
    mock.post(TOKEN_URL, json=token_answer())
    mock.get(f"{API}/conversations/{ticket_id}", json=conversation_answer(ticket_id, ["vip"]))
    mock.put(f"{API}/conversations/{ticket_id}/tags", status=204)
    mock.post(f"{API}/conversations/{ticket_id}/notes", status=201)
    mock.post(f"{API}/conversations/{ticket_id}/reply", status=201)
    mock.get(f"{API}/conversations/{ticket_id}/threads", json={"_embedded": {"threads": []}})


SUPPORT = AdapterSupport(
    key="helpscout",
    desk={
        "adapter": "helpscout",
        "base_url": BASE,
        "client_id_env": "CARE_CONTRACT_HELPSCOUT_CLIENT_ID",
        "client_secret_env": "CARE_CONTRACT_HELPSCOUT_CLIENT_SECRET",
        "api_user_id": BOT_USER,
    },
    env={
        "CARE_CONTRACT_HELPSCOUT_CLIENT_ID": "app-id-1",
        "CARE_CONTRACT_HELPSCOUT_CLIENT_SECRET": "app-secret-1",
    },
    sign=sign,
    event_fixtures={
        "convo.created": "convo_created.json",
        "convo.customer.reply.created": "convo_customer_reply_created.json",
        "convo.agent.reply.created": "convo_agent_reply_created.json",
        "convo.note.created": "convo_note_created__agent.json",
        "convo.tags": "convo_tags.json",
        "convo.status": "conversation_v2_object.json",
        "convo.custom-fields": "convo_custom_fields.json",
        "convo.deleted": "convo_deleted.json",
    },
    unknown_event=unknown_event,
    ticket_created=ticket_created,
    stub_writes=stub_writes,
)
