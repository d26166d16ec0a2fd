"""``webhooks install`` for Zammad: a pure plan, and an idempotent executor.

Zammad posts only from a trigger whose action is "Notification > Webhook"
(``perform: {"notification.webhook": {"webhook_id": N}}``), and the body belongs to the
webhook. The connector installs, for ``<public_url>/hooks/<desk key>``:

* two **webhooks**, ``Care Connector (<desk>): ticket created`` and ``...: ticket updated``,
  both signing with the desk's secret (``X-Hub-Signature``), each with the connector's custom
  payload (:func:`custom_payload`) naming its event; with ``options.payload = "default"`` they
  send Zammad's default ``{"ticket", "article"}`` body instead;
* two **triggers** of the same names, ``ticket.action is create`` and
  ``ticket.action is update``, run on every matching change
  (``execution_condition_mode: "always"``). The update trigger carries the **loop guard**:
  ``ticket.updated_by_id is not <api_user_id>``, so the connector's own API writes (notes,
  tags, priority) do not call it back. The guard is on the author, never on the channel; the
  connector's :meth:`~adapters.base.HelpdeskAdapter.is_own_event` checks the author again.
  The connector never creates tickets, so the create trigger has no guard.

Objects are found by name: a second run updates them in place, never duplicates them.

The signing secret: Zammad never shows a webhook's ``signature_token`` again (the API answers
``"**********"``), so it cannot be read back. Every run sets it: to the desk's current secret
(the first of ``secret_env``) when one is configured, else to a new one, which
:class:`ZammadInstallResult` reports for the operator to store. Before anything is written the
executor checks that the API credentials belong to ``api_user_id`` (``GET /api/v1/users/me``):
a guard naming another user would not stop the loop.

Custom payload and free text: Zammad escapes quotes and line breaks in the values it puts in
a custom payload, but not backslashes; a title or article with a backslash can make the
rendered body invalid, and Zammad then sends ``{"error": "..."}``, which the adapter refuses
(400, kept in the inbox). ``options.payload = "default"`` avoids this, at the cost of a
larger body.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.base import DeskConfig, hook_endpoint, secret_env_name
from adapters.zammad.client import ZammadClient

__all__ = [
    "PAYLOAD_MODES",
    "InstalledObject",
    "TriggerPlan",
    "WebhookPlan",
    "ZammadInstallPlan",
    "ZammadInstallResult",
    "custom_payload",
    "execute",
    "loop_guard",
    "plan",
]

Event = Literal["created", "updated"]
PayloadMode = Literal["custom", "default"]

#: Values of the desk option ``payload``.
PAYLOAD_MODES: tuple[PayloadMode, ...] = ("custom", "default")

# Zammad replacements are "#{[a-z0-9_.?!]+}": attribute names must fit.
_ATTRIBUTE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_USER_ID_RE = re.compile(r"[0-9]{1,18}")


def _placeholder(name: str) -> str:
    return "#{" + name + "}"


def custom_payload(desk: DeskConfig, event: Event) -> str:
    """The JSON body template of the connector's webhook for ``event``.

    Read by :class:`~adapters.zammad.schemas.CustomBodySchema`; ``care_connector`` is the
    template's version. Custom ticket attributes are sent by name for each of the desk's
    ``fields``.

    :raises ValueError: a configured field is not a Zammad attribute name.
    """
    field_values: dict[str, str] = {}
    for name, attribute in desk.fields.items():
        if not _ATTRIBUTE_RE.fullmatch(str(attribute)):
            raise ValueError(
                f"desk {desk.key!r}: fields.{name} must be a Zammad ticket attribute name "
                f"(lower-case letters, digits, _), got {attribute!r}"
            )
        field_values[str(attribute)] = _placeholder(f"ticket.{attribute}")
    body: dict[str, Any] = {
        "care_connector": 1,
        "event": event,
        "ticket": {
            "id": _placeholder("ticket.id"),
            "number": _placeholder("ticket.number"),
            "title": _placeholder("ticket.title"),
            "state": _placeholder("ticket.state.name"),
            "priority": _placeholder("ticket.priority.name"),
            "customer_id": _placeholder("ticket.customer_id"),
            "created_by_id": _placeholder("ticket.created_by_id"),
            "updated_by_id": _placeholder("ticket.updated_by_id"),
            "created_at": _placeholder("ticket.created_at"),
            "updated_at": _placeholder("ticket.updated_at"),
            "fields": field_values,
        },
        "customer": {
            "id": _placeholder("ticket.customer.id"),
            "email": _placeholder("ticket.customer.email"),
            "firstname": _placeholder("ticket.customer.firstname"),
            "lastname": _placeholder("ticket.customer.lastname"),
        },
        "article": {
            "id": _placeholder("article.id"),
            "body": _placeholder("article.body"),
            "content_type": _placeholder("article.content_type"),
            "internal": _placeholder("article.internal"),
            "sender": _placeholder("article.sender.name"),
            "type": _placeholder("article.type.name"),
            "created_by_id": _placeholder("article.created_by_id"),
            "origin_by_id": _placeholder("article.origin_by_id"),
            "created_at": _placeholder("article.created_at"),
        },
    }
    return json.dumps(body, indent=2, ensure_ascii=False)


def loop_guard(api_user_id: str) -> dict[str, Any]:
    """The trigger condition that leaves out updates made by the connector's own user."""
    return {
        "ticket.updated_by_id": {
            "operator": "is not",
            "pre_condition": "specific",
            "value": [api_user_id],
        }
    }


