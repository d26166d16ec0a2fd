"""``webhooks install`` for Zendesk: a pure plan, and an idempotent executor.

Two connection methods (a Zendesk webhook has exactly one, for life), chosen with the desk
option ``connection``:

``"triggers"`` (default)
    One webhook subscribed to ``conditional_ticket_events`` and three triggers whose action
    ``notification_webhook`` posts the connector's own JSON body (:func:`trigger_body`):

    * *created*: ``update_type is Create``;
    * *comment*: ``update_type is Change`` and ``comment_is_public is true`` (a customer's
      reply, which may be an approval);
    * *updated*: ``update_type is Change`` (tags, fields, status...).

    The two update triggers carry a **loop guard** so that the connector's own API writes do
    not call it back: ``any`` of "not via the API" (``current_via_id is_not 5``) or "by an
    end user" (``role is end_user``). The trigger conditions documented in our references
    have no "updated by user X" condition, so this is a coarse filter; the guard that counts
    is the connector's :meth:`~adapters.base.HelpdeskAdapter.is_own_event`, which compares
    the body's ``current_user.id`` with the desk's ``api_user_id``: the channel is never the
    only guard. The connector never creates tickets, so *created* has no guard.

``"events"``
    One webhook subscribed to the ``zen:event-type:ticket.*`` types the adapter handles.
    Subscriptions cannot be filtered, so every write of the connector comes back and only
    ``is_own_event`` drops it: this method needs ``api_user_id``.

Trigger bodies and JSON escaping: the template is written with :func:`json.dumps`, so it is
valid JSON with each placeholder inside a JSON string. Ids, statuses, priorities, tags,
e-mails, locales and ISO timestamps cannot contain a quote or a control character. Free text
(subject, description, the latest comment, the requester's name, text fields) relies on
Zendesk escaping placeholder values for JSON-format webhooks; a body that still does not
parse is kept in the inbox and answered 400 with the reason, never guessed at.

The signing secret: on creation the connector generates one and sends it; then (always) it
reads back ``GET /api/v2/webhooks/{id}/signing_secret``, the secret Zendesk actually signs
with, and returns it so the CLI can print the environment variable to set.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.base import DeskConfig, hook_endpoint, secret_env_name
from adapters.errors import HelpdeskAPIError
from adapters.zendesk.client import ZendeskClient
from adapters.zendesk.schemas import EVENT_TYPES

__all__ = [
    "CATEGORY_NAME",
    "LOOP_GUARD",
    "InstalledObject",
    "TriggerPlan",
    "WebhookPlan",
    "ZendeskInstallPlan",
    "ZendeskInstallResult",
    "execute",
    "plan",
    "trigger_body",
]

Connection = Literal["triggers", "events"]

#: Name of the trigger category the connector's triggers go in (unless the desk names one
#: with ``options.trigger_category_id``).
CATEGORY_NAME = "Care Connector"

#: ``any`` conditions of the update triggers: not an API update, or an end user's.
LOOP_GUARD: tuple[Mapping[str, str], ...] = (
    {"field": "current_via_id", "operator": "is_not", "value": "5"},  # 5: web service (API)
    {"field": "role", "operator": "is", "value": "end_user"},
)

_FIELD_ID_RE = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class WebhookPlan:
    """The webhook: found by ``name``, created or updated to this."""

    name: str
    endpoint: str
    subscriptions: tuple[str, ...]

    def body(self) -> dict[str, Any]:
        """The ``webhook`` object of ``POST``/``PUT /api/v2/webhooks``."""
        return {
            "name": self.name,
            "description": "Care Connector: ticket events for support plans and credits.",
            "endpoint": self.endpoint,
            "http_method": "POST",
            "request_format": "json",
            "status": "active",
            "subscriptions": list(self.subscriptions),
        }

    def matches(self, existing: Mapping[str, Any]) -> bool:
        """Whether ``existing`` (from the API) already is this webhook."""
        wanted = self.body()
        return all(
            existing.get(key) == wanted[key]
            for key in ("name", "endpoint", "http_method", "request_format", "status")
        ) and sorted(map(str, existing.get("subscriptions") or [])) == sorted(self.subscriptions)


@dataclass(frozen=True, slots=True)
class TriggerPlan:
    """One trigger: found by ``title``, created or updated to this."""

    title: str
    description: str
    conditions_all: tuple[Mapping[str, str], ...]
    conditions_any: tuple[Mapping[str, str], ...]
    body_template: str

    def body(self, webhook_id: str, category_id: str | None) -> dict[str, Any]:
        """The ``trigger`` object of ``POST``/``PUT /api/v2/triggers``."""
        trigger: dict[str, Any] = {
            "title": self.title,
            "description": self.description,
            "active": True,
            "conditions": {
                "all": [dict(c) for c in self.conditions_all],
                "any": [dict(c) for c in self.conditions_any],
            },
            "actions": [
                {"field": "notification_webhook", "value": [webhook_id, self.body_template]}
            ],
        }
        if category_id:
            trigger["category_id"] = category_id
        return trigger

    def matches(
        self, existing: Mapping[str, Any], webhook_id: str, category_id: str | None
    ) -> bool:
        """Whether ``existing`` (from the API) already is this trigger."""
        wanted = self.body(webhook_id, category_id)
        conditions = existing.get("conditions")
        if not isinstance(conditions, Mapping):
            return False
        same_category = category_id is None or str(existing.get("category_id")) == category_id
        return (
            existing.get("title") == wanted["title"]
            and existing.get("active") is True
            and list(conditions.get("all") or []) == wanted["conditions"]["all"]
            and list(conditions.get("any") or []) == wanted["conditions"]["any"]
            and existing.get("actions") == wanted["actions"]
            and same_category
        )


@dataclass(frozen=True, slots=True)
class ZendeskInstallPlan:
    """What ``webhooks install`` creates or updates on one Zendesk desk."""

    desk: str
    connection: Connection
    webhook: WebhookPlan
    triggers: tuple[TriggerPlan, ...]
    category_id: str | None
    category_name: str
    secret_env: str
    warnings: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """One line per object, then the warnings."""
        lines = [
            f"webhook {self.webhook.name!r}: POST {self.webhook.endpoint} "
            f"({', '.join(self.webhook.subscriptions)})"
        ]
        if self.triggers:
            where = f"category {self.category_id}" if self.category_id else self.category_name
            lines.append(f"trigger category: {where}")
        for trigger in self.triggers:
            guard = " (loop guard)" if trigger.conditions_any else ""
            lines.append(f"trigger {trigger.title!r}{guard}")
        lines.extend(f"warning: {text}" for text in self.warnings)
        return lines


@dataclass(frozen=True, slots=True)
class InstalledObject:
    """One object the executor dealt with."""

    kind: Literal["webhook", "trigger_category", "trigger"]
    name: str
    id: str
    action: Literal["created", "updated", "unchanged", "found"]


@dataclass(frozen=True, slots=True)
class ZendeskInstallResult:
    """What :func:`execute` did; ``secret`` is the signing secret now in force."""

    webhook_id: str
    secret: str | None
    secret_env: str
    objects: tuple[InstalledObject, ...] = field(default=())

    def describe(self) -> list[str]:
        """One line per object: ``created webhook 'Care Connector (...)' 01H...``."""
        lines = [f"{o.action} {o.kind.replace('_', ' ')} {o.name!r} ({o.id})" for o in self.objects]
        lines.append(f"set {self.secret_env} to the webhook signing secret")
        return lines


def _placeholder(name: str) -> str:
    return "{{" + name + "}}"


def trigger_body(desk: DeskConfig, event: Literal["created", "comment", "updated"]) -> str:
    """The JSON body template of the connector's trigger for ``event``.

    Read by :class:`~adapters.zendesk.schemas.TriggerBodySchema`; ``care_connector`` is the
    template's version. Custom fields are sent by id for each of the desk's ``fields``.

    :raises ValueError: a configured field id is not a number.
    """
    field_values: dict[str, str] = {}
    for name, field_id in desk.fields.items():
        if not _FIELD_ID_RE.fullmatch(str(field_id)):
            raise ValueError(
                f"desk {desk.key!r}: fields.{name} must be a Zendesk field id (a number), "
                f"got {field_id!r}"
            )
        field_values[str(field_id)] = _placeholder(f"ticket.ticket_field_{field_id}")
    body: dict[str, Any] = {
        "care_connector": 1,
        "event": event,
        "ticket": {
            "id": _placeholder("ticket.id"),
            "subject": _placeholder("ticket.title"),
            "description": _placeholder("ticket.description"),
            "status": _placeholder("ticket.status"),
            "priority": _placeholder("ticket.priority"),
            "tags": _placeholder("ticket.tags"),
            "created_at": _placeholder("ticket.created_at_with_timestamp"),
            "updated_at": _placeholder("ticket.updated_at_with_timestamp"),
            "via": _placeholder("ticket.via"),
            "fields": field_values,
        },
        "requester": {
            "id": _placeholder("ticket.requester.id"),
            "email": _placeholder("ticket.requester.email"),
            "name": _placeholder("ticket.requester.name"),
            "locale": _placeholder("ticket.requester.locale"),
        },
        "current_user": {"id": _placeholder("current_user.id")},
    }
    if event == "comment":
        body["comment"] = {
            "body": _placeholder("ticket.latest_comment.value"),
            "public": _placeholder("ticket.latest_comment.is_public"),
            "author_id": _placeholder("ticket.latest_comment.author.id"),
        }
    return json.dumps(body, indent=2, ensure_ascii=False)


def plan(public_url: str, desk: DeskConfig) -> ZendeskInstallPlan:
    """What to install on ``desk`` so that it posts to ``<public_url>/hooks/<desk key>``.

    :raises ValueError: a bad URL, an unknown ``options.connection``, a non-numeric field id,
        or event subscriptions without ``api_user_id``.
    """
    endpoint = hook_endpoint(public_url, desk.key)
    connection = str(desk.options.get("connection", "triggers")).strip().lower()
    secret_env = secret_env_name(desk)
    api_user = (desk.api_user_id or "").strip()
    category = desk.options.get("trigger_category_id")
    category_id = str(category).strip() if category not in (None, "") else None
    warnings: list[str] = []
    if connection == "events":
        if not api_user:
            raise ValueError(
                f'desk {desk.key!r}: connection = "events" needs api_user_id: event '
                "subscriptions cannot be filtered, so the connector must recognise its own writes"
            )
        return ZendeskInstallPlan(
            desk=desk.key,
            connection="events",
            webhook=WebhookPlan(
                name=f"Care Connector ({desk.key}, events)",
                endpoint=endpoint,
                subscriptions=tuple(EVENT_TYPES),
            ),
            triggers=(),
            category_id=None,
            category_name=CATEGORY_NAME,
            secret_env=secret_env,
        )
    if connection != "triggers":
        raise ValueError(
            f'desk {desk.key!r}: options.connection must be "triggers" or "events", '
            f"got {connection!r}"
        )
    if not api_user:
        warnings.append(
            "no api_user_id: the connector cannot recognise its own writes made through the "
            "API by an end-user account; set api_user_id"
        )
    prefix = f"Care Connector ({desk.key})"
    created = ({"field": "update_type", "operator": "is", "value": "Create"},)
    changed = ({"field": "update_type", "operator": "is", "value": "Change"},)
    public_comment = ({"field": "comment_is_public", "operator": "is", "value": "true"},)
    triggers = (
        TriggerPlan(
            title=f"{prefix}: ticket created",
            description="Sends new tickets to the Care Connector.",
            conditions_all=created,
            conditions_any=(),
            body_template=trigger_body(desk, "created"),
        ),
        TriggerPlan(
            title=f"{prefix}: public comment",
            description="Sends public comments (replies, approvals) to the Care Connector.",
            conditions_all=changed + public_comment,
            conditions_any=LOOP_GUARD,
            body_template=trigger_body(desk, "comment"),
        ),
        TriggerPlan(
            title=f"{prefix}: ticket updated",
            description="Sends ticket updates (tags, fields, status) to the Care Connector.",
            conditions_all=changed,
            conditions_any=LOOP_GUARD,
            body_template=trigger_body(desk, "updated"),
        ),
    )
    return ZendeskInstallPlan(
        desk=desk.key,
        connection="triggers",
        webhook=WebhookPlan(
            name=f"Care Connector ({desk.key}, triggers)",
            endpoint=endpoint,
            subscriptions=("conditional_ticket_events",),
        ),
        triggers=triggers,
        category_id=category_id,
        category_name=CATEGORY_NAME,
        secret_env=secret_env,
        warnings=tuple(warnings),
    )


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _by_name(items: Sequence[Mapping[str, Any]], key: str, name: str) -> Mapping[str, Any] | None:
    return next((item for item in items if item.get(key) == name), None)


def execute(
    client: ZendeskClient,
    install: ZendeskInstallPlan,
    *,
    make_secret: Callable[[], str] = _new_secret,
) -> ZendeskInstallResult:
    """Create or update what ``install`` describes; safe to run again (objects are found by
    name: the webhook with ``filter[name_contains]``, triggers and the category by listing).

    :param make_secret: the secret generator for a new webhook.
    :raises HelpdeskAPIError: a call failed; what was done before stays done, and the next
        run picks up from there.
    """
    objects: list[InstalledObject] = []
    hook = install.webhook
    generated: str | None = None
    existing = _by_name(client.list_webhooks(hook.name), "name", hook.name)
    if existing is None:
        generated = make_secret()
        created = client.create_webhook(
            {**hook.body(), "signing_secret": {"algorithm": "sha256", "secret": generated}}
        )
        webhook_id = str(created["id"])
        objects.append(InstalledObject("webhook", hook.name, webhook_id, "created"))
    else:
        webhook_id = str(existing.get("id"))
        if hook.matches(existing):
            objects.append(InstalledObject("webhook", hook.name, webhook_id, "unchanged"))
        else:
            client.update_webhook(webhook_id, hook.body())
            objects.append(InstalledObject("webhook", hook.name, webhook_id, "updated"))
    try:
        secret: str | None = client.webhook_signing_secret(webhook_id)
    except HelpdeskAPIError as err:
        if generated is None or err.status not in (403, 404):
            raise
        secret = generated  # cannot read it back, but it is the one just set

    if install.triggers:
        category_id = install.category_id or _category(client, install.category_name, objects)
        present = client.list_triggers()
        for trigger in install.triggers:
            body = trigger.body(webhook_id, category_id)
            found = _by_name(present, "title", trigger.title)
            if found is None:
                made = client.create_trigger(body)
                objects.append(
                    InstalledObject("trigger", trigger.title, str(made["id"]), "created")
                )
            elif trigger.matches(found, webhook_id, category_id):
                objects.append(
                    InstalledObject("trigger", trigger.title, str(found.get("id")), "unchanged")
                )
            else:
                client.update_trigger(str(found.get("id")), body)
                objects.append(
                    InstalledObject("trigger", trigger.title, str(found.get("id")), "updated")
                )
    return ZendeskInstallResult(
        webhook_id=webhook_id,
        secret=secret,
        secret_env=install.secret_env,
        objects=tuple(objects),
    )


def _category(client: ZendeskClient, name: str, objects: list[InstalledObject]) -> str | None:
    """The id of the category called ``name``, created if missing; ``None`` where the
    account has no trigger categories (403)."""
    try:
        categories = client.list_trigger_categories()
    except HelpdeskAPIError as err:
        if err.status == 403:
            return None
        raise
    found = _by_name(categories, "name", name)
    if found is not None:
        category_id = str(found.get("id"))
        objects.append(InstalledObject("trigger_category", name, category_id, "found"))
        return category_id
    made = client.create_trigger_category(name)
    category_id = str(made["id"])
    objects.append(InstalledObject("trigger_category", name, category_id, "created"))
    return category_id
