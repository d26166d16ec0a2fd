"""``webhooks install`` for Freshdesk: a pure plan, and an idempotent executor.

Freshdesk has no webhook object: webhooks are the "Trigger Webhook" action of automation
rules (https://support.freshdesk.com/support/solutions/articles/132589). The installer creates
the connector's rules through the Automations API (``/api/v2/automations/{type}/rules``; type
1 runs on ticket creation, 4 on ticket updates), finds them again by name, and updates them in
place. With the desk option ``install = "manual"`` it calls nothing and prints the same rules
for an admin to create by hand (for accounts whose API key may not manage automations).

The rules, each posting the connector's own JSON body (:func:`rule_body`):

* *ticket created* (type 1), on every new ticket (a rule needs a condition: "priority is any
  of Low, Medium, High, Urgent" always holds);
* *customer reply* (type 4), performed by the requester, on "reply sent": approvals arrive
  this way. The connector never acts as a requester, so its own writes cannot fire it;
* *agent update* (type 4), performed by **every agent except the connector's API user**
  (``api_user_id``), on a reply, a status or priority change, a change of one of the desk's
  ``fields``, a deletion or a spam mark. This performer list is the loop guard: Freshdesk's
  placeholders name no "current user", so the body cannot tell the adapter who made a change
  and :meth:`~adapters.base.HelpdeskAdapter.is_own_event` has nothing to compare. The agent
  list is read at install time: **re-run the installer after adding agents**. Without
  ``api_user_id`` the rule is not installed (the connector's own replies would come back as
  agent replies).

Authentication: Freshdesk signs nothing, so each rule sends a shared secret in the header
``X-Care-Secret``; the adapter compares it with every configured secret. The first configured
secret is used; with none, a new one is generated and printed once for ``secret_env``.

Unverified against a primary source (Freshdesk's API reference was not available): the JSON of
the ``trigger_webhook`` action (``request_type``, ``url``, ``content_type``,
``content_layout``, ``content``, ``custom_headers``, as two public Freshdesk API clients send
it), and the event names ``reply_sent``, ``ticket_action`` ``delete``/``marked_spam`` and
custom-field events. A refusal by Freshdesk is reported with its answer; use
``install = "manual"`` then.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from adapters.base import DeskConfig, hook_endpoint, secret_env_name
from adapters.freshdesk.client import FreshdeskClient
from adapters.freshdesk.schemas import PRIORITIES, SECRET_HEADER

__all__ = [
    "ALWAYS",
    "FreshdeskInstallPlan",
    "FreshdeskInstallResult",
    "InstalledRule",
    "RulePlan",
    "execute",
    "plan",
    "rule_body",
]

Mode = Literal["api", "manual"]
RuleEvent = Literal["created", "reply", "updated"]
Performer = Literal["requester", "agents"]

#: Automation types: rules on ticket creation, rules on ticket updates.
ON_CREATE = 1
ON_UPDATE = 4

#: A condition every ticket meets (Freshdesk saves no rule without one).
ALWAYS: Mapping[str, Any] = {
    "name": "condition_set_1",
    "match_type": "all",
    "properties": [
        {
            "resource_type": "ticket",
            "field_name": "priority",
            "operator": "in",
            "value": sorted(PRIORITIES),
        }
    ],
}

_FIELD_RE = re.compile(r"cf_[A-Za-z0-9_]{1,64}")


def _placeholder(name: str) -> str:
    return "{{" + name + "}}"


def rule_body(desk: DeskConfig, event: RuleEvent) -> dict[str, Any]:
    """The JSON body of the connector's rule for ``event``, with Freshdesk placeholders.

    Read by :class:`~adapters.freshdesk.schemas.RuleBodySchema`; ``care_connector`` is the
    template's version. ``updated_at`` makes two updates of one ticket differ, since the
    delivery key is the body's SHA-256. Custom fields go by their API name
    (``cf_care_price``), one per entry of the desk's ``fields``.

    :raises ValueError: a configured field is not a Freshdesk custom field name (``cf_...``).
    """
    values: dict[str, str] = {}
    for name, api_name in desk.fields.items():
        text = str(api_name).strip()
        if not _FIELD_RE.fullmatch(text):
            raise ValueError(
                f"desk {desk.key!r}: fields.{name} must be a Freshdesk custom field name "
                f"(cf_...), got {api_name!r}"
            )
        values[text] = _placeholder(f"ticket.{text}")
    body: dict[str, Any] = {
        "care_connector": 1,
        "event": event,
        "triggered_event": _placeholder("triggered_event"),
        "ticket": {
            "id": _placeholder("ticket.id"),
            "subject": _placeholder("ticket.subject"),
            "description": _placeholder("ticket.description_text"),
            "status": _placeholder("ticket.status"),
            "status_id": _placeholder("ticket.status_id"),
            "priority": _placeholder("ticket.priority"),
            "priority_id": _placeholder("ticket.priority_id"),
            "tags": _placeholder("ticket.tags"),
            "created_at": _placeholder("ticket.created_on"),
            "updated_at": _placeholder("ticket.modified_on"),
            "source": _placeholder("ticket.source"),
            "fields": values,
        },
        "requester": {
            "id": _placeholder("ticket.requester.id"),
            "email": _placeholder("ticket.requester.email"),
            "name": _placeholder("ticket.requester.name"),
            "language": _placeholder("ticket.requester.language"),
        },
    }
    if event != "created":
        body["comment"] = {"body": _placeholder("ticket.latest_public_comment")}
    return body


@dataclass(frozen=True, slots=True)
class RulePlan:
    """One automation rule: found by ``name`` among the rules of its ``automation_type``."""

    automation_type: int
    name: str
    event: RuleEvent
    performer: Performer | None
    events: tuple[Mapping[str, Any], ...]
    content: Mapping[str, Any]

    def body(self, endpoint: str, secret: str, agent_ids: Sequence[int] = ()) -> dict[str, Any]:
        """The rule as ``POST``/``PUT .../rules`` take it."""
        rule: dict[str, Any] = {
            "name": self.name,
            "active": True,
            "conditions": [json.loads(json.dumps(ALWAYS))],
            "actions": [
                {
                    "field_name": "trigger_webhook",
                    "request_type": "POST",
                    "url": endpoint,
                    "content_type": "JSON",
                    "content_layout": "2",  # "advanced": the body below, not a field picker
                    "content": json.loads(json.dumps(self.content)),
                    "custom_headers": {SECRET_HEADER: secret},
                }
            ],
        }
        if self.automation_type == ON_UPDATE:
            if self.performer == "requester":
                rule["performer"] = {"type": 2}
            else:
                rule["performer"] = {"type": 1, "members": sorted(agent_ids)}
            rule["events"] = [dict(event) for event in self.events]
        return rule


def _performer(value: Any) -> Any:
    """A performer for comparison: members as sorted text, an empty member list dropped."""
    if not isinstance(value, Mapping):
        return value
    out = dict(value)
    members = out.pop("members", None)
    if isinstance(members, list) and members:
        out["members"] = sorted(str(member) for member in members)
    elif members:
        out["members"] = members
    return out


def _same(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a rule read from the API already is ``wanted`` (the position is the admin's)."""
    for key, value in wanted.items():
        found = existing.get(key)
        if key == "performer":
            found, value = _performer(found), _performer(value)
        if found != value:
            return False
    return True


