"""Signed deliveries of the four help desks for the scale-out run and the reliability tests.

Each desk's bodies are made from its real-shaped fixtures under ``tests/fixtures/<desk>/``
(the ones the adapter tests use), with the ticket, requester and text of the delivery put in:
a ticket creation and a customer's comment on it. Signatures are computed here with
:mod:`hmac`, as each desk computes them (never by the adapters under test):

* Zendesk: ``X-Zendesk-Webhook-Signature = base64(HMAC-SHA256(secret, timestamp + body))``
  with the timestamp header; signed when sent, so it is inside the ±5 minute window;
* Freshdesk: the shared secret in ``X-Care-Secret`` (Freshdesk signs nothing);
* Zammad: ``X-Hub-Signature = sha1=<hex HMAC-SHA1(secret, body)>``;
* Help Scout: ``X-HelpScout-Signature = base64(HMAC-SHA1(secret, body))``.

A delivery's identity (what the connector deduplicates on) stays the same when it is sent
again: the Zendesk invocation id and the Zammad delivery id are headers fixed when the
delivery is built, and Freshdesk's and Help Scout's keys are the body's hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

#: The desks of the run, in the order deliveries go round them.
DESKS = ("zendesk", "freshdesk", "zammad", "helpscout")

#: The connector's own user in each fake desk (its events would be ignored).
API_USERS = {"zendesk": "900", "freshdesk": "43000000001", "zammad": "12", "helpscout": "410022"}

#: Custom fields of each desk (logical name -> the desk's field id or name).
FIELDS = {
    "zendesk": {
        "care_category": "360001234567",
        "care_price": "360001234568",
        "care_preapproval": "360001234569",
    },
    "freshdesk": {
        "care_category": "cf_care_category",
        "care_price": "cf_care_price",
        "care_preapproval": "cf_care_preapproval",
    },
    "zammad": {
        "care_category": "care_category",
        "care_price": "care_price",
        "care_preapproval": "care_preapproval",
    },
    "helpscout": {
        "care_category": "12101",
        "care_price": "12102",
        "care_preapproval": "Care pre-approval",
    },
}


def secret_env(desk: str) -> str:
    """The environment variable holding ``desk``'s webhook secret in the run."""
    return f"BENCH_SCALEOUT_{desk.upper()}_SECRET"


def credential_env(desk: str) -> str:
    """The environment variable holding ``desk``'s API credential (token, key, client id)."""
    return f"BENCH_SCALEOUT_{desk.upper()}_CREDENTIAL"


def desk_sections(desk_url: str, *, timeout: float, max_attempts: int) -> dict[str, Any]:
    """The ``[desks.*]`` tables of the run's configuration: the four desks on the fake desk
    server at ``desk_url``, each under its own path (``http://127.0.0.1:PORT/zammad``)."""
    # What differs between the desks: how each one signs in.
    logins: dict[str, dict[str, str]] = {
        "zendesk": {"email": "bot@bench.example", "token_env": credential_env("zendesk")},
        "freshdesk": {"api_key_env": credential_env("freshdesk")},
        "zammad": {"token_env": credential_env("zammad")},
        "helpscout": {
            "client_id_env": credential_env("helpscout"),
            "client_secret_env": credential_env("helpscout") + "_SECRET",
        },
    }
    return {
        desk: {
            "adapter": desk,
            "base_url": f"{desk_url}/{desk}",
            "secret_env": [secret_env(desk)],
            **login,
            "api_user_id": API_USERS[desk],
            "fields": dict(FIELDS[desk]),
            "timeout": timeout,
            "max_attempts": max_attempts,
        }
        for desk, login in logins.items()
    }


def environment(secrets: dict[str, str]) -> dict[str, str]:
    """The variables :func:`desk_sections` names: the webhook secrets given, fixed API
    credentials (the fake desk checks none)."""
    env = {secret_env(desk): secrets[desk] for desk in DESKS}
    for desk in DESKS:
        env[credential_env(desk)] = f"{desk}-credential"
    env[credential_env("helpscout") + "_SECRET"] = "helpscout-client-secret"
    return env


