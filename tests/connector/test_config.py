"""Configuration: defaults, the example file, merging, environment, discovery, errors."""

from __future__ import annotations

import csv
import dataclasses
import re
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest

from connector.config import (
    BUILTIN_ADAPTERS,
    ConfigError,
    PriorityMap,
    Settings,
    default_policy,
    default_settings,
    load_settings,
)
from rules.events import PriorityLevel
from rules.model import LicenseKind
from rules.policy import KeywordRule, LicenseGrant, Policy, Release

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
DEFAULTS = ROOT / "connector" / "defaults.toml"
RELEASES_CSV = ROOT / "connector" / "data" / "cscart-releases.csv"
ENV_NAMES = ("CARE_CONFIG", "CARE_DATABASE_URL", "CARE_PUBLIC_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No inherited CARE_* variables, and a working directory without a config.toml."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(config: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    return str(caught.value)


def detection_block(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.search(r"# --- detection \(begin\) ---\n.*# --- detection \(end\) ---", text, re.S)
    assert match is not None, f"{path.name} lost its detection markers"
    return match[0]


PLAN = {
    "key": "gold",
    "title": {"en": "Gold", "ru": "Золото"},
    "priority": "high",
    "first_reply_hours": 4,
}

# --------------------------------------------------------------------------------------------
# Defaults


def test_defaults_load_the_published_policy(tmp_path: Path) -> None:
    settings = load_settings(None)
    policy = settings.policy

    assert settings.source_path is None
    assert policy == default_policy()
    assert list(policy.plans) == ["vip", "standard", "free_period", "credits"]
    vip = policy.plan("vip")
    assert (vip.priority, vip.first_reply_hours, dict(vip.monthly_quota)) == (
        PriorityLevel.HIGHEST,
        2,
        {"modification": 7},
    )
    assert vip.covers == {"question", "configuration", "modification", "investigation", "upgrade"}
    assert (vip.title_en, vip.title_ru) == ("VIP Customer Care", "VIP-поддержка")
    assert policy.plan("free_period").covers == {"question", "configuration"}
    assert policy.plan("credits").covers == frozenset()
    assert list(policy.categories) == [
        "question",
        "configuration",
        "modification",
        "investigation",
        "upgrade",
    ]
    assert [c.credits for c in policy.categories.values()] == [5, 10, 20, 20, 20]
    assert policy.category("modification").engineer_priced
    assert policy.category("upgrade").priced_by_steps
    assert policy.category("upgrade").needs_upgrade_subscription
    assert not policy.category("question").approval
    assert policy.products["cs-cart"].grants == {
        LicenseKind.FIRST: LicenseGrant(credits=50),
        LicenseKind.ADDITIONAL: LicenseGrant(credits=30),
        LicenseKind.ADDITIONAL_STOREFRONT: LicenseGrant(credits=30),
    }
    assert policy.products["multi-vendor-plus"].grants[LicenseKind.FIRST].free_days == 90
    ultimate = policy.products["multi-vendor-ultimate"].grants[LicenseKind.FIRST]
    assert (ultimate.plan, ultimate.plan_years) == ("vip", 1)
    assert LicenseKind.ADDITIONAL_STOREFRONT not in policy.products["multi-vendor"].grants
    assert policy.calendar.zone == "Etc/GMT-4"
    assert policy.calendar.weekdays == {0, 1, 2, 3, 4}
    assert (policy.calendar.start, policy.calendar.end) == (time(9), time(18))
    assert policy.calendar.holidays == frozenset()
    assert (policy.upgrade.base, policy.upgrade.included_steps, policy.upgrade.per_step) == (
        20,
        2,
        5,
    )
    assert policy.approval.link_ttl_days == 14
    assert "согласен" in policy.approval.approve_words
    assert policy.tags.unknown_customer == "care_unknown_customer"
    assert policy.languages == ("en", "ru")
    assert (policy.fallback_plan, policy.free_period_plan, policy.free_category) == (
        "credits",
        "free_period",
        "question",
    )
    assert (policy.unknown_customer_charge, policy.unknown_customer_reply) == (False, False)
    assert 0 <= policy.detection.threshold <= 1
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/care-connector.sqlite3"
    assert settings.public_url == ""


def test_releases_are_the_shipped_csv_in_order(releases: tuple[Release, ...]) -> None:
    with RELEASES_CSV.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r.version for r in releases] == [row["version"] for row in rows]
    assert [r.service_pack for r in releases] == [row["is_service_pack"] == "true" for row in rows]
    assert Release("4.4.2.SP1", service_pack=True) in releases


def test_policy_fixture_is_the_default_policy(policy: Policy) -> None:
    assert policy is default_policy()
    assert default_settings().policy == policy


def test_settings_are_frozen() -> None:
    settings = default_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.database_url = "sqlite://"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.desks["zendesk"].base_url = "https://evil.example"  # type: ignore[misc]


def test_default_desks_one_per_builtin_adapter_without_secrets() -> None:
    desks = load_settings(None).desks
    assert {key: desk.base_url for key, desk in desks.items()} == {
        "zendesk": "https://example.zendesk.com",
        "freshdesk": "https://example.freshdesk.com",
        "zammad": "https://example.zammad.com",
        "helpscout": "https://api.helpscout.net",
        "rt": "http://127.0.0.1:8080",
    }
    assert set(desks) == set(BUILTIN_ADAPTERS)
    for key, desk in desks.items():
        assert desk.adapter == key
        assert desk.secrets == ()
        assert desk.mode == "live" and not desk.observe
        assert (desk.timeout, desk.max_attempts) == (10.0, 10)
    assert desks["zendesk"].priority == PriorityMap("field", "urgent", "high", "normal")
    assert desks["helpscout"].priority == PriorityMap(
        "tag", "care_priority_highest", "care_priority_high", ""
    )


def test_configured_desks_replace_the_default_desks() -> None:
    settings = load_settings({"desks": {"main": {"adapter": "rt", "base_url": "https://rt.x"}}})
    assert list(settings.desks) == ["main"]
    assert settings.desk("main").priority == PriorityMap("field", "90", "70", "50")


# --------------------------------------------------------------------------------------------
# The example file


def test_example_file_yields_the_default_policy() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.source_path == EXAMPLE
    assert settings.policy == default_policy()
    # Mapping equality ignores order; plan order is precedence, so compare it too.
    assert list(settings.policy.plans) == list(default_policy().plans)
    assert list(settings.policy.categories) == list(default_policy().categories)
    assert list(settings.policy.products) == list(default_policy().products)


def test_example_file_detection_block_is_a_copy_of_the_defaults() -> None:
    assert detection_block(EXAMPLE) == detection_block(DEFAULTS)


def test_example_file_desks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARE_ZENDESK_SECRET", "zs")
    monkeypatch.setenv("CARE_ZENDESK_TOKEN", "zt")
    desks = load_settings(str(EXAMPLE)).desks
    assert {"zendesk", "freshdesk", "zammad", "helpscout"} <= set(desks)
    assert [key for key, desk in desks.items() if desk.observe] == ["helpscout"]
    zendesk = desks["zendesk"]
    assert (zendesk.secrets, zendesk.token, zendesk.secret_env) == (
        ("zs",),
        "zt",
        ("CARE_ZENDESK_SECRET",),
    )
    assert desks["freshdesk"].secrets == ()
    assert desks["helpscout"].options == {"mailbox_id": 301234}


# --------------------------------------------------------------------------------------------
# Errors: each names the key, the value and the source

INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "zone",
        {"hours": {"zone": "Mars/Base"}},
        "config: hours.zone: unknown time zone 'Mars/Base' (a valid IANA zone, e.g. Etc/GMT-4)",
    ),
    ("day", {"hours": {"days": ["mon", "fun"]}}, "hours.days[1]: unknown day 'fun'"),
    ("no days", {"hours": {"days": []}}, "hours.days: must name at least one day"),
    ("time format", {"hours": {"start": "9am"}}, "hours.start: not a time '9am'"),
    ("start after end", {"hours": {"start": "19:00"}}, "hours.end: must be later than start"),
    ("holiday date", {"hours": {"holidays": ["2027-13-01"]}}, "hours.holidays[0]: not a date"),
    (
        "holiday country",
        {"hours": {"holiday_country": "XQ"}},
        "hours.holiday_country: unknown holiday country 'XQ'",
    ),
    (
        "subdivision",
        {"hours": {"holiday_country": "US", "holiday_subdivision": "ZZ"}},
        "hours.holiday_subdivision: unknown subdivision 'ZZ' of US",
    ),
    ("unknown top-level table", {"hourz": {}}, "hourz: unknown key (did you mean 'hours'?)"),
    ("unknown key", {"hours": {"zon": "UTC"}}, "hours.zon: unknown key (did you mean 'zone'?)"),
    (
        "plan priority",
        {"plans": [PLAN, {**PLAN, "key": "tin", "priority": "urgent"}]},
        "plans[1].priority: unknown priority 'urgent' (one of: highest, high, regular)",
    ),
    (
        "plan covers",
        {"plans": [{**PLAN, "covers": ["questoin"]}]},
        "plans[0].covers[0]: unknown category 'questoin'",
    ),
    (
        "plan quota key",
        {"plans": [{**PLAN, "monthly_quota": {"hugs": 1}}]},
        "plans[0].monthly_quota.hugs: unknown category 'hugs'",
    ),
    (
        "negative quota",
        {"plans": [{**PLAN, "monthly_quota": {"modification": -1}}]},
        "plans[0].monthly_quota.modification: must be >= 0 (got -1)",
    ),
    (
        "string for int",
        {"plans": [{**PLAN, "first_reply_hours": "2"}]},
        "plans[0].first_reply_hours: must be an integer (got '2')",
    ),
    ("bool for int", {"upgrade": {"base": True}}, "upgrade.base: must be an integer (got True)"),
    ("duplicate plan", {"plans": [PLAN, PLAN]}, "plans[1].key: plan 'gold' is defined twice"),
    ("plan missing key", {"plans": [{"title": PLAN["title"]}]}, "plans[0].key: missing"),
    (
        "fallback plan",
        {"policy": {"fallback_plan": "payg"}},
        "policy.fallback_plan: unknown plan 'payg'",
    ),
    (
        "default language",
        {"policy": {"default_language": "de"}},
        "policy.default_language: 'de' is not one of languages",
    ),
    (
        "product plan",
        {"products": {"cs-cart": {"first": {"plan": "gold", "plan_years": 1}}}},
        "products.cs-cart.first.plan: unknown plan 'gold'",
    ),
    (
        "grant kind",
        {"products": {"cs-cart": {"second": {"credits": 1}}}},
        "products.cs-cart.second: unknown key",
    ),
    (
        "negative credits",
        {"products": {"cs-cart": {"first": {"credits": -5}}}},
        "products.cs-cart.first.credits: must be >= 0 (got -5)",
    ),
    (
        "category credits",
        {"categories": [{"key": "q", "title": PLAN["title"], "credits": 1.5, "approval": False}]},
        "categories[0].credits: must be an integer (got 1.5)",
    ),
    (
        "category approval",
        {"categories": [{"key": "q", "title": PLAN["title"], "credits": 1, "approval": "no"}]},
        "categories[0].approval: must be true or false (got 'no')",
    ),
    (
        "release version",
        {"upgrade": {"extra_releases": [{"version": "v5"}]}},
        "upgrade.extra_releases[0].version: not a version 'v5'",
    ),
    (
        "duplicate release",
        {"upgrade": {"extra_releases": [{"version": "4.18.1"}]}},
        "upgrade.extra_releases[0].version: release '4.18.1' is already listed",
    ),
    (
        "priority kind",
        {"priorities": {"zendesk": {"kind": "colour"}}},
        "priorities.zendesk.kind: unknown kind 'colour' (field or tag)",
    ),
    (
        "threshold",
        {"detection": {"threshold": 1.5}},
        "detection.threshold: must be between 0 and 1 (got 1.5)",
    ),
    (
        "detection category",
        {"detection": {"rules": [{"category": "spam", "words": ["buy"]}]}},
        "detection.rules[0].category: unknown category 'spam'",
    ),
    (
        "detection weight",
        {"detection": {"rules": [{"category": "question", "weight": 0, "words": ["how"]}]}},
        "detection.rules[0].weight: must be > 0 (got 0)",
    ),
    (
        "detection empty word",
        {"detection": {"rules": [{"category": "question", "words": ["how", ""]}]}},
        "detection.rules[0].words[1]: must not be empty",
    ),
    (
        "desk adapter",
        {"desks": {"main": {"adapter": "jira", "base_url": "https://x.y"}}},
        "desks.main.adapter: unknown adapter 'jira'",
    ),
    (
        "desk url",
        {"desks": {"main": {"adapter": "zendesk", "base_url": "ftp://x.y"}}},
        "desks.main.base_url: not an http(s) URL: 'ftp://x.y'",
    ),
    (
        "desk mode",
        {"desks": {"main": {"adapter": "zendesk", "base_url": "https://x.y", "mode": "dry"}}},
        "desks.main.mode: unknown mode 'dry' (live or observe)",
    ),
    (
        "desk secret name",
        {"desks": {"m": {"adapter": "zendesk", "base_url": "https://x.y", "secret_env": ["a b"]}}},
        "desks.m.secret_env[0]: 'a b' is not an environment variable name",
    ),
    (
        "desk unknown key",
        {"desks": {"m": {"adapter": "zendesk", "base_url": "https://x.y", "subdomain": "a"}}},
        "desks.m.subdomain: unknown key",
    ),
    (
        "desk key",
        {"desks": {"Main Desk": {"adapter": "zendesk", "base_url": "https://x.y"}}},
        "desks.\"Main Desk\": invalid key 'Main Desk'",
    ),
    (
        "desk timeout",
        {"desks": {"m": {"adapter": "zendesk", "base_url": "https://x.y", "timeout": 0}}},
        "desks.m.timeout: must be > 0 (got 0)",
    ),
    (
        "desk priority",
        {"desks": {"m": {"adapter": "rt", "base_url": "https://x.y", "priority": {"kind": "x"}}}},
        "desks.m.priority.kind: unknown kind 'x'",
    ),
    ("table expected", {"hours": 5}, "hours: must be a table (got 5)"),
    ("approval url", {"approval": {"buy_credits_url": "shop"}}, "approval.buy_credits_url"),
    ("tag empty", {"tags": {"approved": ""}}, "tags.approved: must not be empty"),
]


