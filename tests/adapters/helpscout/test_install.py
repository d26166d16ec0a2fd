"""``webhooks install`` for Help Scout: the plan, and the executor that finds the webhook by its
URL and updates it (never a second one), with the loop guard on the connector's own user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses
from responses import matchers

from adapters.helpscout import HelpScoutAdapter, HelpScoutClient
from adapters.helpscout.install import MAX_SECRET, execute, plan
from adapters.helpscout.schemas import EVENT_TYPES
from tests.adapters.helpscout.support import API, TOKEN_URL, fixture, fixture_headers, make_desk

PUBLIC = "https://care.example.com"
URL = "https://care.example.com/hooks/helpscout"
EVENTS = [
    "convo.created",
    "convo.customer.reply.created",
    "convo.agent.reply.created",
    "convo.note.created",
    "convo.tags",
    "convo.status",
    "convo.custom-fields",
    "convo.deleted",
]


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.post(TOKEN_URL, json={"access_token": "tok", "expires_in": 172800})
        yield mock


@pytest.fixture
def client() -> HelpScoutClient:
    return HelpScoutClient(make_desk())


def _webhook(secret: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": URL,
        "events": EVENTS,
        "secret": secret,
        "payloadVersion": "V2",
        "label": "Care Connector (helpscout)",
        **extra,
    }


def _listing(*hooks: dict[str, Any], number: int = 1, total: int = 1) -> dict[str, Any]:
    return {
        "_embedded": {"webhooks": list(hooks)},
        "page": {"size": 50, "totalElements": len(hooks), "totalPages": total, "number": number},
    }


def _existing(webhook_id: int, url: str = URL, **extra: Any) -> dict[str, Any]:
    return {
        "id": webhook_id,
        "url": url,
        "state": "enabled",
        "events": ["convo.created"],
        "notification": False,
        "payloadVersion": "V2",
        "label": "old label",
        **extra,
    }


# --------------------------------------------------------------------------------------------
# The plan


def test_the_plan() -> None:
    install = plan(PUBLIC + "/", make_desk())
    assert install.url == URL
    assert list(install.events) == EVENTS == list(EVENT_TYPES)
    assert install.secret_env == "CARE_HELPSCOUT_SECRET"
    assert install.body("s") == _webhook("s")
    assert install.describe() == [
        f"webhook 'Care Connector (helpscout)': POST {URL} ({', '.join(EVENTS)})"
    ]


def test_the_webhook_gets_the_events_the_loop_guard_needs() -> None:
    # The connector's notes and replies come back as these events; the plan subscribes to
    # them only because is_own_event recognises the connector's user.
    events = plan(PUBLIC, make_desk()).events
    assert {"convo.note.created", "convo.agent.reply.created"} <= set(events)
    adapter = HelpScoutAdapter(make_desk())
    (own,) = adapter.parse(
        fixture_headers("convo_note_created.json"),
        fixture("convo_note_created.json"),
        delivery_key="k",
    )
    assert adapter.is_own_event(own)


def test_mailboxes_narrow_the_webhook() -> None:
    install = plan(PUBLIC, make_desk(options={"mailbox_ids": [85, "86"]}, key="hs-eu"))
    assert install.url == "https://care.example.com/hooks/hs-eu"
    assert install.body("s")["mailboxIds"] == [85, 86]
    assert install.describe()[0].startswith(
        "webhook 'Care Connector (hs-eu)': POST https://care.example.com/hooks/hs-eu "
        "(mailboxes 85, 86)"
    )


@pytest.mark.parametrize(
    ("overrides", "url", "words"),
    [
        ({}, "care.example.com", "not an http"),
        ({}, "ftp://care.example.com", "not an http"),
        ({}, "https://care example.com", "not an http"),
        ({"api_user_id": ""}, PUBLIC, "set api_user_id"),
        ({"api_user_id": "  "}, PUBLIC, "set api_user_id"),
        ({"secrets": ("x" * (MAX_SECRET + 1),)}, PUBLIC, "40 characters or less"),
        ({"options": {"mailbox_ids": ["support"]}}, PUBLIC, "options.mailbox_ids must be"),
        ({"options": {"mailbox_ids": [True]}}, PUBLIC, "options.mailbox_ids must be"),
    ],
)
def test_plan_refuses_bad_settings(overrides: dict[str, Any], url: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        plan(url, make_desk(**overrides))


def test_without_a_secret_variable_the_name_is_derived() -> None:
    assert plan(PUBLIC, make_desk(secret_env=(), key="hs-eu")).secret_env == "CARE_HS_EU_SECRET"


# --------------------------------------------------------------------------------------------
# The executor


def test_first_install_creates_the_webhook(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    install = plan(PUBLIC, make_desk())
    mocked.get(f"{API}/webhooks", json=_listing(_existing(7, url="https://other.example/hook")))
    mocked.post(
        f"{API}/webhooks",
        status=201,
        headers={"Resource-ID": "10", "Location": f"{API}/webhooks/10"},
        match=[matchers.json_params_matcher(_webhook("generated-secret-0123456789"))],
    )
    result = execute(client, install, make_secret=lambda: "generated-secret-0123456789")
    assert (result.webhook_id, result.action, result.generated) == ("10", "created", True)
    assert (result.secret, result.secret_env) == (
        "generated-secret-0123456789",
        "CARE_HELPSCOUT_SECRET",
    )
    assert [(c.request.method, c.request.url) for c in mocked.calls] == [
        ("POST", TOKEN_URL),
        ("GET", f"{API}/webhooks"),
        ("POST", f"{API}/webhooks"),
    ]
    assert result.describe() == [
        "created webhook 'Care Connector (helpscout)' (10)",
        "set CARE_HELPSCOUT_SECRET to generated-secret-0123456789 (a new signing secret: Help "
        "Scout does not show it again)",
    ]


def test_a_second_run_updates_the_same_webhook_with_the_configured_secret(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    install = plan(PUBLIC, make_desk())
    mocked.get(f"{API}/webhooks", json=_listing(_existing(10, url=URL + "/")))
    mocked.put(
        f"{API}/webhooks/10",
        status=204,
        match=[matchers.json_params_matcher(_webhook("s3cret-current"))],
    )
    result = execute(
        client, install, secret="s3cret-current", make_secret=lambda: pytest.fail("no new secret")
    )
    assert (result.webhook_id, result.action, result.generated) == ("10", "updated", False)
    assert result.secret == "s3cret-current"
    assert not any(
        c.request.method == "POST" and c.request.url == f"{API}/webhooks" for c in mocked.calls
    )
    assert result.describe() == [
        "updated webhook 'Care Connector (helpscout)' (10)",
        "signed with the secret already in CARE_HELPSCOUT_SECRET",
    ]


def test_the_webhook_is_found_on_a_later_page(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    install = plan(PUBLIC, make_desk())
    mocked.get(
        f"{API}/webhooks",
        json=_listing(_existing(1, url="https://a.example/x"), total=2),
        match=[matchers.query_param_matcher({})],
    )
    mocked.get(
        f"{API}/webhooks",
        json=_listing(_existing(12), number=2, total=2),
        match=[matchers.query_param_matcher({"page": "2"})],
    )
    mocked.put(f"{API}/webhooks/12", status=204)
    result = execute(client, install, secret="s3cret-current")
    assert (result.webhook_id, result.action) == ("12", "updated")


def test_duplicates_and_a_disabled_webhook_are_reported(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    install = plan(PUBLIC, make_desk())
    mocked.get(
        f"{API}/webhooks",
        json=_listing(_existing(10, state="disabled"), _existing(11), _existing(12)),
    )
    mocked.put(f"{API}/webhooks/10", status=204)
    result = execute(client, install, secret="s3cret-current")
    assert result.webhook_id == "10"
    assert result.warnings == (
        "webhook 10 was disabled by Help Scout (failed deliveries); check that it is enabled "
        "again",
        f"other webhooks post to {URL} too (11, 12): delete them, Help Scout would post each "
        "event more than once",
    )
    assert result.describe()[-1].startswith("warning: other webhooks post to")
    assert sum(c.request.method == "PUT" for c in mocked.calls) == 1


def test_an_update_without_a_configured_secret_sets_a_new_one(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    install = plan(PUBLIC, make_desk())
    mocked.get(f"{API}/webhooks", json=_listing(_existing(10)))
    mocked.put(
        f"{API}/webhooks/10", status=204, match=[matchers.json_params_matcher(_webhook("fresh"))]
    )
    result = execute(client, install, secret=None, make_secret=lambda: "fresh")
    assert (result.action, result.secret, result.generated) == ("updated", "fresh", True)


def test_the_generated_secret_fits_help_scout() -> None:
    from adapters.helpscout.install import _new_secret

    made = {_new_secret() for _ in range(20)}
    assert len(made) == 20
    assert all(len(secret) == MAX_SECRET for secret in made)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Location": f"{API}/webhooks/44"}, "44"),
        ({"Resource-ID": " 45 "}, "45"),
    ],
)
def test_the_new_id_is_read_from_the_headers(
    mocked: responses.RequestsMock,
    client: HelpScoutClient,
    headers: dict[str, str],
    expected: str,
) -> None:
    mocked.get(f"{API}/webhooks", json={"page": {"number": 1, "totalPages": 0}})
    mocked.post(f"{API}/webhooks", status=201, headers=headers)
    result = execute(client, plan(PUBLIC, make_desk()), secret="s3cret-current")
    assert result.webhook_id == expected


def test_a_create_answer_without_id_is_an_error(
    mocked: responses.RequestsMock, client: HelpScoutClient
) -> None:
    from adapters.errors import HelpdeskAPIError

    mocked.get(f"{API}/webhooks", json=_listing())
    mocked.post(f"{API}/webhooks", status=201)
    with pytest.raises(HelpdeskAPIError, match="names no webhook id"):
        execute(client, plan(PUBLIC, make_desk()), secret="s3cret-current")


def test_adapter_install_signs_with_the_desks_first_secret(mocked: responses.RequestsMock) -> None:
    adapter = HelpScoutAdapter(make_desk(secrets=("new-one", "old-one")))
    mocked.get(f"{API}/webhooks", json=_listing(_existing(10)))
    mocked.put(
        f"{API}/webhooks/10", status=204, match=[matchers.json_params_matcher(_webhook("new-one"))]
    )
    result = adapter.install(PUBLIC)
    assert (result.webhook_id, result.secret, result.generated) == ("10", "new-one", False)


def test_adapter_install_needs_a_help_scout_client() -> None:
    from adapters.base import HelpdeskClient

    class Other(HelpdeskClient):
        set_priority = add_tags = remove_tags = add_note = add_reply = None  # type: ignore[assignment]
        has_marker = get_requester = get_priority = None  # type: ignore[assignment]

    adapter = HelpScoutAdapter(make_desk())
    with pytest.raises(TypeError, match="needs a HelpScoutClient"):
        adapter.install(PUBLIC, Other(make_desk()))