@dataclass(frozen=True, slots=True)
class FreshdeskInstallPlan:
    """What ``webhooks install`` creates or updates on one Freshdesk desk."""

    desk: str
    endpoint: str
    mode: Mode
    rules: tuple[RulePlan, ...]
    secret_env: str
    api_user_id: str | None
    secret: str | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """One line per rule, then the warnings."""
        lines = []
        for rule in self.rules:
            who = {None: "", "requester": ", by the requester", "agents": ", by agents"}
            lines.append(
                f"rule {rule.name!r} (automation type {rule.automation_type}"
                f"{who[rule.performer]}): POST {self.endpoint}"
            )
        lines.extend(f"warning: {text}" for text in self.warnings)
        return lines

    def manual(self) -> list[str]:
        """The rules spelled out for an admin (Admin > Automations), secret not shown."""
        lines = [
            f"Create these automation rules in Freshdesk; each action is Trigger Webhook, "
            f"POST {self.endpoint}, encoding JSON, content Advanced, custom header "
            f"{SECRET_HEADER}: <the value of {self.secret_env}> (or Requires Authentication "
            "with that value as the password)."
        ]
        for rule in self.rules:
            kind = "Ticket creation" if rule.automation_type == ON_CREATE else "Ticket updates"
            lines.append(f"- {rule.name!r} ({kind})")
            if rule.performer == "requester":
                lines.append("  performed by: Requester")
            elif rule.performer == "agents":
                lines.append(f"  performed by: every agent except user {self.api_user_id}")
            if rule.events:
                lines.append("  events: " + json.dumps([dict(e) for e in rule.events]))
            lines.append("  content: " + json.dumps(rule.content, ensure_ascii=False))
        return lines


@dataclass(frozen=True, slots=True)
class InstalledRule:
    """One rule the executor dealt with."""

    name: str
    id: str
    action: Literal["created", "updated", "unchanged", "skipped"]