@pytest.mark.parametrize(
    ("config", "fragment"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_config_names_the_key(config: dict[str, Any], fragment: str) -> None:
    message = errors_of(config)
    assert fragment in message
    assert "\n" not in message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"hours": {"zone": "Mars/Base", "days": ["fun"]}, "upgrade": {"base": -1}})
    assert [problem.split(": ")[1] for problem in caught.value.problems] == [
        "hours.zone",
        "hours.days[0]",
        "upgrade.base",
    ]


def test_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "care.toml", '[[plans]]\nkey = "vip"\npriority = 1\n')
    message = errors_of(path)
    assert message.startswith(f"{path}: plans[0].")
    assert f"{path}: plans[0].priority: must be a string (got 1)" in message


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.toml", '[hours]\nzone = "UTC"\nstart = \n')
    message = errors_of(str(path))
    assert message.startswith(f"{path}: invalid TOML:")
    assert "line 3" in message


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    assert (
        errors_of(tmp_path / "nowhere.toml")
        == f"{tmp_path / 'nowhere.toml'}: config file not found"
    )


def test_unknown_key_lists_the_allowed_keys_when_nothing_is_close() -> None:
    message = errors_of({"server": {"xyz": 1}})
    assert message == "config: server.xyz: unknown key (allowed: public_url)"


