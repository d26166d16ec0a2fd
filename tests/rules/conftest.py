"""Shared fixtures for the rules tests: the shipped release list and price table."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import pytest

from rules.policy import CategoryPolicy, Policy, Release, UpgradePricing

_CONNECTOR = Path(__file__).resolve().parents[2] / "connector"


@pytest.fixture(scope="session")
def cscart_releases() -> tuple[Release, ...]:
    """The shipped release list, ``connector/data/cscart-releases.csv``, in file order."""
    with (_CONNECTOR / "data" / "cscart-releases.csv").open(newline="", encoding="utf-8") as f:
        return tuple(
            Release(row["version"], service_pack=row["is_service_pack"].strip() == "true")
            for row in csv.DictReader(f)
        )


@pytest.fixture(scope="session")
def shipped_pricing_policy(cscart_releases: tuple[Release, ...]) -> Policy:
    """A policy with the shipped categories, upgrade pricing and release list
    (``connector/defaults.toml``), read without the connector's config loader."""
    with (_CONNECTOR / "defaults.toml").open("rb") as f:
        data = tomllib.load(f)
    categories = {
        c["key"]: CategoryPolicy(
            key=c["key"],
            title_en=c["title"]["en"],
            title_ru=c["title"]["ru"],
            credits=c["credits"],
            approval=c["approval"],
            engineer_priced=c.get("engineer_priced", False),
            needs_upgrade_subscription=c.get("needs_upgrade_subscription", False),
            priced_by_steps=c.get("priced_by_steps", False),
        )
        for c in data["categories"]
    }
    upgrade = data["upgrade"]
    return Policy(
        plans={},
        products={},
        categories=categories,
        releases=cscart_releases,
        upgrade=UpgradePricing(
            base=upgrade["base"],
            included_steps=upgrade["included_steps"],
            per_step=upgrade["per_step"],
        ),
    )