def _same_json(left: Any, right: Any) -> bool:
    """Whether two payload templates are the same JSON (the API may re-indent them)."""
    if left is None or right is None:
        return left is right or (not left and not right)
    try:
        a = json.loads(left) if isinstance(left, str) else left
        b = json.loads(right) if isinstance(right, str) else right
    except ValueError:
        return False
    return bool(a == b)


@dataclass(frozen=True, slots=True)
class WebhookPlan:
    """One webhook: found by ``name``, created or updated to this."""

    name: str
    event: Event
    endpoint: str
    payload: str | None

    def body(self, secret: str) -> dict[str, Any]:
        """The body of ``POST``/``PUT /api/v1/webhooks``, signing with ``secret``."""
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "http_method": "post",
            "signature_token": secret,
            "ssl_verify": self.endpoint.startswith("https://"),
            "active": True,
            "customized_payload": self.payload is not None,
            "custom_payload": self.payload,
            "note": "Care Connector: ticket events for support plans and credits.",
        }


@dataclass(frozen=True, slots=True)
class TriggerPlan:
    """One trigger: found by ``name``, created or updated to this."""

    name: str
    event: Event
    condition: Mapping[str, Any]

    def body(self, webhook_id: str) -> dict[str, Any]:
        """The body of ``POST``/``PUT /api/v1/triggers``."""
        return {
            "name": self.name,
            "condition": json.loads(json.dumps(self.condition)),
            "perform": {"notification.webhook": {"webhook_id": int(webhook_id)}},
            "activator": "action",
            "execution_condition_mode": "always",
            "active": True,
            "note": "Care Connector: sends ticket events to the connector.",
        }

    def matches(self, existing: Mapping[str, Any], webhook_id: str) -> bool:
        """Whether ``existing`` (from the API) already is this trigger."""
        wanted = self.body(webhook_id)
        perform = existing.get("perform")
        action = perform.get("notification.webhook") if isinstance(perform, Mapping) else None
        hook = action.get("webhook_id") if isinstance(action, Mapping) else None
        return (
            all(
                existing.get(key) == wanted[key]
                for key in ("name", "activator", "execution_condition_mode", "active")
            )
            and _same_json(existing.get("condition"), wanted["condition"])
            and str(hook) == str(webhook_id)
        )


@dataclass(frozen=True, slots=True)
class ZammadInstallPlan:
    """What ``webhooks install`` creates or updates on one Zammad desk."""

    desk: str
    api_user_id: str
    payload: PayloadMode
    webhooks: tuple[WebhookPlan, ...]
    triggers: tuple[TriggerPlan, ...]
    secret_env: str
    configured_secret: str | None = field(default=None, repr=False)

    def describe(self) -> list[str]:
        """One line per object."""
        lines = [
            f"webhook {hook.name!r}: POST {hook.endpoint} ({self.payload} payload, signed)"
            for hook in self.webhooks
        ]
        for trigger in self.triggers:
            guard = (
                f" (loop guard: not updated by user {self.api_user_id})"
                if "ticket.updated_by_id" in trigger.condition
                else ""
            )
            lines.append(f"trigger {trigger.name!r}: ticket {trigger.event}{guard}")
        if self.configured_secret is None:
            lines.append(f"a new signing secret will be generated (none in {self.secret_env})")
        return lines


