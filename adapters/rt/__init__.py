"""Request Tracker 5: the connector's scrip in, REST 2.0 write-back out."""

from __future__ import annotations

from adapters.rt.adapter import RTAdapter
from adapters.rt.client import RTClient

__all__ = ["RTAdapter", "RTClient"]
