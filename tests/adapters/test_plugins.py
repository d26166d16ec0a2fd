"""A third-party adapter package, found through the ``care_connector.adapters`` entry points
and used end to end without any change to ``connector/``."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters import ADAPTERS, load_adapters
from adapters.errors import AdapterRegistryError
from connector import create_app
from connector.models import Event
from connector.runner import drain

PLUGIN = '''
"""A tiny help desk for tests: JSON tickets, a shared-secret header, writes kept in memory."""

from __future__ import annotations

import hashlib
import json

from adapters.base import HelpdeskAdapter, HelpdeskClient, Requester
from adapters.errors import AnomalousPayloadError, MissingSecretError, SignatureError
from adapters.signing import compare
from rules.events import EventType, TicketEvent

SENT: list[tuple[str, str, object]] = []


class EchoClient(HelpdeskClient):
    def set_priority(self, ticket_id, value):
        SENT.append(("priority", ticket_id, value))

    def add_tags(self, ticket_id, tags):
        SENT.append(("tags", ticket_id, list(tags)))

    def remove_tags(self, ticket_id, tags):
        SENT.append(("remove_tags", ticket_id, list(tags)))

    def add_note(self, ticket_id, body, *, marker):
        SENT.append(("note", ticket_id, body))

    def add_reply(self, ticket_id, body, *, marker):
        SENT.append(("reply", ticket_id, body))

    def has_marker(self, ticket_id, marker):
        return any(marker in str(item[2]) for item in SENT)

    def get_requester(self, user_id):
        return None

    def get_priority(self, ticket_id):
        return None


class EchoAdapter(HelpdeskAdapter):
    key = "echo"
    display_name = "Echo Desk"
    event_types = {"created": EventType.TICKET_CREATED}

    def verify(self, headers, body, *, now):
        if not self.secrets:
            raise MissingSecretError("no secret", adapter=self.key)
        given = dict(headers.items()).get("X-Echo-Secret", "")
        if not any(compare(secret, given) for secret in self.secrets):
            raise SignatureError("bad secret", adapter=self.key)

    def delivery_key(self, headers, body):
        return hashlib.sha256(body).hexdigest()

    def parse(self, headers, body, *, delivery_key):
        try:
            data = json.loads(body)
            return [
                TicketEvent(
                    desk=self.desk.key,
                    delivery_key=delivery_key,
                    type=EventType.TICKET_CREATED,
                    ticket_id=str(data["id"]),
                    subject=data["subject"],
                    requester_email=data["email"],
                )
            ]
        except (ValueError, KeyError, TypeError) as err:
            raise AnomalousPayloadError(f"not an echo ticket: {err}", adapter=self.key) from err

    def client(self, session=None):
        return EchoClient(self.desk, session)

    def install_plan(self, public_url):
        raise ValueError("echo desks are configured by hand")

    def install(self, public_url, client=None):
        raise ValueError("echo desks are configured by hand")
'''


def install_plugin(site: Path, *, name: str = "echo") -> None:
    """Lay out a package and its dist-info as pip would, on a folder put on sys.path."""
    (site / "care_echo_desk").mkdir(parents=True)
    (site / "care_echo_desk" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "care_echo_desk-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: care-echo-desk\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[care_connector.adapters]\n{name} = care_echo_desk:EchoAdapter\n"
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    site = tmp_path / "site"
    site.mkdir()
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    sys.modules.pop("care_echo_desk", None)
    importlib.invalidate_caches()


def test_an_installed_plugin_is_used_end_to_end(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(site)
    importlib.invalidate_caches()
    assert "echo" in load_adapters() and "echo" not in ADAPTERS
    monkeypatch.setenv("CARE_ECHO_SECRET", "echo-secret")
    app = create_app(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'echo.sqlite3'}"},
            "desks": {
                "support": {
                    "adapter": "echo",
                    "base_url": "http://127.0.0.1:9",
                    "secret_env": ["CARE_ECHO_SECRET"],
                    "priority": {"kind": "field", "highest": "P1", "high": "P2", "regular": "P3"},
                }
            },
        }
    )
    st = app.extensions["care_connector"]
    st.clock = lambda: datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    body = json.dumps({"id": 7, "subject": "How to set up taxes?", "email": "x@shop.example"})
    client = app.test_client()
    refused = client.post(
        "/hooks/support",
        data=body,
        content_type="application/json",
        headers={"X-Echo-Secret": "no"},
    )
    assert refused.status_code == 401
    answer = client.post(
        "/hooks/support",
        data=body,
        content_type="application/json",
        headers={"X-Echo-Secret": "echo-secret"},
    )
    assert answer.status_code == 200 and answer.get_json() == {"status": "accepted"}
    drain(st)
    plugin: Any = sys.modules["care_echo_desk"]
    kinds = [kind for kind, _, _ in plugin.SENT]
    assert kinds == ["priority", "tags", "note"]
    assert plugin.SENT[0] == ("priority", "7", "P3")  # the desk's own value for "regular"
    assert "care_unknown_customer" in plugin.SENT[1][2]
    with st.database.transaction(read_only=True) as session:
        assert session.scalar(select(Event.status)) == "done"
    st.database.dispose()


def test_a_plugin_taking_a_built_in_key_is_refused(site: Path) -> None:
    install_plugin(site, name="zendesk")
    importlib.invalidate_caches()
    with pytest.raises(AdapterRegistryError, match="'zendesk'.*already registered"):
        load_adapters()