# --------------------------------------------------------------------------------------------
# Merging over the defaults


def test_tables_merge_key_by_key() -> None:
    policy = load_settings({"hours": {"zone": "Europe/Berlin"}, "upgrade": {"per_step": 7}}).policy
    assert policy.calendar.zone == "Europe/Berlin"
    assert policy.calendar.start == default_policy().calendar.start
    assert policy.calendar.weekdays == default_policy().calendar.weekdays
    assert (policy.upgrade.base, policy.upgrade.per_step) == (20, 7)


def test_named_tables_merge_and_extend() -> None:
    products = load_settings(
        {
            "products": {
                "cs-cart": {"title": "CS-Cart Pro"},
                "addon": {"title": "Add-on", "first": {"credits": 5}},
            }
        }
    ).policy.products
    assert products["cs-cart"].title == "CS-Cart Pro"
    assert products["cs-cart"].grants[LicenseKind.FIRST] == LicenseGrant(credits=50)
    assert products["addon"].grants == {LicenseKind.FIRST: LicenseGrant(credits=5)}
    assert len(products) == len(default_policy().products) + 1


def test_plans_and_categories_lists_replace_the_defaults() -> None:
    gold = {**PLAN, "covers": ["question"], "monthly_quota": {"question": 3}}
    grant = {"plan": "gold", "plan_years": 2}
    policy = load_settings(
        {
            "plans": [gold],
            "policy": {"fallback_plan": "gold", "free_period_plan": "gold"},
            "products": {"multi-vendor-ultimate": {"first": grant, "additional": grant}},
        }
    ).policy
    assert list(policy.plans) == ["gold"]
    assert policy.plan("gold").covers == {"question"}
    assert policy.plan("gold").monthly_quota == {"question": 3}
    assert not policy.plan("gold").senior_staff

    category = {"key": "question", "title": PLAN["title"], "credits": 2, "approval": False}
    with pytest.raises(ConfigError) as caught:
        load_settings({"categories": [category]})
    # The default plans still cover the categories that the new list dropped.
    assert "plans[0].covers[1]: unknown category 'configuration'" in str(caught.value)