# --------------------------------------------------------------------------------------------
# Deliveries


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: where it goes, its body, and the headers that do not depend on
    when it is sent. :func:`signed_headers` adds the authentication."""

    desk: str
    ticket: str
    kind: str  # created | comment
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/hooks/{self.desk}"


@cache
def _fixture(desk: str, name: str) -> str:
    return (FIXTURES / desk / name).read_text(encoding="utf-8")


def _load(desk: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_fixture(desk, name))
    return data


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def zendesk_stamp(when: datetime) -> str:
    """``2026-03-10T10:00:00Z``: Zendesk's signature timestamp and ISO times."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_text(when: datetime) -> str:
    """``2026-03-10 10:00:00 UTC``: how Freshdesk and Zammad placeholders render times."""
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def created(
    desk: str,
    ticket: str,
    *,
    requester: str,
    email: str,
    subject: str,
    text: str,
    at: datetime,
) -> Delivery:
    """A ticket-created delivery of ``desk`` for ``ticket`` by ``requester``/``email``."""
    if desk == "zendesk":
        body = _load("zendesk", "trigger_created.json")
        body["event"] = "created"
        body["ticket"].update(
            id=ticket,
            subject=subject,
            description=text,
            tags="",
            priority="Normal",
            status="New",
            created_at=zendesk_stamp(at),
            updated_at=zendesk_stamp(at),
            fields=dict.fromkeys(FIELDS["zendesk"].values(), ""),
        )
        body["requester"].update(id=requester, email=email, name="", locale="en-US")
        body["current_user"] = {"id": requester}
        return Delivery(desk, ticket, "created", _dump(body), _zendesk_id(ticket, "created"))
    if desk == "freshdesk":
        body = _load("freshdesk", "rule_created.json")
        body["ticket"].update(
            id=ticket,
            subject=subject,
            description=text,
            tags="",
            priority="Medium",
            priority_id="2",
            created_at=_utc_text(at),
            updated_at=_utc_text(at),
            fields=dict.fromkeys(FIELDS["freshdesk"].values(), ""),
        )
        body["requester"].update(id=requester, email=email, name="", language="en")
        return Delivery(desk, ticket, "created", _dump(body), {})
    if desk == "zammad":
        body = _load("zammad", "custom_created.json")
        body["ticket"].update(
            id=ticket,
            title=subject,
            customer_id=requester,
            created_by_id=requester,
            updated_by_id=requester,
            priority="2 normal",
            state="new",
            created_at=_utc_text(at),
            updated_at=_utc_text(at),
            fields=dict.fromkeys(FIELDS["zammad"].values(), ""),
        )
        body["customer"].update(id=requester, email=email, firstname="", lastname="")
        body["article"].update(
            id=int(ticket) * 10,
            body=text,
            content_type="text/plain",
            created_by_id=requester,
            created_at=_utc_text(at),
        )
        return Delivery(desk, ticket, "created", _dump(body), _zammad_id(ticket, "created"))
    if desk == "helpscout":
        body = _load("helpscout", "convo_created.json")
        person = {"id": int(requester), "type": "customer", "first": "", "last": "", "email": email}
        body.update(
            id=int(ticket),
            subject=subject,
            preview=text[:100],
            tags=[],
            customFields=[],
            createdAt=zendesk_stamp(at),
            userUpdatedAt=zendesk_stamp(at),
            primaryCustomer=person,
            createdBy=dict(person),
        )
        (thread,) = body["_embedded"]["threads"]
        thread.update(
            id=int(ticket) * 10, body=text, createdAt=zendesk_stamp(at), createdBy=dict(person)
        )
        thread["customer"] = dict(person)
        headers = {"X-HelpScout-Event": "convo.created"}
        return Delivery(desk, ticket, "created", _dump(body), headers)
    raise ValueError(f"unknown desk {desk!r}")