@dataclass(frozen=True, slots=True)
class FreshdeskInstallResult:
    """What :func:`execute` did.

    ``secret`` is a newly generated shared secret, which the operator must set in
    ``secret_env``; ``None`` when the desk's configured secret is the one in force.
    """

    secret: str | None
    secret_env: str
    objects: tuple[InstalledRule, ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """One line per rule, then what the operator must do."""
        lines = [
            f"{o.action} rule {o.name!r}" + (f" ({o.id})" if o.id else "") for o in self.objects
        ]
        lines.extend(self.notes)
        if self.secret:
            lines.append(
                f"set {self.secret_env}={self.secret} (the rules send it in {SECRET_HEADER})"
            )
        return lines


def _agent_events(desk: DeskConfig) -> tuple[Mapping[str, Any], ...]:
    events: list[Mapping[str, Any]] = [
        {"field_name": "reply_sent"},
        {"field_name": "status", "from": "--", "to": "--"},
        {"field_name": "priority", "from": "--", "to": "--"},
    ]
    events.extend(
        {"field_name": str(name).strip(), "from": "--", "to": "--"}
        for name in dict.fromkeys(desk.fields.values())
    )
    events.append({"field_name": "ticket_action", "value": "delete"})
    events.append({"field_name": "ticket_action", "value": "marked_spam"})
    return tuple(events)


def plan(public_url: str, desk: DeskConfig) -> FreshdeskInstallPlan:
    """What to install on ``desk`` so that it posts to ``<public_url>/hooks/<desk key>``.

    :raises ValueError: a bad URL, an unknown ``options.install``, or a field that is not a
        Freshdesk custom field name.
    """
    endpoint = hook_endpoint(public_url, desk.key)
    mode = str(desk.options.get("install", "api")).strip().lower()
    if mode not in ("api", "manual"):
        raise ValueError(
            f'desk {desk.key!r}: options.install must be "api" or "manual", got {mode!r}'
        )
    secret_env = secret_env_name(desk)
    api_user = (desk.api_user_id or "").strip() or None
    prefix = f"Care Connector ({desk.key})"
    rules = [
        RulePlan(ON_CREATE, f"{prefix}: ticket created", "created", None, (), {}),
        RulePlan(
            ON_UPDATE,
            f"{prefix}: customer reply",
            "reply",
            "requester",
            ({"field_name": "reply_sent"},),
            {},
        ),
    ]
    warnings: list[str] = []
    if api_user is None:
        warnings.append(
            "no api_user_id: the agent-update rule is not installed (its loop guard excludes "
            "the connector's own user); set api_user_id and run the installer again"
        )
    else:
        rules.append(
            RulePlan(
                ON_UPDATE, f"{prefix}: agent update", "updated", "agents", _agent_events(desk), {}
            )
        )
    built = tuple(replace(rule, content=rule_body(desk, rule.event)) for rule in rules)
    configured = next((s for s in desk.secrets if s), None)
    return FreshdeskInstallPlan(
        desk=desk.key,
        endpoint=endpoint,
        mode="manual" if mode == "manual" else "api",
        rules=built,
        secret_env=secret_env,
        api_user_id=api_user,
        secret=configured,
        warnings=tuple(warnings),
    )


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def execute(
    client: FreshdeskClient,
    install: FreshdeskInstallPlan,
    *,
    make_secret: Callable[[], str] = _new_secret,
) -> FreshdeskInstallResult:
    """Create or update what ``install`` describes; safe to run again (rules are found by
    name among their automation type's rules and updated in place, never duplicated).

    :param make_secret: the generator of a shared secret, when the desk has none.
    :raises HelpdeskAPIError: a call failed; what was done before stays done, and the next
        run picks up from there.
    """
    generated: str | None = None
    secret = install.secret
    if secret is None:
        secret = generated = make_secret()
    notes = [f"warning: {text}" for text in install.warnings]
    if install.mode == "manual":
        return FreshdeskInstallResult(
            secret=generated,
            secret_env=install.secret_env,
            notes=(*install.manual(), *notes),
        )
    agent_ids: list[int] = []
    if any(rule.performer == "agents" for rule in install.rules):
        own = install.api_user_id
        for agent in client.list_agents():
            ident = agent.get("id")
            if isinstance(ident, int) and not isinstance(ident, bool) and str(ident) != own:
                agent_ids.append(ident)
    existing: dict[int, list[dict[str, Any]]] = {}
    objects: list[InstalledRule] = []
    for rule in install.rules:
        if rule.performer == "agents" and not agent_ids:
            objects.append(InstalledRule(rule.name, "", "skipped"))
            notes.append(
                f"warning: {rule.name!r} not installed: no agent other than the API user "
                f"{install.api_user_id}"
            )
            continue
        if rule.automation_type not in existing:
            existing[rule.automation_type] = client.list_rules(rule.automation_type)
        wanted = rule.body(install.endpoint, secret, agent_ids)
        present = existing[rule.automation_type]
        found = next((item for item in present if item.get("name") == rule.name), None)
        if found is None:
            made = client.create_rule(rule.automation_type, wanted)
            objects.append(InstalledRule(rule.name, str(made["id"]), "created"))
        elif _same(found, wanted):
            objects.append(InstalledRule(rule.name, str(found.get("id")), "unchanged"))
        else:
            client.update_rule(rule.automation_type, str(found.get("id")), wanted)
            objects.append(InstalledRule(rule.name, str(found.get("id")), "updated"))
    return FreshdeskInstallResult(
        secret=generated, secret_env=install.secret_env, objects=tuple(objects), notes=tuple(notes)
    )