def test_config_dict_is_not_modified() -> None:
    config = {"hours": {"zone": "UTC"}}
    load_settings(config)
    assert config == {"hours": {"zone": "UTC"}}


def test_toml_native_dates_and_times(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        '[hours]\nstart = 08:30:00\nend = "17:15"\nholidays = [2027-01-01, "2027-12-02"]\n',
    )
    calendar = load_settings(path).policy.calendar
    assert (calendar.start, calendar.end) == (time(8, 30), time(17, 15))
    assert calendar.holidays == {date(2027, 1, 1), date(2027, 12, 2)}


def test_days_map_to_weekday_numbers() -> None:
    calendar = load_settings({"hours": {"days": ["sun", "mon", "sat"]}}).policy.calendar
    assert calendar.weekdays == {6, 0, 5}


def test_extra_releases_are_appended_after_the_shipped_list(
    releases: tuple[Release, ...],
) -> None:
    extra = [{"version": "4.19.2"}, {"version": "4.19.2.SP1", "service_pack": True}]
    policy = load_settings({"upgrade": {"extra_releases": extra}}).policy
    assert policy.releases == (*releases, Release("4.19.2"), Release("4.19.2.SP1", True))


def test_extra_release_older_than_the_list_is_refused(releases: tuple[Release, ...]) -> None:
    message = errors_of({"upgrade": {"extra_releases": [{"version": "4.0.0"}]}})
    assert f"is not newer than '{releases[-1].version}'" in message


