"""How the shared adapter contract drives the Zendesk adapter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import responses

from tests.adapters.support import FIXTURES, AdapterSupport, Delivery

BASE = "https://acme.zendesk.com"


def sign(body: bytes, headers: Mapping[str, str], secret: str, now: datetime) -> dict[str, str]:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        **headers,
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
    }


def unknown_event() -> Delivery:
    return (FIXTURES / "zendesk" / "event_user_created.json").read_bytes(), {}


def ticket_created(
    ticket_id: str, requester_id: str, email: str, subject: str, description: str
) -> Delivery:
    body: dict[str, Any] = json.loads((FIXTURES / "zendesk" / "trigger_created.json").read_text())
    body["ticket"].update(
        id=ticket_id,
        subject=subject,
        description=description,
        tags="",
        fields={},
        priority="Normal",
        created_at="2026-03-10T09:58:00Z",
        updated_at="2026-03-10T09:58:00Z",
    )
    body["requester"].update(id=requester_id, email=email, locale="en-US")
    body["current_user"] = {"id": requester_id}
    return json.dumps(body).encode(), {}


def stub_writes(mock: responses.RequestsMock, ticket_id: str) -> None:
    mock.put(f"{BASE}/api/v2/tickets/{ticket_id}", json={"ticket": {"id": int(ticket_id)}})
    mock.put(f"{BASE}/api/v2/tickets/{ticket_id}/tags", json={"tags": []})
    mock.delete(f"{BASE}/api/v2/tickets/{ticket_id}/tags", json={"tags": []})


SUPPORT = AdapterSupport(
    key="zendesk",
    desk={
        "adapter": "zendesk",
        "base_url": BASE,
        "email": "care-bot@acme.example",
        "token_env": "CARE_CONTRACT_ZENDESK_TOKEN",
        "api_user_id": "8447388090999",
    },
    env={"CARE_CONTRACT_ZENDESK_TOKEN": "tok-123"},
    sign=sign,
    event_fixtures={
        "zen:event-type:ticket.created": "event_ticket_created.json",
        "zen:event-type:ticket.comment_added": "event_ticket_comment_added.json",
        "zen:event-type:ticket.tags_changed": "event_ticket_tags_changed.json",
        "zen:event-type:ticket.status_changed": "event_ticket_status_changed.json",
        "zen:event-type:ticket.priority_changed": "event_ticket_priority_changed.dust.json",
        "zen:event-type:ticket.custom_field_changed": "event_ticket_custom_field_changed.json",
        "zen:event-type:ticket.soft_deleted": "event_ticket_soft_deleted.json",
        "zen:event-type:ticket.marked_as_spam": "event_ticket_marked_as_spam.json",
        "trigger:created": "trigger_created.json",
        "trigger:updated": "trigger_updated.json",
        "trigger:comment": "trigger_comment.json",
    },
    unknown_event=unknown_event,
    ticket_created=ticket_created,
    stub_writes=stub_writes,
)
