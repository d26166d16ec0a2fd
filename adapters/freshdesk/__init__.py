"""Freshdesk: automation-rule webhooks in (shared secret), REST API v2 write-back out."""

from __future__ import annotations

from adapters.freshdesk.adapter import FreshdeskAdapter
from adapters.freshdesk.client import FreshdeskClient

__all__ = ["FreshdeskAdapter", "FreshdeskClient"]