def test_detection_rules_become_one_keyword_rule_per_word() -> None:
    detection = {
        "threshold": 0.25,
        "rules": [
            {"category": "upgrade", "weight": 2, "words": ["upgrade", "обнов*"]},
            {"category": "question", "words": ["how to"]},
        ],
    }
    policy = load_settings({"detection": detection}).policy
    assert policy.detection.threshold == 0.25
    assert policy.detection.rules == (
        KeywordRule("upgrade", "upgrade", 2.0),
        KeywordRule("upgrade", "обнов*", 2.0),
        KeywordRule("question", "how to", 1.0),
    )


def test_holiday_country_adds_its_public_holidays() -> None:
    explicit = date(2030, 7, 15)
    config = {"hours": {"holiday_country": "AE", "holidays": [explicit.isoformat()]}}
    holidays = load_settings(config).policy.calendar.holidays
    assert date(2027, 1, 1) in holidays  # New Year's Day
    assert date(2027, 12, 2) in holidays  # UAE National Day
    assert date(2100, 12, 2) in holidays and date(2000, 12, 2) in holidays
    assert explicit in holidays
    assert date(2027, 1, 5) not in holidays


def test_holiday_subdivision_adds_local_holidays() -> None:
    national = load_settings({"hours": {"holiday_country": "US"}}).policy.calendar.holidays
    config = {"hours": {"holiday_country": "US", "holiday_subdivision": "MA"}}
    local = load_settings(config).policy.calendar.holidays
    assert date(2027, 7, 5) in national  # Independence Day observed (4 July is a Sunday)
    assert date(2027, 4, 19) in local - national  # Patriots' Day, Massachusetts only


