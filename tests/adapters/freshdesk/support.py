"""How the tests drive the Freshdesk adapter: the test desk, fixtures, the shared-secret
header, and the contract suite's ``SUPPORT``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

import responses
from requests import PreparedRequest

from connector.config import DeskSettings
from rules.priorities import PriorityMap
from tests.adapters.support import (
    AdapterSupport,
    Delivery,
    desk_fixture,
    desk_fixture_json,
)

BASE = "https://acme.freshdesk.com"
API = f"{BASE}/api/v2"
SECRET = "s3cret-current"
API_KEY = "fd-key-123"
API_USER = "43000000001"

#: The custom fields of the test desk (logical name -> Freshdesk field API name).
FIELDS = {
    "care_category": "cf_care_category",
    "care_price": "cf_care_price",
    "care_preapproval": "cf_care_preapproval",
}

#: Every vendor event code -> its fixture.
EVENT_FIXTURES = {
    "created": "rule_created.json",
    "reply": "rule_reply.json",
    "updated": "rule_updated.json",
    "updated:reply_sent": "rule_updated_reply_sent.json",
    "updated:status": "rule_updated_status.json",
    "updated:priority": "rule_updated_priority.json",
    "updated:custom_field": "rule_updated_custom_field.json",
    "updated:deleted": "rule_updated_deleted.json",
    "updated:spam": "rule_updated_spam.json",
}


def freshdesk_desk(**overrides: Any) -> DeskSettings:
    """A Freshdesk desk as the config builds it; keyword arguments override fields."""
    values: dict[str, Any] = {
        "key": "freshdesk",
        "adapter": "freshdesk",
        "base_url": BASE,
        "priority": PriorityMap(kind="field", highest="4", high="3", regular="2"),
        "secret_env": ("CARE_FRESHDESK_SECRET",),
        "secrets": (SECRET,),
        "api_key_env": "CARE_FRESHDESK_API_KEY",
        "api_key": API_KEY,
        "api_user_id": API_USER,
        "fields": dict(FIELDS),
        "timeout": 10.0,
    }
    values.update(overrides)
    return DeskSettings(**values)


#: The fixtures under ``tests/fixtures/freshdesk/``: raw bytes, parsed JSON.
fixture = partial(desk_fixture, "freshdesk")
fixture_json = partial(desk_fixture_json, "freshdesk")


def sign(body: bytes, headers: Mapping[str, str], secret: str, now: datetime) -> dict[str, str]:
    """What the connector's rule sends: the shared secret in ``X-Care-Secret``."""
    return {**headers, "Content-Type": "application/json", "X-Care-Secret": secret}


def unknown_event() -> Delivery:
    return fixture("rule_hourly.json"), {}


def ticket_created(
    ticket_id: str, requester_id: str, email: str, subject: str, description: str
) -> Delivery:
    body = fixture_json("rule_created.json")
    body["ticket"].update(
        id=ticket_id,
        subject=subject,
        description=description,
        tags="",
        fields={},
        priority="Medium",
        priority_id="2",
        created_at="2026-03-10 09:58:00 UTC",
        updated_at="2026-03-10 09:58:00 UTC",
    )
    body["requester"].update(id=requester_id, email=email, name="", language="en")
    return json.dumps(body).encode(), {}


def stub_writes(mock: responses.RequestsMock, ticket_id: str) -> None:
    """A small stateful Freshdesk ticket: reads see the writes (tags are read back)."""
    state: dict[str, Any] = {"id": int(ticket_id), "priority": 2, "tags": []}
    url = f"{API}/tickets/{ticket_id}"

    def answer(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        if request.method == "PUT" and request.body:
            state.update(json.loads(request.body))
        return 200, {"Content-Type": "application/json"}, json.dumps(state)

    mock.add_callback("GET", url, callback=answer)
    mock.add_callback("PUT", url, callback=answer)
    mock.post(f"{url}/notes", status=201, json={"id": 1, "private": True})
    mock.post(f"{url}/reply", status=201, json={"id": 2, "private": False})
    mock.get(f"{url}/conversations", json=[])


SUPPORT = AdapterSupport(
    key="freshdesk",
    desk={
        "adapter": "freshdesk",
        "base_url": BASE,
        "api_key_env": "CARE_CONTRACT_FRESHDESK_API_KEY",
        "api_user_id": API_USER,
    },
    env={"CARE_CONTRACT_FRESHDESK_API_KEY": API_KEY},
    sign=sign,
    event_fixtures=EVENT_FIXTURES,
    unknown_event=unknown_event,
    ticket_created=ticket_created,
    stub_writes=stub_writes,
)
