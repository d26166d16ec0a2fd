"""Help Scout: verify a delivery, key it, and turn it into a :class:`~rules.events.TicketEvent`.

A delivery is one webhook event (https://developer.helpscout.com/webhooks/): its name in the
``X-HelpScout-Event`` header, a v2 conversation object in the body (``{"id": ...}`` for
``convo.deleted``; schemas.py). The events in :data:`~adapters.helpscout.schemas.EVENT_TYPES`
are handled, any other (the ``helpscout.test`` ping included) is ignored (200).

Signature: ``X-HelpScout-Signature = base64(HMAC-SHA1(secret, raw body))`` (Help Scout's PHP
SDK, ``IncomingWebhook::generateSignature``), checked against every configured secret (a
rotation lists two) in constant time. Help Scout sends no timestamp and no delivery id, so
there is no replay window to check, and the delivery key is the SHA-256 of the body, prefixed
with the event name: one change can fire several events with the same body (``convo.tags``
and ``convo.status`` from one workflow), and each must be taken.

Who did it: a thread event's author is the newest embedded thread of its kind (the customer's
reply, the agent's reply, the note). Help Scout numbers users and customers separately, so a
user's id is written ``user:<id>`` in ``actor_id`` and ``Comment.author_id``; a customer's is
the bare id, as ``requester_id`` is. The connector's own writes come back as threads whose
``createdBy`` is its user (``api_user_id``): :meth:`HelpScoutAdapter.is_own_event` drops them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests

from adapters.base import (
    HeaderSource,
    HelpdeskAdapter,
    HelpdeskClient,
    load_json_object,
    load_schema,
    normalize_headers,
    schema_instance,
)
from adapters.errors import (
    AnomalousPayloadError,
    SignatureError,
    UnsupportedEventError,
)
from adapters.fields import blank_to_none, short_repr
from adapters.helpscout import install as installer
from adapters.helpscout.client import HelpScoutClient
from adapters.helpscout.schemas import (
    DELETED_EVENT,
    EVENT_TYPES,
    LEGACY_KEYS,
    STATUSES,
    THREAD_EVENTS,
    ConversationSchema,
    DeletedSchema,
    field_text,
    html_text,
)
from adapters.signing import SIGNATURE_MISMATCH, body_sha256, compare, hmac_b64
from rules.events import Comment, EventType, TicketEvent, TicketStatus

__all__ = ["HelpScoutAdapter", "USER_PREFIX"]

SIGNATURE_HEADER = "x-helpscout-signature"
EVENT_HEADER = "x-helpscout-event"
#: How a Help Scout *user* (an agent, the connector) is written in actor and author ids.
USER_PREFIX = "user:"
_EVENT_NAME = re.compile(r"[a-z][a-z0-9.-]{0,63}")
_EARLIEST = datetime.min.replace(tzinfo=UTC)
#: Thread states that are not (yet) part of the conversation.
_UNSENT = frozenset(("draft", "underreview"))


def _person_id(person: Mapping[str, Any] | None) -> str | None:
    """A person's id in the connector's terms: ``user:<id>`` for a user, the bare id for a
    customer; ``None`` when unknown."""
    if not person or person.get("id") is None:
        return None
    kind = (person.get("type") or "").strip().lower()
    return f"{USER_PREFIX}{person['id']}" if kind == "user" else str(person["id"])


def _name(person: Mapping[str, Any]) -> str | None:
    parts = [blank_to_none(person.get("first")), blank_to_none(person.get("last"))]
    return " ".join(part for part in parts if part) or None


def _newest_thread(
    threads: Sequence[Mapping[str, Any]], *, author: str, note: bool
) -> Mapping[str, Any] | None:
    """The newest sent thread of the event: a note, or a message by ``author`` (``customer``
    or ``user``). Help Scout lists threads newest first; ``createdAt`` decides."""
    found: list[Mapping[str, Any]] = []
    for thread in threads:
        kind = (thread.get("type") or "").strip().lower()
        state = (thread.get("state") or "").strip().lower()
        if state in _UNSENT or kind == "lineitem":
            continue
        creator = ((thread.get("created_by") or {}).get("type") or "").strip().lower()
        if note:
            if kind == "note":
                found.append(thread)
        elif kind != "note" and (creator == author or (not creator and kind == author)):
            found.append(thread)
    if not found:
        return None
    return max(found, key=lambda thread: thread.get("created_at") or _EARLIEST)


def _first_message(threads: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The oldest customer-visible thread: what the conversation was opened with."""
    messages = [
        t
        for t in threads
        if (t.get("type") or "").strip().lower() not in ("note", "lineitem")
        and (t.get("state") or "").strip().lower() not in _UNSENT
        and t.get("body")
    ]
    if not messages:
        return None
    return min(reversed(messages), key=lambda thread: thread.get("created_at") or _EARLIEST)