# --------------------------------------------------------------------------------------------
# Desks


def test_desk_secrets_and_credentials_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEW_SECRET", "s-new")
    monkeypatch.setenv("FD_KEY", "k-123")
    monkeypatch.delenv("OLD_SECRET", raising=False)
    desk = load_settings(
        {
            "desks": {
                "fd": {
                    "adapter": "freshdesk",
                    "base_url": "https://acme.freshdesk.com/",
                    "secret_env": ["OLD_SECRET", "NEW_SECRET"],
                    "api_key_env": "FD_KEY",
                    "api_user_id": 80012345678,
                    "fields": {"category": 360001},
                    "max_attempts": 3,
                    "options": {"group_id": 7, "anything": ["goes"]},
                }
            }
        }
    ).desk("fd")
    assert desk.secrets == ("s-new",)
    assert desk.secret_env == ("OLD_SECRET", "NEW_SECRET")
    assert (desk.api_key_env, desk.api_key, desk.token) == ("FD_KEY", "k-123", "")
    assert desk.base_url == "https://acme.freshdesk.com"
    assert desk.api_user_id == "80012345678"
    assert desk.fields == {"category": "360001"}
    assert desk.max_attempts == 3
    assert desk.options == {"group_id": 7, "anything": ["goes"]}
    assert "s-new" not in repr(desk) and "k-123" not in repr(desk)


def test_a_single_secret_name_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZD_SECRET", "abc")
    desk = load_settings(
        {
            "desks": {
                "zd": {
                    "adapter": "zendesk",
                    "base_url": "https://a.zendesk.com",
                    "secret_env": "ZD_SECRET",
                }
            }
        }
    ).desk("zd")
    assert (desk.secret_env, desk.secrets) == (("ZD_SECRET",), ("abc",))


def test_desk_priority_override_merges_over_the_adapter_map() -> None:
    settings = load_settings(
        {
            "priorities": {"freshdesk": {"highest": 4, "high": 3, "regular": 1}},
            "desks": {
                "fd": {
                    "adapter": "freshdesk",
                    "base_url": "https://acme.freshdesk.com",
                    "priority": {"regular": 2},
                }
            },
        }
    )
    assert settings.priorities["freshdesk"] == PriorityMap("field", "4", "3", "1")
    assert settings.desk("fd").priority == PriorityMap("field", "4", "3", "2")
    assert settings.desk("fd").priority.value(PriorityLevel.HIGHEST) == "4"


def test_observe_mode() -> None:
    desk = load_settings(
        {"desks": {"z": {"adapter": "zammad", "base_url": "https://z.x", "mode": "observe"}}}
    ).desk("z")
    assert desk.observe and desk.mode == "observe"


