"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from connector.config import default_policy
from rules.policy import Policy, Release


@pytest.fixture
def policy() -> Policy:
    """The built-in default policy (``connector/defaults.toml``), built once per process."""
    return default_policy()


@pytest.fixture
def releases(policy: Policy) -> tuple[Release, ...]:
    """The release list of the default policy: the shipped CS-Cart releases, oldest first."""
    return policy.releases
