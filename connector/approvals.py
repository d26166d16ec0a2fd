"""Approval links: signed, expiring tokens naming one ticket and one amount.

The token is made with itsdangerous and the connector's own signing key
(``CARE_SECRET_KEY``, else a key generated once and kept in the database), so the embedded
default works with no set-up. Changing the amount makes a new token; the approval page
refuses a token whose amount is no longer the ticket's pending amount.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from connector.extension import ConnectorState
from connector.models import AppSecret, Ticket

SECRET_NAME = "approval-signing-key"
SALT = "care-connector.approval"


def signing_key(session: Session) -> str:
    """``CARE_SECRET_KEY``, else the stored key (made on first use)."""
    from_env = os.environ.get("CARE_SECRET_KEY", "")
    if from_env:
        return from_env
    row = session.get(AppSecret, SECRET_NAME)
    if row is None:
        row = AppSecret(name=SECRET_NAME, value=secrets.token_urlsafe(32))
        session.add(row)
        session.flush()
    return row.value


def serializer(session: Session) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_key(session), salt=SALT)


def make_token(session: Session, ticket: Ticket, amount: int) -> str:
    """A token for approving ``amount`` credits on ``ticket``."""
    return serializer(session).dumps({"ticket": ticket.id, "amount": amount})


def approval_link(st: ConnectorState, session: Session, ticket: Ticket, amount: int) -> str:
    """The link a customer opens to approve ``amount`` on ``ticket``."""
    base = st.settings.public_url or "http://127.0.0.1:5000"
    return f"{base}/approvals/{make_token(session, ticket, amount)}"


#: Longer than any token :func:`make_token` makes (about 100 characters); longer ones are
#: refused before any work is done on them.
MAX_TOKEN_CHARS = 512
# The alphabet of itsdangerous' URL-safe tokens: base64url and the "." separator.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True, slots=True)
class Claim:
    """What a genuine token says: approve ``amount`` credits on ticket row ``ticket_id``."""

    ticket_id: int
    amount: int


class LinkError(Exception):
    """An approval link the page refuses."""


class InvalidLinkError(LinkError):
    """Not a token this connector signed (tampered, truncated, junk, another key)."""


class ExpiredLinkError(LinkError):
    """A genuine token older than the link's lifetime.

    :param claim: what the token said (its signature is good), for the page's language.
    """

    def __init__(self, claim: Claim | None) -> None:
        super().__init__("the approval link has expired")
        self.claim = claim


def read_token(session: Session, token: str, max_age: int) -> Claim:
    """Check ``token``'s signature and age and return what it says.

    The age is measured on the wall clock (``time.time()``), the clock the token was signed
    with.

    :param max_age: the link's lifetime in seconds (``approval.link_ttl_days`` in days).
    :raises InvalidLinkError: a bad signature, a malformed token or payload.
    :raises ExpiredLinkError: a genuine token older than ``max_age`` seconds.
    """
    if len(token) > MAX_TOKEN_CHARS or not _TOKEN_CHARS.fullmatch(token):
        raise InvalidLinkError("not an approval token")
    signer = serializer(session)
    try:
        payload = signer.loads(token, max_age=max_age)
    except SignatureExpired as err:
        claim = None
        if err.payload is not None:
            # The signature was good, so the payload is ours; only its age is wrong.
            with contextlib.suppress(BadData):
                claim = _claim(signer.load_payload(err.payload))
        raise ExpiredLinkError(claim) from err
    except BadData as err:
        raise InvalidLinkError("bad signature") from err
    claim = _claim(payload)
    if claim is None:
        raise InvalidLinkError("unexpected payload")
    return claim


def _claim(payload: object) -> Claim | None:
    if not isinstance(payload, dict):
        return None
    ticket, amount = payload.get("ticket"), payload.get("amount")
    # ``type() is int``: a bool is an int subclass, and is no ticket id.
    if type(ticket) is not int or type(amount) is not int or ticket <= 0 or amount <= 0:
        return None
    return Claim(ticket_id=ticket, amount=amount)