class HelpScoutAdapter(HelpdeskAdapter):
    """Help Scout (Mailbox API 2.0): webhooks, the REST client, and ``webhooks install``."""

    key = "helpscout"
    display_name = "Help Scout"
    event_types = EVENT_TYPES

    # ----------------------------------------------------------------------------------------
    # Verification and keys

    def verify(self, headers: HeaderSource, body: bytes, *, now: datetime) -> None:
        """Check ``X-HelpScout-Signature`` against every configured secret. Help Scout signs
        no timestamp, so ``now`` is not used.

        :raises MissingSecretError: no secret configured.
        :raises SignatureError: the header missing, or no secret matching.
        """
        self.require_secrets()
        signature = normalize_headers(headers).get(SIGNATURE_HEADER, "").strip()
        if not signature:
            raise SignatureError("missing X-HelpScout-Signature header", adapter=self.key)
        if not any(compare(hmac_b64(s, body, "sha1"), signature) for s in self.secrets):
            raise SignatureError(SIGNATURE_MISMATCH, adapter=self.key)

    def delivery_key(self, headers: HeaderSource, body: bytes) -> str:
        """``<event>:<SHA-256 of the body>`` (Help Scout documents no delivery id); the bare
        hash when the event header is missing or not an event name."""
        event = normalize_headers(headers).get(EVENT_HEADER, "").strip().lower()
        digest = body_sha256(body)
        return f"{event}:{digest}" if _EVENT_NAME.fullmatch(event) else digest

    # ----------------------------------------------------------------------------------------
    # Parsing

    def parse(self, headers: HeaderSource, body: bytes, *, delivery_key: str) -> list[TicketEvent]:
        """One :class:`TicketEvent` per delivery.

        :raises UnsupportedEventError: an event the connector does not handle (decided from
            the header, before the body is read).
        :raises AnomalousPayloadError: no event header, or a body that is not a v2
            conversation (a legacy v1 payload is named as such), with the failing paths.
        """
        event = normalize_headers(headers).get(EVENT_HEADER, "").strip()
        if not event:
            raise AnomalousPayloadError(
                "missing X-HelpScout-Event header: which event this is cannot be told",
                adapter=self.key,
                errors={"X-HelpScout-Event": ["Missing header."]},
            )
        code = event.lower()
        event_type = EVENT_TYPES.get(code)
        if event_type is None:
            raise UnsupportedEventError(
                f"Help Scout event {short_repr(event)} is not handled",
                adapter=self.key,
                event_type=event[:100],
            )
        data = load_json_object(body, adapter=self.key)
        if code == DELETED_EVENT:
            found = load_schema(
                schema_instance(DeletedSchema), data, adapter=self.key, what=f"{code} event"
            )
            return [
                TicketEvent(
                    desk=self.desk.key,
                    delivery_key=delivery_key,
                    type=EventType.TICKET_DELETED,
                    ticket_id=found["id"],
                    raw=data,
                )
            ]
        self._refuse_legacy(data, code)
        conversation = load_schema(
            schema_instance(ConversationSchema), data, adapter=self.key, what=f"{code} event"
        )
        return [self._from_conversation(conversation, data, code, event_type, delivery_key)]

    def _refuse_legacy(self, data: Mapping[str, Any], code: str) -> None:
        """A v1 payload (``customer``, ``mailbox``, ``threads`` as a list...) gets its own
        message: the webhook must be switched to v2, not the body fixed."""
        if "primaryCustomer" in data:
            return
        legacy = [key for key in LEGACY_KEYS if key in data]
        if isinstance(data.get("threads"), list):
            legacy.append("threads")
        if legacy:
            raise AnomalousPayloadError(
                f"{code} event: a legacy (v1) Help Scout payload ({', '.join(legacy)}); set the "
                "webhook's payload version to V2 (`care-connector webhooks install` does)",
                adapter=self.key,
                errors={
                    "primaryCustomer": ["Missing data for required field (a v1 payload)."],
                    **{key: ["A v1 payload field."] for key in legacy},
                },
            )

    def _fields(self, custom: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """The desk's ``fields`` (logical name -> Help Scout field id, or its name) read from
        ``customFields``: a dropdown's label (``text``), else the ``value``."""
        out: dict[str, str] = {}
        for name, ref in self.desk.fields.items():
            wanted = str(ref).strip()
            for item in custom:
                by_id = item["id"] == wanted
                by_name = (item.get("name") or "").strip().casefold() == wanted.casefold()
                if by_id or (not wanted.isdigit() and by_name):
                    value = field_text(item.get("text")) or field_text(item.get("value"))
                    if value:
                        out[name] = value
                    break
        return out

    def _from_conversation(
        self,
        conversation: dict[str, Any],
        raw: dict[str, Any],
        code: str,
        event_type: EventType,
        delivery_key: str,
    ) -> TicketEvent:
        customer: dict[str, Any] = conversation["primary_customer"]
        requester_id: str | None = customer.get("id")
        embedded: dict[str, Any] = conversation["embedded"] or {}
        threads: list[dict[str, Any]] = embedded.get("threads") or []
        status_text = (conversation["status"] or "").strip().lower()
        status = STATUSES.get(status_text, TicketStatus.UNKNOWN)
        if code == "convo.status" and status_text == "spam":
            event_type = EventType.TICKET_DELETED  # spam ends the ticket, as a deletion does

        occurred_at: datetime | None = None
        actor_id: str | None = None
        comment: Comment | None = None
        if code in THREAD_EVENTS:
            author, public = THREAD_EVENTS[code]
            thread = _newest_thread(threads, author=author, note=not public)
            if thread is not None:
                creator = thread["created_by"] or {}
                author_id = _person_id(creator)
                if author_id is None and author == "customer":
                    author_id = requester_id
                occurred_at = thread["created_at"]
                comment = Comment(
                    body=html_text(thread["body"] or ""),
                    public=public,
                    author_id=author_id,
                    author_email=blank_to_none(creator.get("email")),
                    by_requester=author == "customer" and author_id == requester_id,
                )
                actor_id = author_id
            else:
                # The body embeds no such thread: the author is known by kind only, the text
                # not at all (an empty reply approves nothing; it is noted for the engineer).
                comment = Comment(
                    body="",
                    public=public,
                    author_id=requester_id if author == "customer" else None,
                    by_requester=author == "customer",
                )
                actor_id = requester_id if author == "customer" else None
        elif event_type is EventType.TICKET_CREATED:
            occurred_at = conversation["created_at"]
            actor_id = _person_id(conversation["created_by"]) or requester_id

        first = _first_message(threads)
        if first is not None:
            description = html_text(first["body"] or "")
        elif event_type is EventType.TICKET_CREATED:
            description = (conversation["preview"] or "").strip()
        else:
            description = ""
        source = conversation["source"] or {}
        return TicketEvent(
            desk=self.desk.key,
            delivery_key=delivery_key,
            type=event_type,
            ticket_id=conversation["id"],
            occurred_at=occurred_at,
            ticket_created_at=conversation["created_at"],
            subject=conversation["subject"] or "",
            description=description,
            requester_id=requester_id,
            requester_email=blank_to_none(customer.get("email")),
            requester_name=_name(customer),
            actor_id=actor_id,
            status=status,
            priority=None,  # no priority field: the level is a tag, read from ``tags``
            tags=tuple(conversation["tags"] or ()),
            comment=comment,
            fields=self._fields(conversation["custom_fields"] or []),
            via_channel=blank_to_none(source.get("type")),
            raw=raw,
        )

    def is_own_event(self, event: TicketEvent) -> bool:
        """Whether the connector's own user (``api_user_id``, a Help Scout *user* id, with or
        without ``user:``) wrote the event's thread or opened the conversation.

        Only ``actor_id`` counts, never a comment's author alone: customers and users are
        numbered separately, so a customer may share the connector's number.
        """
        own = (self.desk.api_user_id or "").strip()
        if not own:
            return False
        if not own.startswith(USER_PREFIX):
            own = USER_PREFIX + own
        return event.actor_id is not None and event.actor_id.strip() == own

    # ----------------------------------------------------------------------------------------
    # Client and installation

    def client(self, session: requests.Session | None = None) -> HelpScoutClient:
        """A :class:`HelpScoutClient` for this desk (its OAuth token is kept in it)."""
        return HelpScoutClient(self.desk, session)

    def install_plan(self, public_url: str) -> installer.HelpScoutInstallPlan:
        """See :func:`adapters.helpscout.install.plan`."""
        return installer.plan(public_url, self.desk)

    def install(
        self, public_url: str, client: HelpdeskClient | None = None
    ) -> installer.HelpScoutInstallResult:
        """Plan, then :func:`adapters.helpscout.install.execute` with ``client`` (default: a
        new one), signing with the desk's first configured secret (a new one if none)."""
        plan = self.install_plan(public_url)
        api = client if client is not None else self.client()
        if not isinstance(api, HelpScoutClient):
            raise TypeError(f"a Help Scout desk needs a HelpScoutClient, not {type(api).__name__}")
        return installer.execute(api, plan, secret=next(iter(self.secrets), None))