# --------------------------------------------------------------------------------------------
# Environment and discovery


def test_database_url_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARE_DATABASE_URL", "postgresql+psycopg://care@db/care")
    settings = load_settings({"database": {"url": "sqlite:////var/care.db"}})
    assert settings.database_url == "postgresql+psycopg://care@db/care"


def test_database_url_from_the_file() -> None:
    settings = load_settings({"database": {"url": "sqlite:////var/care.db"}})
    assert settings.database_url == "sqlite:////var/care.db"


def test_empty_database_url_is_sqlite_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("CARE_DATABASE_URL", "")
    assert load_settings(None).database_url == f"sqlite:///{work.resolve()}/care-connector.sqlite3"


def test_bad_database_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "database.url: not a database URL: 'care.db'" in errors_of(
        {"database": {"url": "care.db"}}
    )
    monkeypatch.setenv("CARE_DATABASE_URL", "care.db")
    assert errors_of(None) == "CARE_DATABASE_URL: not a valid URL: 'care.db'"


def test_public_url_from_file_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"server": {"public_url": "https://care.example.com/"}}
    assert load_settings(config).public_url == "https://care.example.com"
    monkeypatch.setenv("CARE_PUBLIC_URL", "https://care.vendor.io/")
    assert load_settings(config).public_url == "https://care.vendor.io"
    monkeypatch.setenv("CARE_PUBLIC_URL", "care.vendor.io")
    assert errors_of(config) == "CARE_PUBLIC_URL: not a valid URL: 'care.vendor.io'"


def test_discovery_prefers_care_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    named = write(tmp_path / "named.toml", '[hours]\nzone = "Asia/Dubai"\n')
    write(tmp_path / "config.toml", '[hours]\nzone = "Europe/Berlin"\n')
    monkeypatch.setenv("CARE_CONFIG", str(named))
    settings = load_settings(None)
    assert (settings.source_path, settings.policy.calendar.zone) == (named, "Asia/Dubai")


def test_discovery_falls_back_to_local_config_toml(tmp_path: Path) -> None:
    write(tmp_path / "config.toml", '[hours]\nzone = "Europe/Berlin"\n')
    settings = load_settings(None)
    assert settings.source_path == Path("config.toml")
    assert settings.policy.calendar.zone == "Europe/Berlin"


def test_discovery_with_no_file_uses_the_defaults() -> None:
    settings = load_settings(None)
    assert isinstance(settings, Settings)
    assert settings.source_path is None
    assert settings.policy == default_policy()


def test_care_config_naming_a_missing_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CARE_CONFIG", str(tmp_path / "gone.toml"))
    write(tmp_path / "config.toml", "")
    assert (
        errors_of(None) == f"{tmp_path / 'gone.toml'}: config file not found (named by CARE_CONFIG)"
    )


def test_environ_argument_replaces_os_environ(tmp_path: Path) -> None:
    settings = load_settings(
        {"desks": {"z": {"adapter": "zendesk", "base_url": "https://z.x", "secret_env": ["S"]}}},
        environ={"S": "from-arg", "CARE_PUBLIC_URL": "https://c.x"},
    )
    assert settings.desk("z").secrets == ("from-arg",)
    assert settings.public_url == "https://c.x"


def test_an_extra_service_pack_without_its_flag_stops_start_up() -> None:
    bad = {"upgrade": {"extra_releases": [{"version": "4.19.1.SP1"}]}}
    with pytest.raises(ConfigError, match=r"upgrade\.extra_releases: .*4\.19\.1\.SP1"):
        load_settings(bad, environ={})


def test_a_misplaced_wildcard_in_a_keyword_stops_start_up() -> None:
    bad = {"detection": {"rules": [{"category": "question", "weight": 1.0, "words": ["*how"]}]}}
    with pytest.raises(ConfigError, match=r"detection: "):
        load_settings(bad, environ={})
