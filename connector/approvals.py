"""Approval links: signed, expiring tokens naming one ticket and one amount.

The token is made with itsdangerous and the connector's own signing key
(``CARE_SECRET_KEY``, else a key generated once and kept in the database), so the embedded
default works with no set-up. Changing the amount makes a new token; the approval page
refuses a token whose amount is no longer the ticket's pending amount.
"""

from __future__ import annotations

import os
import secrets

from itsdangerous import URLSafeTimedSerializer
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