@dataclass(frozen=True, slots=True)
class InstalledObject:
    """One object the executor dealt with."""

    kind: Literal["webhook", "trigger"]
    name: str
    id: str
    action: Literal["created", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class ZammadInstallResult:
    """What :func:`execute` did.

    :param secret: the signing secret the webhooks now use.
    :param generated: whether it is a new one, to be stored in ``secret_env``.
    """

    webhook_ids: Mapping[str, str]
    secret: str | None
    secret_env: str
    generated: bool
    objects: tuple[InstalledObject, ...] = ()

    def describe(self) -> list[str]:
        """One line per object, then what to do with the secret."""
        lines = [f"{o.action} {o.kind} {o.name!r} ({o.id})" for o in self.objects]
        if self.generated:
            lines.append(
                f"set {self.secret_env} to {self.secret} (a new webhook signing secret; "
                "Zammad never shows it again)"
            )
        else:
            lines.append(f"webhooks sign with the current secret of {self.secret_env}")
        return lines


def plan(public_url: str, desk: DeskConfig) -> ZammadInstallPlan:
    """What to install on ``desk`` so that it posts to ``<public_url>/hooks/<desk key>``.

    :raises ValueError: a bad URL, no (or a non-numeric) ``api_user_id``, an unknown
        ``options.payload``, or a field that is not an attribute name.
    """
    endpoint = hook_endpoint(public_url, desk.key)
    api_user = (desk.api_user_id or "").strip()
    if not _USER_ID_RE.fullmatch(api_user):
        raise ValueError(
            f"desk {desk.key!r}: api_user_id must be the id of the Zammad user the connector's "
            f"token belongs to (the triggers' loop guard), got {api_user!r}"
        )
    mode = str(desk.options.get("payload", "custom")).strip().lower()
    if mode not in PAYLOAD_MODES:
        raise ValueError(
            f'desk {desk.key!r}: options.payload must be "custom" or "default", got {mode!r}'
        )
    payload_mode: PayloadMode = "custom" if mode == "custom" else "default"
    secret_env = secret_env_name(desk)
    configured = next((s for s in desk.secrets if s), None)
    prefix = f"Care Connector ({desk.key})"
    events: tuple[Event, ...] = ("created", "updated")
    webhooks = tuple(
        WebhookPlan(
            name=f"{prefix}: ticket {event}",
            event=event,
            endpoint=endpoint,
            payload=custom_payload(desk, event) if payload_mode == "custom" else None,
        )
        for event in events
    )
    triggers = (
        TriggerPlan(
            name=f"{prefix}: ticket created",
            event="created",
            condition={"ticket.action": {"operator": "is", "value": "create"}},
        ),
        TriggerPlan(
            name=f"{prefix}: ticket updated",
            event="updated",
            condition={
                "ticket.action": {"operator": "is", "value": "update"},
                **loop_guard(api_user),
            },
        ),
    )
    return ZammadInstallPlan(
        desk=desk.key,
        api_user_id=api_user,
        payload=payload_mode,
        webhooks=webhooks,
        triggers=triggers,
        secret_env=secret_env,
        configured_secret=configured,
    )


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _by_name(items: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((item for item in items if item.get("name") == name), None)


def _hook_matches(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    method = str(existing.get("http_method") or "post").lower()
    return (
        all(
            existing.get(key) == wanted[key]
            for key in ("name", "endpoint", "ssl_verify", "active", "customized_payload")
        )
        and method == "post"
        and _same_json(existing.get("custom_payload"), wanted["custom_payload"])
    )


def execute(
    client: ZammadClient,
    install: ZammadInstallPlan,
    *,
    make_secret: Callable[[], str] = _new_secret,
) -> ZammadInstallResult:
    """Create or update what ``install`` describes; safe to run again.

    Every webhook is written with the signing secret (it cannot be read back to compare);
    triggers are written only when they differ.

    :param make_secret: the generator of a new secret when the desk has none.
    :raises ValueError: the credentials belong to another user than ``api_user_id``.
    :raises HelpdeskAPIError: a call failed; what was done before stays done, and the next
        run picks up from there.
    """
    me = client.current_user()
    if str(me.get("id")) != install.api_user_id:
        login = me.get("login") or me.get("email") or "?"
        raise ValueError(
            f"desk {install.desk!r}: the API credentials belong to Zammad user {me.get('id')} "
            f"({login}), but api_user_id is {install.api_user_id}: the loop guard would let the "
            "connector's own writes through; set api_user_id to the token's user"
        )
    generated = install.configured_secret is None
    secret = make_secret() if generated else install.configured_secret
    assert secret is not None
    objects: list[InstalledObject] = []
    webhook_ids: dict[str, str] = {}
    present = client.list_webhooks()
    for hook in install.webhooks:
        body = hook.body(secret)
        found = _by_name(present, hook.name)
        if found is None:
            made = client.create_webhook(body)
            webhook_ids[hook.event] = str(made["id"])
            objects.append(InstalledObject("webhook", hook.name, str(made["id"]), "created"))
            continue
        hook_id = str(found.get("id"))
        webhook_ids[hook.event] = hook_id
        # Written even when the rest matches: the token may differ and cannot be compared.
        client.update_webhook(hook_id, body)
        action: Literal["updated", "unchanged"] = (
            "unchanged" if _hook_matches(found, body) else "updated"
        )
        objects.append(InstalledObject("webhook", hook.name, hook_id, action))
    triggers = client.list_triggers()
    for trigger in install.triggers:
        hook_id = webhook_ids[trigger.event]
        body = trigger.body(hook_id)
        existing = _by_name(triggers, trigger.name)
        if existing is None:
            made = client.create_trigger(body)
            objects.append(InstalledObject("trigger", trigger.name, str(made["id"]), "created"))
        elif trigger.matches(existing, hook_id):
            objects.append(
                InstalledObject("trigger", trigger.name, str(existing.get("id")), "unchanged")
            )
        else:
            client.update_trigger(str(existing.get("id")), body)
            objects.append(
                InstalledObject("trigger", trigger.name, str(existing.get("id")), "updated")
            )
    return ZammadInstallResult(
        webhook_ids=webhook_ids,
        secret=secret,
        secret_env=install.secret_env,
        generated=generated,
        objects=tuple(objects),
    )
