"""Zammad: trigger webhooks in, REST write-back out."""

from __future__ import annotations

from adapters.zammad.adapter import ZammadAdapter
from adapters.zammad.client import ZammadClient

__all__ = ["ZammadAdapter", "ZammadClient"]
