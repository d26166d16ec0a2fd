"""SSRF through a desk's base URL: the connector sends the desk's credentials to that URL,
so the configuration takes only https (plain http on loopback, or when a desk says
``options.allow_http = true``), no ``user:password@``, no query or fragment, and never a
link-local, multicast or unspecified address (the cloud metadata service). The clients call
nothing but their own desk, and credentials never follow a redirect to another host.
"""

from __future__ import annotations

import pytest
import responses

from adapters import ADAPTERS
from adapters.zendesk.client import ZendeskClient
from connector.config import ConfigError, load_settings
from tests.adapters.hostile import Desk, registered_desks


def load(url: str, **options: object) -> str:
    desk = {"adapter": "zendesk", "base_url": url, "options": dict(options)}
    return load_settings({"desks": {"d": desk}}, environ={}).desks["d"].base_url


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.zendesk.com",
        "https://acme.zendesk.com/",
        "https://10.0.0.5:8443/rt",  # an on-premises desk, over https
        "http://127.0.0.1:8080",  # a local desk, or a test double
        "http://127.8.9.10",
        "http://localhost:9000",
        "http://desk.localhost",
        "http://[::1]:8080",
    ],
)
def test_accepted_base_urls(url: str) -> None:
    assert load(url) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://acme.zendesk.com", "plain http"),
        ("http://10.0.0.5", "plain http"),
        ("https://bot:pw@acme.zendesk.com", "credentials"),
        ("https://acme.zendesk.com@evil.example", "credentials"),
        ("https://acme.zendesk.com/?next=x", "query"),
        ("https://acme.zendesk.com/#x", "fragment"),
        ("https://169.254.169.254", "link-local"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]", "link-local"),
        ("https://[::ffff:169.254.169.254]", "link-local"),
        ("https://0.0.0.0:8080", "unspecified"),
        ("https://224.0.0.1", "multicast"),
        ("ftp://acme.zendesk.com", "http(s) URL"),
        ("file:///etc/passwd", "http(s) URL"),
    ],
)
def test_refused_base_urls(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(url)
    assert "desks.d.base_url" in str(caught.value) and reason in str(caught.value)


def test_plain_http_to_a_named_host_when_the_desk_allows_it() -> None:
    assert load("http://rt.office.lan", allow_http=True) == "http://rt.office.lan"
    with pytest.raises(ConfigError, match="plain http"):
        load("http://rt.office.lan", allow_http="yes")  # only true itself
    with pytest.raises(ConfigError, match="link-local"):
        load("http://169.254.169.254", allow_http=True)


DESKS = registered_desks()


@pytest.mark.parametrize("desk", DESKS, ids=lambda d: d.key)
def test_clients_call_only_their_own_desk(desk: Desk) -> None:
    client = ADAPTERS[desk.key](desk.settings()).client()
    for foreign in (
        "https://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:5432/",
        client.base_url + ".evil.example/api",
        "//evil.example/api",
    ):
        if foreign.startswith("//"):
            # A path: it stays on the desk's host.
            assert client._url(foreign).startswith(client.base_url + "/")
            continue
        with pytest.raises(ValueError, match="refusing"):
            client._url(foreign)
    # Credentials travel only in Authorization, which requests drops on a redirect to
    # another host.
    assert set(client._headers) <= {"User-Agent", "Accept", "Authorization", "Content-Type"}


@responses.activate
def test_credentials_do_not_follow_a_redirect_to_another_host() -> None:
    settings = load_settings(
        {
            "desks": {
                "z": {
                    "adapter": "zendesk",
                    "base_url": "https://acme.zendesk.com",
                    "email": "bot@acme.example",
                    "token_env": "T",
                }
            }
        },
        environ={"T": "zendesk-api-token"},
    ).desks["z"]
    client = ZendeskClient(settings)
    responses.get(
        "https://acme.zendesk.com/api/v2/tickets/7",
        status=302,
        headers={"Location": "https://elsewhere.example/steal"},
    )
    responses.get("https://elsewhere.example/steal", json={"ticket": {"id": 7, "priority": None}})
    client.get_priority("7")
    first, second = (call.request for call in responses.calls)
    assert "Authorization" in first.headers
    assert second.url == "https://elsewhere.example/steal"
    assert "Authorization" not in second.headers
