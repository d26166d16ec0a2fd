"""Help Scout (Mailbox API 2.0): webhooks in, REST write-back out, priorities as tags."""

from __future__ import annotations

from adapters.helpscout.adapter import HelpScoutAdapter
from adapters.helpscout.client import HelpScoutClient

__all__ = ["HelpScoutAdapter", "HelpScoutClient"]