def comment(
    desk: str,
    ticket: str,
    *,
    requester: str,
    email: str,
    subject: str,
    text: str,
    created_at: datetime,
    at: datetime,
    n: int = 1,
) -> Delivery:
    """The requester's ``n``-th comment ``text`` on ``ticket`` (created at ``created_at``),
    written at ``at``."""
    if desk == "zendesk":
        body = _load("zendesk", "trigger_created.json")
        body["event"] = "comment"
        body["ticket"].update(
            id=ticket,
            subject=subject,
            tags="",
            priority="Normal",
            status="Open",
            created_at=zendesk_stamp(created_at),
            updated_at=zendesk_stamp(at),
            fields=dict.fromkeys(FIELDS["zendesk"].values(), ""),
        )
        body["requester"].update(id=requester, email=email, name="", locale="en-US")
        body["current_user"] = {"id": requester}
        body["comment"] = {"body": text, "public": "true", "author_id": requester}
        return Delivery(desk, ticket, "comment", _dump(body), _zendesk_id(ticket, f"comment{n}"))
    if desk == "freshdesk":
        body = _load("freshdesk", "rule_reply.json")
        body["ticket"].update(
            id=ticket,
            subject=subject,
            tags="",
            priority="Medium",
            priority_id="2",
            created_at=_utc_text(created_at),
            updated_at=_utc_text(at),
            fields=dict.fromkeys(FIELDS["freshdesk"].values(), ""),
        )
        body["requester"].update(id=requester, email=email, name="", language="en")
        body["comment"] = {"body": f"<div>{text}</div><div>#{n}</div>"}
        return Delivery(desk, ticket, "comment", _dump(body), {})
    if desk == "zammad":
        body = _load("zammad", "custom_article_reply.json")
        body["ticket"].update(
            id=ticket,
            title=subject,
            customer_id=requester,
            created_by_id=requester,
            updated_by_id=requester,
            priority="2 normal",
            state="open",
            created_at=_utc_text(created_at),
            updated_at=_utc_text(at),
            fields=dict.fromkeys(FIELDS["zammad"].values(), ""),
        )
        body["customer"].update(id=requester, email=email, firstname="", lastname="")
        body["article"].update(
            id=int(ticket) * 10 + n,
            body=text,
            content_type="text/plain",
            created_by_id=requester,
            created_at=_utc_text(at),
        )
        return Delivery(desk, ticket, "comment", _dump(body), _zammad_id(ticket, f"comment{n}"))
    if desk == "helpscout":
        body = _load("helpscout", "convo_customer_reply_created.json")
        person = {"id": int(requester), "type": "customer", "first": "", "last": "", "email": email}
        body.update(
            id=int(ticket),
            subject=subject,
            preview=text[:100],
            tags=[],
            customFields=[],
            createdAt=zendesk_stamp(created_at),
            userUpdatedAt=zendesk_stamp(at),
            primaryCustomer=person,
            createdBy=dict(person),
        )
        thread = dict(body["_embedded"]["threads"][0])
        thread.update(
            id=int(ticket) * 10 + n,
            body=f"<div>{text}</div>",
            createdAt=zendesk_stamp(at),
            createdBy=dict(person),
            customer=dict(person),
        )
        body["_embedded"]["threads"] = [thread]
        headers = {"X-HelpScout-Event": "convo.customer.reply.created"}
        return Delivery(desk, ticket, "comment", _dump(body), headers)
    raise ValueError(f"unknown desk {desk!r}")


def _zendesk_id(ticket: str, what: str) -> dict[str, str]:
    return {"X-Zendesk-Webhook-Invocation-Id": f"bench-{ticket}-{what}"}


def _zammad_id(ticket: str, what: str) -> dict[str, str]:
    return {"X-Zammad-Delivery": str(uuid.uuid5(uuid.NAMESPACE_URL, f"zammad/{ticket}/{what}"))}


def signed_headers(delivery: Delivery, secret: str, now: datetime) -> dict[str, str]:
    """The headers ``delivery.desk`` sends with ``delivery`` at ``now``, authentication
    included (computed here, as the desk does)."""
    body = delivery.body
    headers = {**delivery.headers, "Content-Type": "application/json"}
    if delivery.desk == "zendesk":
        stamp = zendesk_stamp(now)
        digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
        headers["X-Zendesk-Webhook-Signature"] = base64.b64encode(digest).decode()
        headers["X-Zendesk-Webhook-Signature-Timestamp"] = stamp
    elif delivery.desk == "freshdesk":
        headers["X-Care-Secret"] = secret
    elif delivery.desk == "zammad":
        headers["X-Hub-Signature"] = "sha1=" + hmac.new(secret.encode(), body, "sha1").hexdigest()
    elif delivery.desk == "helpscout":
        digest = hmac.new(secret.encode(), body, hashlib.sha1).digest()
        headers["X-HelpScout-Signature"] = base64.b64encode(digest).decode()
    else:
        raise ValueError(f"unknown desk {delivery.desk!r}")
    return headers


def raw_request(delivery: Delivery, secret: str, now: datetime, host: str) -> bytes:
    """``delivery`` as the bytes of one HTTP/1.1 request (keep-alive) to ``host``."""
    headers = signed_headers(delivery, secret, now)
    lines = [f"POST {delivery.path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(delivery.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + delivery.body
