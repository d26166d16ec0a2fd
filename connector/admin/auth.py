"""Admin tokens: which named token (``[admin] tokens``) a presented secret is, and what it
may do now.

Shared by the JSON API (``Authorization: Bearer <token>``) and the pages' sign-in form. A
token is matched first, every configured token compared in constant time; its expiry and
scope are looked at only after the match (they are not secret: the config says them).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from connector.config import AdminSettings, AdminToken

__all__ = [
    "SAFE_METHODS",
    "Check",
    "Outcome",
    "bearer_token",
    "check_token",
    "expired_message",
    "read_only_message",
    "token_name",
]

#: The methods a ``read`` token may use: they change nothing.
SAFE_METHODS = frozenset({"GET", "HEAD"})


def token_name(tokens: Mapping[str, str], presented: str | None) -> str | None:
    """The name of the configured token equal to ``presented``, else ``None``.

    Every token is compared, in constant time (:func:`hmac.compare_digest`), whether or not an
    earlier one matched, so the time taken tells nothing about the tokens. With no token
    configured nothing matches.
    """
    if not presented:
        return None
    given = presented.encode("utf-8", "surrogateescape")
    found: str | None = None
    for name, value in tokens.items():
        if hmac.compare_digest(given, value.encode("utf-8", "surrogateescape")) and not found:
            found = name
    return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class Outcome(Enum):
    """What a presented token turned out to be."""

    VALID = "valid"
    #: No token is configured (or none has its variable set): nothing can match.
    NONE_CONFIGURED = "none configured"
    #: Missing, or equal to no configured token.
    UNKNOWN = "unknown"
    #: A configured token past its ``expires``.
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Check:
    """The result of :func:`check_token`: the outcome and, once matched, the token's name
    (the actor) and its scope and expiry."""

    outcome: Outcome
    name: str | None = None
    token: AdminToken | None = None

    @property
    def valid(self) -> bool:
        return self.outcome is Outcome.VALID

    def allows(self, method: str) -> bool:
        """Whether a valid token may use the HTTP ``method`` (``read``: GET and HEAD only)."""
        if not self.valid or self.token is None:
            return False
        return self.token.can_write or method.upper() in SAFE_METHODS


def check_token(admin: AdminSettings, presented: str | None, now: datetime) -> Check:
    """Match ``presented`` against the configured tokens (:func:`token_name`, constant time),
    then look at the matched token's expiry at ``now`` (the connector's clock)."""
    name = token_name(admin.tokens, presented)
    if name is None:
        return Check(Outcome.UNKNOWN if admin.tokens else Outcome.NONE_CONFIGURED)
    token = admin.token(name)
    if token.expired(now):
        return Check(Outcome.EXPIRED, name, token)
    return Check(Outcome.VALID, name, token)


def expired_message(name: str, token: AdminToken) -> str:
    """Why an expired token is refused, naming it and when it expired."""
    when = f" at {token.expires:%Y-%m-%d %H:%M} UTC" if token.expires is not None else ""
    return (
        f"The admin token {name!r} expired{when}: ask for a new token, or a later "
        f"expires in its [admin] tokens entry."
    )


def read_only_message(name: str) -> str:
    """Why a ``read`` token is refused a change."""
    return (
        f'The admin token {name!r} is read-only (scope "read"): it may look (GET), '
        "not change anything. Nothing was changed."
    )
