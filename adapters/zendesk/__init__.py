"""Zendesk Support: event subscriptions and trigger webhooks in, REST write-back out."""

from __future__ import annotations

from adapters.zendesk.adapter import ZendeskAdapter
from adapters.zendesk.client import ZendeskClient

__all__ = ["ZendeskAdapter", "ZendeskClient"]
