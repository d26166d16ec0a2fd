"""``webhooks install`` for Help Scout: a pure plan, and an idempotent executor.

One webhook (``POST /v2/webhooks``, https://developer.helpscout.com/mailbox-api/endpoints/
webhooks/create) posting the ``convo.*`` events the adapter handles to
``<public_url>/hooks/<desk key>``, with ``payloadVersion`` ``V2`` (the adapter reads v2
conversation objects only) and a ``secret`` Help Scout signs each delivery with.

Idempotence: webhooks have no name to find them by, so the executor lists them
(``GET /v2/webhooks``) and updates (``PUT /v2/webhooks/{id}``) the one posting to our URL;
only when there is none does it create one. Help Scout never shows the secret back, so an
update always sends it: the desk's first configured secret when there is one (nothing to
change on the connector's side), else a new one the operator must set (a rotation: list the
new secret's variable first, keep the old one until the new signatures arrive).

Subscriptions cannot be filtered by author, so every note, reply and tag the connector writes
comes back; the loop guard is :meth:`~adapters.helpscout.adapter.HelpScoutAdapter.is_own_event`,
which recognises the connector's own user (``api_user_id``) as the thread's ``createdBy``. The
plan therefore refuses a desk without ``api_user_id``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from adapters.base import DeskConfig, hook_endpoint, secret_env_name
from adapters.helpscout.client import HelpScoutClient
from adapters.helpscout.schemas import EVENT_TYPES

__all__ = [
    "MAX_SECRET",
    "HelpScoutInstallPlan",
    "HelpScoutInstallResult",
    "execute",
    "plan",
]

#: Help Scout takes "a randomly-generated string of 40 characters or less".
MAX_SECRET = 40

_ID_RE = re.compile(r"[0-9]{1,20}")


def _same_url(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.strip().rstrip("/") == b.rstrip("/")


@dataclass(frozen=True, slots=True)
class HelpScoutInstallPlan:
    """What ``webhooks install`` creates or updates on one Help Scout account."""

    desk: str
    url: str
    events: tuple[str, ...]
    label: str
    secret_env: str
    mailbox_ids: tuple[int, ...] = ()

    def body(self, secret: str) -> dict[str, Any]:
        """The webhook of ``POST``/``PUT /v2/webhooks``, signed with ``secret``."""
        webhook: dict[str, Any] = {
            "url": self.url,
            "events": list(self.events),
            "secret": secret,
            "payloadVersion": "V2",
            "label": self.label,
        }
        if self.mailbox_ids:
            webhook["mailboxIds"] = list(self.mailbox_ids)
        return webhook

    def describe(self) -> list[str]:
        """One line for the webhook."""
        where = f" (mailboxes {', '.join(map(str, self.mailbox_ids))})" if self.mailbox_ids else ""
        return [f"webhook {self.label!r}: POST {self.url}{where} ({', '.join(self.events)})"]


@dataclass(frozen=True, slots=True)
class HelpScoutInstallResult:
    """What :func:`execute` did; ``secret`` is the secret Help Scout now signs with."""

    webhook_id: str
    action: Literal["created", "updated"]
    label: str
    secret: str
    secret_env: str
    generated: bool
    warnings: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """What was done, and what the operator must do about the secret."""
        lines = [f"{self.action} webhook {self.label!r} ({self.webhook_id})"]
        if self.generated:
            lines.append(
                f"set {self.secret_env} to {self.secret} (a new signing secret: Help Scout "
                "does not show it again)"
            )
        else:
            lines.append(f"signed with the secret already in {self.secret_env}")
        lines.extend(f"warning: {text}" for text in self.warnings)
        return lines


def _mailboxes(desk: DeskConfig) -> tuple[int, ...]:
    raw = desk.options.get("mailbox_ids", ())
    values = raw if isinstance(raw, list | tuple) else [raw]
    out: list[int] = []
    for value in values:
        text = str(value).strip()
        if isinstance(value, bool) or not _ID_RE.fullmatch(text):
            raise ValueError(
                f"desk {desk.key!r}: options.mailbox_ids must be Help Scout mailbox ids "
                f"(numbers), got {value!r}"
            )
        out.append(int(text))
    return tuple(out)


def plan(public_url: str, desk: DeskConfig) -> HelpScoutInstallPlan:
    """What to install on ``desk`` so that it posts to ``<public_url>/hooks/<desk key>``.

    :raises ValueError: a bad URL or ``options.mailbox_ids``, a configured secret longer
        than Help Scout takes, or no ``api_user_id`` (the loop guard needs it).
    """
    url = hook_endpoint(public_url, desk.key)
    if not (desk.api_user_id or "").strip():
        raise ValueError(
            f"desk {desk.key!r}: Help Scout webhooks cannot be filtered, so every note and "
            "reply of the connector comes back; set api_user_id to the Help Scout user of the "
            "connector's OAuth app so that they are recognised"
        )
    long = next((s for s in desk.secrets if len(s) > MAX_SECRET), None)
    if long is not None:
        raise ValueError(
            f"desk {desk.key!r}: Help Scout takes webhook secrets of {MAX_SECRET} characters or "
            f"less; the configured one has {len(long)}"
        )
    secret_env = secret_env_name(desk)
    return HelpScoutInstallPlan(
        desk=desk.key,
        url=url,
        events=tuple(EVENT_TYPES),
        label=f"Care Connector ({desk.key})",
        secret_env=secret_env,
        mailbox_ids=_mailboxes(desk),
    )


def _new_secret() -> str:
    return secrets.token_urlsafe(30)  # 40 characters


def execute(
    client: HelpScoutClient,
    install: HelpScoutInstallPlan,
    *,
    secret: str | None = None,
    make_secret: Callable[[], str] = _new_secret,
) -> HelpScoutInstallResult:
    """Create or update the webhook ``install`` describes; safe to run again (the webhook is
    found by its URL and updated, never duplicated).

    :param secret: the secret to sign with (the desk's configured one); ``None``: a new one.
    :param make_secret: the generator of a new secret.
    :raises HelpdeskAPIError: a call failed; nothing was changed by the failed call.
    """
    generated = not secret
    signing = secret if secret else make_secret()
    body = install.body(signing)
    existing: Sequence[Mapping[str, Any]] = [
        hook for hook in client.list_webhooks() if _same_url(hook.get("url"), install.url)
    ]
    warnings: list[str] = []
    if not existing:
        webhook_id = client.create_webhook(body)
        action: Literal["created", "updated"] = "created"
    else:
        first = existing[0]
        webhook_id = str(first.get("id"))
        client.update_webhook(webhook_id, body)
        action = "updated"
        if str(first.get("state", "enabled")).lower() == "disabled":
            warnings.append(
                f"webhook {webhook_id} was disabled by Help Scout (failed deliveries); check "
                "that it is enabled again"
            )
        others = [str(hook.get("id")) for hook in existing[1:]]
        if others:
            warnings.append(
                f"other webhooks post to {install.url} too ({', '.join(others)}): delete them, "
                "Help Scout would post each event more than once"
            )
    return HelpScoutInstallResult(
        webhook_id=webhook_id,
        action=action,
        label=install.label,
        secret=signing,
        secret_env=install.secret_env,
        generated=generated,
        warnings=tuple(warnings),
    )
