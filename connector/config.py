"""Configuration: a TOML file merged over the built-in defaults, validated once.

The connector's settings come from one TOML file read with :mod:`tomllib` and merged over
``connector/defaults.toml`` (tables merged key by key, lists and scalars replaced). The merged
document is validated once with marshmallow and turned into a frozen :class:`Settings`; nothing
is read at import time. An invalid document raises :class:`ConfigError`, whose one-line message
names the file, the dotted key (``plans[1].priority``) and the bad value.

Environment: ``CARE_CONFIG`` (the file, when :func:`load_settings` gets ``None``),
``CARE_DATABASE_URL`` and ``CARE_PUBLIC_URL`` (win over ``[database] url`` and
``[server] public_url``), ``CARE_LOG_FORMAT`` and ``CARE_LOG_LEVEL`` (over ``[logging]``), and
the variables a desk (or ``[metrics] token_env``) names for its secrets.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from importlib import metadata, resources
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from rules.detection import validate_detection
from rules.events import PriorityLevel
from rules.model import LicenseKind
from rules.policy import (
    ApprovalPolicy,
    BusinessCalendar,
    CategoryPolicy,
    DetectionPolicy,
    KeywordRule,
    LicenseGrant,
    PlanPolicy,
    Policy,
    ProductPolicy,
    Release,
    TagPolicy,
    UpgradePricing,
)
from rules.priorities import PriorityMap
from rules.releases import ReleaseError, ReleaseIndex

__all__ = [
    "ADMIN_SCOPES",
    "AdminSettings",
    "AdminToken",
    "BUILTIN_ADAPTERS",
    "ConfigError",
    "DeskSettings",
    "HealthSettings",
    "JobSettings",
    "LogSettings",
    "MetricsSettings",
    "OutboxSettings",
    "PriorityMap",
    "Settings",
    "default_policy",
    "default_settings",
    "load_settings",
]

#: Environment variables read by :func:`load_settings`.
ENV_CONFIG = "CARE_CONFIG"
ENV_DATABASE_URL = "CARE_DATABASE_URL"
ENV_PUBLIC_URL = "CARE_PUBLIC_URL"
ENV_LOG_FORMAT = "CARE_LOG_FORMAT"
ENV_LOG_LEVEL = "CARE_LOG_LEVEL"

#: The background processes that record heartbeats (``[health] expect``).
HEARTBEAT_KINDS = ("worker", "outbox", "scheduler")
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: The adapters shipped with the connector, and the desk each gets when no desk is configured.
BUILTIN_ADAPTERS: Mapping[str, str] = {
    "zendesk": "https://example.zendesk.com",
    "freshdesk": "https://example.freshdesk.com",
    "zammad": "https://example.zammad.com",
    "helpscout": "https://api.helpscout.net",
    "rt": "http://127.0.0.1:8080",
}

#: Entry-point group where plugin adapters register (see ``adapters/``).
ADAPTER_ENTRY_POINTS = "care_connector.adapters"

#: What an admin token may do: ``read`` (GET and HEAD only) or ``write`` (everything).
ADMIN_SCOPES = ("read", "write")
#: The largest body the admin API reads (``[admin] max_body_bytes``'s default): 16 MiB.
DEFAULT_ADMIN_MAX_BODY_BYTES = 16 * 1024 * 1024

#: Languages the connector has message texts for.
SUPPORTED_LANGUAGES = ("en", "ru")

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOLIDAY_YEARS = range(2000, 2101)
_SQLITE_FILE = "care-connector.sqlite3"

_KEY_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VERSION_RE = re.compile(r"\d+(\.\d+)+(\.SP\d+)?")
_HHMM_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_HTTP_URL_RE = re.compile(r"https?://[^\s/?#]+(:\d+)?(/[^\s]*)?")
_DB_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


class ConfigError(Exception):
    """The configuration is invalid; the message names the file, the key and the value.

    :param problems: every problem found, each ``"<file>: <key>: <message>"``.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


# --------------------------------------------------------------------------------------------
# Settings objects


@dataclass(frozen=True, slots=True)
class DeskSettings:
    """One configured help-desk account (``[desks.<key>]``).

    Credentials are read from the environment variables the section names, once, at load:
    ``secrets`` holds the webhook secrets found (several during a rotation; empty means every
    delivery is refused), ``secret_env`` the variable names, for messages. Resolved values are
    kept out of ``repr``.

    :param api_user_id: the connector's own user in the desk; its events are ignored.
    :param fields: logical name -> the desk's field id (``{"category": "360001"}``).
    :param options: desk-specific extra keys from ``[desks.<key>.options]``.
    """

    key: str
    adapter: str
    base_url: str
    priority: PriorityMap
    mode: Literal["live", "observe"] = "live"
    secret_env: tuple[str, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)
    email: str = ""
    username: str = ""
    token_env: str = ""
    api_key_env: str = ""
    client_id_env: str = ""
    client_secret_env: str = ""
    password_env: str = ""
    token: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)
    client_id: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    api_user_id: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    max_attempts: int = 10
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def observe(self) -> bool:
        """Observe mode: decisions and internal notes only, no charges, no public replies."""
        return self.mode == "observe"


@dataclass(frozen=True, slots=True)
class JobSettings:
    """``[jobs]``: when the scheduled jobs run and what they keep (defaults as shipped).

    Times are wall-clock times in the support zone. ``catch_up_periods`` bounds how many
    missed monthly resets are opened at start; ``notice_desk`` empty means the desk of the
    customer's latest ticket, else the first desk.
    """

    tick_seconds: int = 60
    catch_up_periods: int = 12
    quota_reset_day: int = 1
    quota_reset_time: time = time(0, 0)
    expiry_reminder_time: time = time(10, 0)
    notice_desk: str = ""
    approval_reminder_minutes: int = 60
    sla_watch_minutes: int = 5
    sla_warn_business_hours: float = 1.0
    sla_warn_tag: str = "care_sla_warning"
    sla_breach_tag: str = "care_sla_breached"
    retention_time: time = time(3, 0)
    retention_days: int = 30
    batch_size: int = 1000


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """``[health]``: what ``GET /healthz`` expects of the background processes.

    Each process kind records a heartbeat every ``heartbeat_seconds``; a kind in ``expect``
    whose latest heartbeat is missing or older than ``max_heartbeat_age`` seconds fails the
    check (503).
    """

    expect: tuple[str, ...] = HEARTBEAT_KINDS
    max_heartbeat_age: int = 300
    heartbeat_seconds: int = 15


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``[metrics]``: who may read ``GET /metrics`` (open to all by default).

    ``allow``: client networks (empty: any); ``token``: the bearer token read from the
    variable ``token_env`` (empty: none asked). Both apply when both are set.
    """

    enabled: bool = True
    allow: tuple[IPv4Network | IPv6Network, ...] = ()
    token_env: str = ""
    token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class LogSettings:
    """``[logging]``: ``json`` (one object per line) or ``text``, and the level; the variables
    ``CARE_LOG_FORMAT`` and ``CARE_LOG_LEVEL`` win over the file."""

    format: str = "text"
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class AdminToken:
    """One ``[admin] tokens`` entry, without its value: its variable, scope and expiry.

    :param scope: ``write`` (everything) or ``read`` (GET and HEAD only).
    :param expires: the first instant (UTC) the token no longer works, or ``None`` (never).
        A date in the config means the token works through the end of that day UTC:
        ``expires = 2027-03-01`` stops it at ``2027-03-02T00:00:00Z``.
    """

    env: str
    scope: str = "write"
    expires: datetime | None = None

    @property
    def can_write(self) -> bool:
        """Whether the token may change anything (scope ``write``)."""
        return self.scope == "write"

    def expired(self, now: datetime) -> bool:
        """Whether the token no longer works at ``now`` (timezone-aware)."""
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """``[admin]``: the admin console's bearer tokens, by name, and the API's body cap.

    ``token_env`` maps each token's name (recorded as the actor of every change made with
    it) to the environment variable holding it; ``tokens`` maps the names whose variable is
    set to the value, kept out of ``repr``; ``access`` holds each name's scope and expiry.
    No token set: every admin request is refused. ``max_body_bytes``: the largest request
    body the admin API reads (a larger one is refused, 413, before it is read whole).
    """

    token_env: Mapping[str, str] = field(default_factory=dict)
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    access: Mapping[str, AdminToken] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_ADMIN_MAX_BODY_BYTES

    def token(self, name: str) -> AdminToken:
        """The scope and expiry of the token named ``name`` (``write``, no expiry when the
        name has no entry in ``access``)."""
        return self.access.get(name) or AdminToken(env=self.token_env.get(name, ""))


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """``[outbox]``: how write-backs are retried and when a claim counts as abandoned.

    A failed send waits between half and all of ``retry_base_seconds * 2 ** (attempts - 1)``
    (at most ``retry_cap_seconds``, never less than the desk's ``Retry-After``); a row
    claimed more than ``lease_seconds`` ago by a worker that stopped renewing it is taken
    back as an unclear failure.
    """

    lease_seconds: float = 300.0
    retry_base_seconds: float = 1.0
    retry_cap_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class Settings:
    """The validated configuration.

    :param source_path: the TOML file used, or ``None`` (a dict, or the defaults only).
    :param priorities: ``[priorities.<adapter>]``; each desk's merged map is on the desk.
    """

    policy: Policy
    database_url: str = field(repr=False)  # may hold a password
    public_url: str = ""
    desks: Mapping[str, DeskSettings] = field(default_factory=dict)
    priorities: Mapping[str, PriorityMap] = field(default_factory=dict)
    source_path: Path | None = None
    #: False when no ``[desks.*]`` is configured and the built-in default desks are used.
    desks_configured: bool = True
    jobs: JobSettings = field(default_factory=JobSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    logging: LogSettings = field(default_factory=LogSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)

    def desk(self, key: str) -> DeskSettings:
        """The desk configured under ``key``; :class:`KeyError` when there is none."""
        return self.desks[key]


# --------------------------------------------------------------------------------------------
# Fields: strict types (TOML has them; "5" is not a number and true is not 1)


class _Int(fields.Integer):
    default_error_messages = {"invalid": "must be an integer"}

    def __init__(self, *, minimum: int | None = 0, **kwargs: Any) -> None:
        validators = (
            [] if minimum is None else [validate.Range(min=minimum, error="must be >= {min}")]
        )
        super().__init__(strict=True, validate=validators, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return int(value)


class _Float(fields.Float):
    default_error_messages = {"invalid": "must be a number"}

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return float(value)


class _Bool(fields.Boolean):
    default_error_messages = {"invalid": "must be true or false"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class _Str(fields.String):
    """A string; ``ints=True`` also takes an integer and keeps it as text (``4`` -> ``"4"``)."""

    default_error_messages = {"invalid": "must be a string"}

    def __init__(self, *, ints: bool = False, nonempty: bool = False, **kwargs: Any) -> None:
        self._ints = ints
        if nonempty:
            kwargs["validate"] = [validate.Length(min=1, error="must not be empty")]
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if self._ints and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return value


class _Key(_Str):
    """An identifier used in tags, URLs and references: lower case, digits, ``_`` and ``-``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not _KEY_RE.fullmatch(text):
            raise ValidationError(f"invalid key {text!r} (lower-case letters, digits, '_' and '-')")
        return text


class _EnvName(_Str):
    """The NAME of an environment variable (the value is read at load, never written here)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text and not _ENV_NAME_RE.fullmatch(text):
            raise ValidationError(
                f"{_name_shown(text)} is not an environment variable name "
                "(e.g. CARE_ZENDESK_SECRET)"
            )
        return text


def _name_shown(text: str) -> str:
    """A would-be variable name as a message quotes it: whole when short; cut when long, for
    a long one is most likely the secret itself, pasted where its variable's name goes."""
    if len(text) <= 16:
        return repr(text)
    return f"{text[:3]!r}... ({len(text)} characters, not shown)"


class _Url(_Str):
    """An http(s) URL; ``blank=True`` also takes ``""`` (not set)."""

    def __init__(self, *, blank: bool = False, **kwargs: Any) -> None:
        self._blank = blank
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text == "" and self._blank:
            return text
        if not _HTTP_URL_RE.fullmatch(text):
            raise ValidationError(f"not an http(s) URL: {text!r} (e.g. https://example.com)")
        return text.rstrip("/")


class _Zone(_Str):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(
                f"unknown time zone {text!r} (a valid IANA zone, e.g. Etc/GMT-4)"
            ) from None
        return text


class _ClockTime(fields.Field):
    """``"HH:MM"`` (or a TOML local time) -> :class:`datetime.time`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> time:
        if isinstance(value, time):
            return value
        if isinstance(value, str) and (match := _HHMM_RE.fullmatch(value)):
            return time(int(match[1]), int(match[2]))
        raise ValidationError(f'not a time {value!r} ("HH:MM", e.g. "09:00")')


class _Day(fields.Field):
    """An ISO date ``"2027-01-01"`` (or a TOML date) -> :class:`datetime.date`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise ValidationError(f'not a date {value!r} (ISO, e.g. "2027-01-01")')


class _List(fields.List):
    """A list; a bare string is refused (it would otherwise be read letter by letter)."""

    default_error_messages = {"invalid": "must be a list"}


class _Table(fields.Field):
    """A table keyed by name: of tables (``[products.<key>]``, ``[desks.<key>]``: a schema) or
    of values (``monthly_quota``: a field). Keys are checked with ``keys`` (default: a
    :class:`_Key`).

    Errors are keyed by the table's own keys so that they read ``desks.zendesk.base_url``
    (marshmallow's ``fields.Dict`` would insert ``value`` into the path).
    """

    def __init__(
        self,
        values: type[Schema] | fields.Field,
        *,
        keys: fields.Field | None = None,
        **kwargs: Any,
    ) -> None:
        self._values = values
        self._keys = keys if keys is not None else _Key()
        super().__init__(**kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValidationError("must be a table")
        out: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, item in value.items():
            try:
                name = self._keys.deserialize(key)
                if isinstance(self._values, fields.Field):
                    out[name] = self._values.deserialize(item)
                else:
                    out[name] = self._values().load(item)
            except ValidationError as err:
                errors[key] = err.messages
        if errors:
            raise ValidationError(errors)
        return out


# --------------------------------------------------------------------------------------------
# Schemas: one per section of defaults.toml


class _Strict(Schema):
    """Base of every schema of OUR config: an unknown key is an error (a typo is caught)."""

    class Meta:
        unknown = RAISE

    @pre_load
    def _set_aside_unknown(self, data: Any, **kwargs: Any) -> Any:
        # Unknown keys are reported by _refuse_unknown, with a hint, next to the other errors
        # of this table; Meta.unknown = RAISE stays as the backstop.
        if not isinstance(data, Mapping):
            raise ValidationError({"_schema": ["must be a table"]})
        allowed = self._allowed_keys()
        return {key: value for key, value in data.items() if key in allowed}

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _refuse_unknown(self, data: Any, original: Any, **kwargs: Any) -> None:
        allowed = sorted(self._allowed_keys())
        errors: dict[str, list[str]] = {}
        for key in original:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
                errors[key] = [f"unknown key ({hint})"]
        if errors:
            raise ValidationError(errors)

    def _allowed_keys(self) -> set[str]:
        return {f.data_key or name for name, f in self.load_fields.items()}


def _words(**kwargs: Any) -> _List:
    return _List(_Str(nonempty=True), **kwargs)


class _DatabaseSchema(_Strict):
    url = _Str(required=True)


class _ServerSchema(_Strict):
    public_url = _Url(blank=True, load_default="")


class _UnknownCustomerSchema(_Strict):
    charge = _Bool(required=True)
    reply = _Bool(required=True)


class _PolicySchema(_Strict):
    languages = _List(
        _Str(
            validate=validate.OneOf(
                SUPPORTED_LANGUAGES, error="unsupported language {input!r} (one of: {choices})"
            )
        ),
        required=True,
        validate=validate.Length(min=1, error="must name at least one language"),
    )
    default_language = _Str(required=True)
    fallback_plan = _Key(required=True)
    free_period_plan = _Key(required=True)
    free_category = _Key(required=True)
    queue_window_minutes = _Int(required=True)
    expiry_reminder_days = _Int(required=True)
    unknown_customer = fields.Nested(_UnknownCustomerSchema, required=True)

    @validates_schema
    def _default_language(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["default_language"] not in data["languages"]:
            raise ValidationError(
                f"{data['default_language']!r} is not one of languages "
                f"({', '.join(data['languages'])})",
                "default_language",
            )


class _HoursSchema(_Strict):
    zone = _Zone(required=True)
    days = _List(
        _Str(validate=validate.OneOf(_DAYS, error="unknown day {input!r} (one of: {choices})")),
        required=True,
        validate=validate.Length(min=1, error="must name at least one day"),
    )
    start = _ClockTime(required=True)
    end = _ClockTime(required=True)
    holidays = _List(_Day(), required=True)
    holiday_country = _Str(required=True)
    holiday_subdivision = _Str(required=True)

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["start"] >= data["end"]:
            raise ValidationError(
                f"must be later than start ({data['start']:%H:%M})",
                "end",
            )
        if len(set(data["days"])) != len(data["days"]):
            raise ValidationError("a day is named twice", "days")
        country, subdivision = data["holiday_country"], data["holiday_subdivision"]
        if subdivision and not country:
            raise ValidationError("needs holiday_country", "holiday_subdivision")
        if country:
            problem = _holiday_calendar_problem(country, subdivision)
            if problem:
                raise ValidationError(*problem)


class _TitleSchema(_Strict):
    en = _Str(nonempty=True, required=True)
    ru = _Str(nonempty=True, required=True)


class _PlanSchema(_Strict):
    key = _Key(required=True)
    title = fields.Nested(_TitleSchema, required=True)
    priority = _Str(
        required=True,
        validate=validate.OneOf(
            [level.value for level in PriorityLevel],
            error="unknown priority {input!r} (one of: {choices})",
        ),
    )
    first_reply_hours = _Int(required=True, minimum=1)
    covers = _List(_Key(), load_default=list)
    monthly_quota = _Table(_Int(), load_default=dict)
    senior_staff = _Bool(load_default=False)
    live_chat = _Bool(load_default=False)
    mobile_app = _Bool(load_default=False)


class _GrantSchema(_Strict):
    credits = _Int(load_default=0)
    free_days = _Int(load_default=0)
    plan = _Key(load_default=None)
    plan_years = _Int(load_default=0)

    @validates_schema
    def _plan_years(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["plan"] is not None and data["plan_years"] < 1:
            raise ValidationError("plan needs plan_years >= 1", "plan_years")
        if data["plan"] is None and data["plan_years"]:
            raise ValidationError("plan_years needs a plan", "plan_years")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> LicenseGrant:
        return LicenseGrant(**data)


class _ProductSchema(_Strict):
    title = _Str(nonempty=True, required=True)
    first = fields.Nested(_GrantSchema)
    additional = fields.Nested(_GrantSchema)
    additional_storefront = fields.Nested(_GrantSchema)


class _CategorySchema(_Strict):
    key = _Key(required=True)
    title = fields.Nested(_TitleSchema, required=True)
    credits = _Int(required=True)
    approval = _Bool(required=True)
    engineer_priced = _Bool(load_default=False)
    needs_upgrade_subscription = _Bool(load_default=False)
    priced_by_steps = _Bool(load_default=False)

    @validates_schema
    def _pricing(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["engineer_priced"] and data["priced_by_steps"]:
            raise ValidationError(
                "a category is engineer_priced or priced_by_steps, not both", "priced_by_steps"
            )


class _ReleaseSchema(_Strict):
    version = _Str(
        required=True,
        validate=validate.Regexp(
            _VERSION_RE, error='not a version {input!r} (e.g. "4.19.2" or "4.19.2.SP1")'
        ),
    )
    service_pack = _Bool(load_default=False)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Release:
        return Release(**data)


class _UpgradeSchema(_Strict):
    base = _Int(required=True)
    included_steps = _Int(required=True)
    per_step = _Int(required=True)
    extra_releases = _List(fields.Nested(_ReleaseSchema), required=True)


class _ApprovalSchema(_Strict):
    approve_words = _words(required=True)
    decline_words = _words(required=True)
    negations = _words(required=True)
    link_ttl_days = _Int(required=True, minimum=1)
    reminder_business_days = _Int(required=True, minimum=1)
    buy_credits_url = _Url(blank=True, required=True)
    refund_on_delete = fields.Boolean(required=True)


# Every TagPolicy field, each optional (the dataclass holds the defaults).
_TagsSchema = _Strict.from_dict(
    {name: _Str(nonempty=True) for name in TagPolicy.__dataclass_fields__}, name="_TagsSchema"
)


class _PriorityMapSchema(_Strict):
    kind = _Str(
        required=True,
        validate=validate.OneOf(("field", "tag"), error="unknown kind {input!r} (field or tag)"),
    )
    highest = _Str(ints=True, required=True)
    high = _Str(ints=True, required=True)
    regular = _Str(ints=True, required=True)


class _PriorityOverrideSchema(_PriorityMapSchema):
    """A desk's override: any of the keys, merged over ``[priorities.<adapter>]``."""

    kind = _Str(
        validate=validate.OneOf(("field", "tag"), error="unknown kind {input!r} (field or tag)")
    )
    highest = _Str(ints=True)
    high = _Str(ints=True)
    regular = _Str(ints=True)


class _DetectionRuleSchema(_Strict):
    category = _Key(required=True)
    weight = _Float(
        load_default=1.0, validate=validate.Range(min=0, min_inclusive=False, error="must be > 0")
    )
    words = _List(
        _Str(nonempty=True),
        required=True,
        validate=validate.Length(min=1, error="must name at least one word"),
    )


class _DetectionSchema(_Strict):
    threshold = _Float(
        required=True, validate=validate.Range(min=0, max=1, error="must be between 0 and 1")
    )
    rules = _List(fields.Nested(_DetectionRuleSchema), load_default=list)


def _base_url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why a desk's ``base_url`` is refused (credentials are sent to it), else ``None``.

    https only, except on loopback (a local desk or a test double) or with
    ``options.allow_http = true``; no ``user:password@`` (credentials come from variables);
    no query or fragment; never a link-local, multicast or unspecified address (the cloud
    metadata service lives at 169.254.169.254).
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return "must not carry credentials (user:password@): name their variables instead"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "must not have a query or a fragment"
    host = (parts.hostname or "").lower()
    try:
        address = ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if address.is_link_local or address.is_multicast or address.is_unspecified:
            return f"{host} is a link-local, multicast or unspecified address: not a help desk"
    loopback = host == "localhost" or host.endswith(".localhost")
    loopback = loopback or (address is not None and address.is_loopback)
    if parts.scheme == "http" and not loopback and not allow_http:
        return (
            "plain http would send the desk's credentials unencrypted: use https "
            "(http is taken on loopback, or with options.allow_http = true)"
        )
    return None


class _DeskSchema(_Strict):
    adapter = _Key(required=True)
    base_url = _Url(required=True)
    mode = _Str(
        load_default="live",
        validate=validate.OneOf(
            ("live", "observe"), error="unknown mode {input!r} (live or observe)"
        ),
    )
    secret_env = _List(_EnvName(nonempty=True), load_default=list)
    email = _Str(load_default="")
    username = _Str(load_default="")
    token_env = _EnvName(load_default="")
    api_key_env = _EnvName(load_default="")
    client_id_env = _EnvName(load_default="")
    client_secret_env = _EnvName(load_default="")
    password_env = _EnvName(load_default="")
    api_user_id = _Str(ints=True, load_default="")
    priority = fields.Nested(_PriorityOverrideSchema, load_default=dict)
    # data_key: a class attribute named "fields" would hide the marshmallow module here.
    desk_fields = _Table(
        _Str(ints=True), keys=_Str(nonempty=True), load_default=dict, data_key="fields"
    )
    timeout = _Float(
        load_default=10.0, validate=validate.Range(min=0, min_inclusive=False, error="must be > 0")
    )
    max_attempts = _Int(load_default=10, minimum=1)
    options = _Table(fields.Raw(), keys=_Str(), load_default=dict)

    @pre_load
    def _one_secret(self, data: Any, **kwargs: Any) -> Any:
        # secret_env = "NAME" is read as ["NAME"] (rotation adds a second name later).
        if isinstance(data, Mapping) and isinstance(data.get("secret_env"), str):
            return {**data, "secret_env": [data["secret_env"]]}
        return data

    @validates_schema
    def _safe_base_url(self, data: dict[str, Any], **kwargs: Any) -> None:
        allow_http = data.get("options", {}).get("allow_http") is True
        problem = _base_url_problem(data["base_url"], allow_http=allow_http)
        if problem is not None:
            raise ValidationError(problem, field_name="base_url")


class _JobsSchema(_Strict):
    tick_seconds = _Int(required=True, minimum=1)
    catch_up_periods = _Int(required=True, minimum=1)
    quota_reset_day = _Int(required=True, minimum=1)
    quota_reset_time = _ClockTime(required=True)
    expiry_reminder_time = _ClockTime(required=True)
    notice_desk = _Str(required=True)
    approval_reminder_minutes = _Int(required=True, minimum=1)
    sla_watch_minutes = _Int(required=True, minimum=1)
    sla_warn_business_hours = _Float(
        required=True, validate=validate.Range(min=0, min_inclusive=False, error="must be > 0")
    )
    sla_warn_tag = _Str(nonempty=True, required=True)
    sla_breach_tag = _Str(nonempty=True, required=True)
    retention_time = _ClockTime(required=True)
    retention_days = _Int(required=True, minimum=1)
    batch_size = _Int(required=True, minimum=1)

    @validates_schema
    def _day(self, data: dict[str, Any], **kwargs: Any) -> None:
        # Every month has a 28th: a later day would skip February.
        if data["quota_reset_day"] > 28:
            raise ValidationError("must be 1 to 28", "quota_reset_day")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> JobSettings:
        return JobSettings(**data)


class _HealthSchema(_Strict):
    expect = _List(
        _Str(
            validate=validate.OneOf(
                HEARTBEAT_KINDS, error="unknown process {input!r} (one of: {choices})"
            )
        ),
        required=True,
    )
    max_heartbeat_age = _Int(required=True, minimum=1)
    heartbeat_seconds = _Int(required=True, minimum=1)

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if len(set(data["expect"])) != len(data["expect"]):
            raise ValidationError("a process is named twice", "expect")
        if data["heartbeat_seconds"] >= data["max_heartbeat_age"]:
            raise ValidationError(
                f"must be less than max_heartbeat_age ({data['max_heartbeat_age']})",
                "heartbeat_seconds",
            )

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> HealthSettings:
        return HealthSettings(**{**data, "expect": tuple(data["expect"])})


class _Network(fields.Field):
    """A client network in CIDR notation (``10.0.0.0/8``); a bare address is one host."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> IPv4Network | IPv6Network:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        text = value
        try:
            return ip_network(text.strip())
        except ValueError as err:
            raise ValidationError(
                f"not a network {text!r}: {err} (e.g. 10.0.0.0/8, 127.0.0.1 or ::1)"
            ) from None


class _MetricsSchema(_Strict):
    enabled = _Bool(required=True)
    allow = _List(_Network(), required=True)
    token_env = _EnvName(required=True)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> MetricsSettings:
        return MetricsSettings(**{**data, "allow": tuple(data["allow"])})


class _LoggingSchema(_Strict):
    format = _Str(
        required=True,
        validate=validate.OneOf(LOG_FORMATS, error="unknown format {input!r} (one of: {choices})"),
    )
    level = _Str(
        required=True,
        validate=validate.OneOf(LOG_LEVELS, error="unknown level {input!r} (one of: {choices})"),
    )

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> LogSettings:
        return LogSettings(**data)


class _OutboxSchema(_Strict):
    lease_seconds = _Float(
        required=True, validate=validate.Range(min=1, error="must be at least 1")
    )
    retry_base_seconds = _Float(
        required=True, validate=validate.Range(min=0, min_inclusive=False, error="must be > 0")
    )
    retry_cap_seconds = _Float(
        required=True, validate=validate.Range(min=0, min_inclusive=False, error="must be > 0")
    )

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["retry_cap_seconds"] < data["retry_base_seconds"]:
            raise ValidationError(
                f"must be at least retry_base_seconds ({data['retry_base_seconds']:g})",
                "retry_cap_seconds",
            )

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> OutboxSettings:
        return OutboxSettings(**data)


class _Expiry(fields.Field):
    """When an admin token stops working -> the first instant (UTC) it no longer works.

    A TOML date (or ``"2027-03-01"``): the token works through the end of that day UTC. A
    TOML offset date-time (or ISO text with an offset): that instant. A local date-time (no
    offset) is refused: which zone it means would be a guess.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str):
            value = _iso_date_or_time(value)
        try:
            if isinstance(value, datetime):
                if value.tzinfo is None or value.utcoffset() is None:
                    raise ValidationError(
                        f"{value.isoformat()} has no UTC offset: add one "
                        "(2027-03-01T00:00:00Z), or give a date (works through that day, UTC)"
                    )
                return value.astimezone(UTC)
            if isinstance(value, date):
                return datetime.combine(value + timedelta(days=1), time(), UTC)
        except OverflowError:
            raise ValidationError(f"out of range: {value!r}") from None
        raise ValidationError(_EXPIRY_HINT.format(value=value))


_EXPIRY_HINT = (
    "not a date or a date-time with an offset: {value!r} "
    "(e.g. 2027-03-01, or 2027-03-01T12:00:00+04:00)"
)


def _iso_date_or_time(text: str) -> date | datetime:
    """ISO text as a date (``2027-03-01``) or else a date-time; refused when neither."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(_EXPIRY_HINT.format(value=text)) from None


class _AdminTokenSchema(_Strict):
    env = _EnvName(nonempty=True, required=True)
    scope = _Str(
        load_default="write",
        validate=validate.OneOf(ADMIN_SCOPES, error="unknown scope {input!r} (read or write)"),
    )
    expires = _Expiry(load_default=None)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> AdminToken:
        return AdminToken(**data)


class _AdminTokenEntry(fields.Field):
    """An ``[admin] tokens`` value: the NAME of the token's environment variable, or a table
    ``{ env = "NAME", scope = "read" | "write", expires = <date or offset date-time> }``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> AdminToken:
        if isinstance(value, str):
            return AdminToken(env=_EnvName(nonempty=True).deserialize(value))
        if isinstance(value, Mapping):
            token: AdminToken = _AdminTokenSchema().load(value)
            return token
        raise ValidationError(
            'must be the NAME of an environment variable ("CARE_ADMIN_TOKEN_ALICE") or a table '
            '{ env = "CARE_ADMIN_TOKEN_ALICE", scope = "read", expires = 2027-03-01 }'
        )


class _AdminSchema(_Strict):
    tokens = _Table(_AdminTokenEntry(), required=True)
    max_body_bytes = _Int(required=True, minimum=1)


class _ConfigSchema(_Strict):
    database = fields.Nested(_DatabaseSchema, required=True)
    server = fields.Nested(_ServerSchema, required=True)
    policy = fields.Nested(_PolicySchema, required=True)
    hours = fields.Nested(_HoursSchema, required=True)
    plans = _List(
        fields.Nested(_PlanSchema),
        required=True,
        validate=validate.Length(min=1, error="must define at least one plan"),
    )
    products = _Table(_ProductSchema, required=True)
    categories = _List(
        fields.Nested(_CategorySchema),
        required=True,
        validate=validate.Length(min=1, error="must define at least one category"),
    )
    upgrade = fields.Nested(_UpgradeSchema, required=True)
    approval = fields.Nested(_ApprovalSchema, required=True)
    tags = fields.Nested(_TagsSchema, required=True)
    priorities = _Table(_PriorityMapSchema, required=True)
    detection = fields.Nested(_DetectionSchema, required=True)
    jobs = fields.Nested(_JobsSchema, required=True)
    health = fields.Nested(_HealthSchema, required=True)
    metrics = fields.Nested(_MetricsSchema, required=True)
    logging = fields.Nested(_LoggingSchema, required=True)
    admin = fields.Nested(_AdminSchema, required=True)
    outbox = fields.Nested(_OutboxSchema, required=True)
    desks = _Table(_DeskSchema, required=True)


# --------------------------------------------------------------------------------------------
# Errors: marshmallow's nested messages -> "file: dotted.key: message (got value)"

_Path = tuple[str | int, ...]
_MISSING = object()


def _dotted(path: _Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY_RE.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
            out += ("." if out else "") + text
    return out or "(top level)"


def _lookup(data: Any, path: _Path) -> Any:
    for part in path:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return _MISSING
    return data


def _flatten(messages: Any, path: _Path = ()) -> Iterator[tuple[_Path, str]]:
    if isinstance(messages, Mapping):
        for key, sub in messages.items():
            yield from _flatten(sub, path if key == "_schema" else (*path, key))
    elif isinstance(messages, list):
        for sub in messages:
            yield from _flatten(sub, path)
    else:
        yield path, str(messages)


# user:password@ in a URL: the password is never quoted in a message.
_URL_PASSWORD_RE = re.compile(r"(://[^/@\s:]*:)[^@/\s]*@")


def _without_password(text: str) -> str:
    return _URL_PASSWORD_RE.sub(r"\1***@", text)


def _describe(value: Any) -> str:
    if isinstance(value, date | time):
        return repr(value.isoformat())
    text = _without_password(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(source: str, path: _Path, message: str, data: Any) -> str:
    if message == "Missing data for required field.":
        return f"{source}: {_dotted(path)}: missing (required)"
    value = _lookup(data, path)
    if any(isinstance(part, str) and (part.endswith("_env") or part == "tokens") for part in path):
        value = _MISSING  # a variable's name: its message quotes it (_name_shown), or nothing
    shown = "" if value is _MISSING or isinstance(value, Mapping) else _describe(value)
    # A message that quotes the value ('Mars/Base') needs no "(got ...)"; numbers always do.
    quoted = shown.startswith(("'", '"')) and shown in message
    if shown and not quoted and not message.startswith("unknown key"):
        message = f"{message} (got {shown})"
    return f"{source}: {_dotted(path)}: {message}"


# --------------------------------------------------------------------------------------------
# Reading and merging


def _read_resource(name: str) -> str:
    """A data file shipped in the ``connector`` package (``defaults.toml``, ``data/...``)."""
    try:
        return resources.files("connector").joinpath(name).read_text(encoding="utf-8")
    except (NotADirectoryError, TypeError):
        # ``connector`` imported as a namespace package (an editable install made while the
        # folder had no __init__.py) has no resource reader; the files sit beside this module.
        return Path(__file__).parent.joinpath(name).read_text(encoding="utf-8")


@functools.cache
def _defaults_text() -> str:
    return _read_resource("defaults.toml")


def _defaults() -> dict[str, Any]:
    # Parsed afresh each time: callers get a document they may not share.
    return tomllib.loads(_defaults_text())


@functools.cache
def _shipped_releases() -> tuple[Release, ...]:
    text = _read_resource("data/cscart-releases.csv")
    return tuple(
        Release(row["version"].strip(), row["is_service_pack"].strip().lower() == "true")
        for row in csv.DictReader(io.StringIO(text))
        if row["version"].strip()
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key, recursively; lists and scalars are replaced whole."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        # tomllib's message carries "(at line N, column M)".
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 text") from None


def _discover(environ: Mapping[str, str]) -> Path | None:
    if named := environ.get(ENV_CONFIG):
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{named}: config file not found (named by {ENV_CONFIG})")
        return path
    local = Path("config.toml")
    return local if local.is_file() else None


# --------------------------------------------------------------------------------------------
# Holidays (the ``holidays`` package is imported only when a country is configured)


def _holiday_calendar_problem(country: str, subdivision: str) -> tuple[str, str] | None:
    """``(message, key)`` when the country or subdivision is unknown to ``holidays``."""
    import holidays

    supported: dict[str, list[str]] = holidays.list_supported_countries()
    if country not in supported:
        return (
            f"unknown holiday country {country!r} (an ISO 3166 code supported by the "
            "holidays package, e.g. AE, US, DE)",
            "holiday_country",
        )
    if subdivision and subdivision not in supported[country]:
        known = ", ".join(supported[country][:10]) or "none"
        return (
            f"unknown subdivision {subdivision!r} of {country} (e.g. {known})",
            "holiday_subdivision",
        )
    return None


@functools.cache
def _country_holidays(country: str, subdivision: str) -> frozenset[date]:
    """The country's holidays for 2000..2100, computed once per process (~20 ms)."""
    import holidays

    calendar = holidays.country_holidays(country, subdiv=subdivision or None, years=_HOLIDAY_YEARS)
    return frozenset(calendar.keys())


# --------------------------------------------------------------------------------------------
# Building the policy and the desks


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part.removeprefix("SP")) for part in version.split("."))


def _cross_check(doc: dict[str, Any]) -> Iterator[tuple[_Path, str]]:
    """References between sections, checked once every section is valid on its own."""
    plans = [plan["key"] for plan in doc["plans"]]
    categories = [category["key"] for category in doc["categories"]]
    known_categories = ", ".join(categories)
    seen: set[str] = set()
    for index, key in enumerate(plans):
        if key in seen:
            yield ("plans", index, "key"), f"plan {key!r} is defined twice"
        seen.add(key)
    seen = set()
    for index, key in enumerate(categories):
        if key in seen:
            yield ("categories", index, "key"), f"category {key!r} is defined twice"
        seen.add(key)

    def category(path: _Path, key: str) -> Iterator[tuple[_Path, str]]:
        if key not in categories:
            yield path, f"unknown category {key!r} (one of: {known_categories})"

    def plan(path: _Path, key: str) -> Iterator[tuple[_Path, str]]:
        if key not in plans:
            yield path, f"unknown plan {key!r} (one of: {', '.join(plans)})"

    for index, entry in enumerate(doc["plans"]):
        for position, key in enumerate(entry["covers"]):
            yield from category(("plans", index, "covers", position), key)
        for key in entry["monthly_quota"]:
            yield from category(("plans", index, "monthly_quota", key), key)
    for product_key, product in doc["products"].items():
        for kind in LicenseKind:
            grant = product.get(kind.value)
            if grant is not None and grant.plan is not None:
                yield from plan(("products", product_key, kind.value, "plan"), grant.plan)
    section = doc["policy"]
    yield from plan(("policy", "fallback_plan"), section["fallback_plan"])
    yield from plan(("policy", "free_period_plan"), section["free_period_plan"])
    yield from category(("policy", "free_category"), section["free_category"])
    for index, rule in enumerate(doc["detection"]["rules"]):
        yield from category(("detection", "rules", index, "category"), rule["category"])

    releases = list(_shipped_releases())
    known = {release.version for release in releases}
    for index, release in enumerate(doc["upgrade"]["extra_releases"]):
        path: _Path = ("upgrade", "extra_releases", index, "version")
        if release.version in known:
            yield path, f"release {release.version!r} is already listed"
        elif _version_key(release.version) <= _version_key(releases[-1].version):
            yield (
                path,
                (
                    f"release {release.version!r} is not newer than {releases[-1].version!r} "
                    "(extra releases are appended after the shipped list, oldest first)"
                ),
            )
        else:
            known.add(release.version)
            releases.append(release)

    for desk_key, desk in doc["desks"].items():
        adapter = desk["adapter"]
        if adapter not in BUILTIN_ADAPTERS and adapter not in _plugin_adapters():
            choices = ", ".join([*BUILTIN_ADAPTERS, *_plugin_adapters()])
            yield ("desks", desk_key, "adapter"), f"unknown adapter {adapter!r} (one of: {choices})"
            continue
        merged = {**doc["priorities"].get(adapter, {}), **desk["priority"]}
        missing = [name for name in ("kind", "highest", "high", "regular") if name not in merged]
        if missing:
            yield (
                ("desks", desk_key, "priority"),
                (f"no [priorities.{adapter}] table; set {', '.join(missing)} here or there"),
            )
    notice_desk = doc["jobs"].notice_desk
    desk_keys = list(doc["desks"]) or list(BUILTIN_ADAPTERS)
    if notice_desk and notice_desk not in desk_keys:
        yield (
            ("jobs", "notice_desk"),
            f"no desk {notice_desk!r} (one of: {', '.join(desk_keys)}; empty: automatic)",
        )
    for adapter, mapping in doc["priorities"].items():
        if mapping["kind"] == "field":
            for level in ("highest", "high", "regular"):
                if not mapping[level]:
                    yield ("priorities", adapter, level), 'must not be empty when kind = "field"'
    health, tick = doc["health"], doc["jobs"].tick_seconds
    if "scheduler" in health.expect and health.max_heartbeat_age <= tick:
        # The scheduler records its heartbeat when it ticks.
        yield (
            ("health", "max_heartbeat_age"),
            f"must be more than jobs.tick_seconds ({tick}) while the scheduler is expected",
        )


def _plugin_adapters() -> list[str]:
    return sorted({entry.name for entry in metadata.entry_points(group=ADAPTER_ENTRY_POINTS)})


def _title(entry: Mapping[str, Any]) -> dict[str, str]:
    return {"title_en": entry["title"]["en"], "title_ru": entry["title"]["ru"]}


def _check_policy(policy: Policy, source: str) -> None:
    """What only the rules can check: the release list orders, the keyword rules compile."""
    try:
        ReleaseIndex.for_releases(policy.releases)
    except ReleaseError as err:
        raise ConfigError(f"{source}: upgrade.extra_releases: {err}") from err
    try:
        validate_detection(policy.detection)
    except ValueError as err:
        raise ConfigError(f"{source}: detection: {err}") from err


def _build_policy(doc: dict[str, Any]) -> Policy:
    hours = doc["hours"]
    holiday_dates = set(hours["holidays"])
    if hours["holiday_country"]:
        holiday_dates |= _country_holidays(hours["holiday_country"], hours["holiday_subdivision"])
    detection = doc["detection"]
    approval = doc["approval"]
    upgrade = doc["upgrade"]
    section = doc["policy"]
    return Policy(
        plans={
            entry["key"]: PlanPolicy(
                key=entry["key"],
                **_title(entry),
                priority=PriorityLevel(entry["priority"]),
                first_reply_hours=entry["first_reply_hours"],
                covers=frozenset(entry["covers"]),
                monthly_quota=dict(entry["monthly_quota"]),
                senior_staff=entry["senior_staff"],
                live_chat=entry["live_chat"],
                mobile_app=entry["mobile_app"],
            )
            for entry in doc["plans"]
        },
        products={
            key: ProductPolicy(
                key=key,
                title=product["title"],
                grants={kind: product[kind.value] for kind in LicenseKind if kind.value in product},
            )
            for key, product in doc["products"].items()
        },
        categories={
            entry["key"]: CategoryPolicy(
                key=entry["key"],
                **_title(entry),
                credits=entry["credits"],
                approval=entry["approval"],
                engineer_priced=entry["engineer_priced"],
                needs_upgrade_subscription=entry["needs_upgrade_subscription"],
                priced_by_steps=entry["priced_by_steps"],
            )
            for entry in doc["categories"]
        },
        releases=_shipped_releases() + tuple(upgrade["extra_releases"]),
        upgrade=UpgradePricing(
            base=upgrade["base"],
            included_steps=upgrade["included_steps"],
            per_step=upgrade["per_step"],
        ),
        calendar=BusinessCalendar(
            zone=hours["zone"],
            weekdays=frozenset(_DAYS.index(day) for day in hours["days"]),
            start=hours["start"],
            end=hours["end"],
            holidays=frozenset(holiday_dates),
        ),
        detection=DetectionPolicy(
            threshold=detection["threshold"],
            rules=tuple(
                KeywordRule(category=rule["category"], pattern=word, weight=rule["weight"])
                for rule in detection["rules"]
                for word in rule["words"]
            ),
        ),
        approval=ApprovalPolicy(
            approve_words=tuple(approval["approve_words"]),
            decline_words=tuple(approval["decline_words"]),
            negations=tuple(approval["negations"]),
            link_ttl_days=approval["link_ttl_days"],
            reminder_business_days=approval["reminder_business_days"],
            buy_credits_url=approval["buy_credits_url"],
            refund_on_delete=approval["refund_on_delete"],
        ),
        tags=TagPolicy(**doc["tags"]),
        languages=tuple(section["languages"]),
        default_language=section["default_language"],
        fallback_plan=section["fallback_plan"],
        free_period_plan=section["free_period_plan"],
        free_category=section["free_category"],
        queue_window_minutes=section["queue_window_minutes"],
        expiry_reminder_days=section["expiry_reminder_days"],
        unknown_customer_charge=section["unknown_customer"]["charge"],
        unknown_customer_reply=section["unknown_customer"]["reply"],
    )


def _priority_map(values: Mapping[str, str]) -> PriorityMap:
    return PriorityMap.from_mapping(values)


def _build_desks(doc: dict[str, Any], environ: Mapping[str, str]) -> dict[str, DeskSettings]:
    configured: dict[str, Any] = doc["desks"] or {
        adapter: _DeskSchema().load({"adapter": adapter, "base_url": url})
        for adapter, url in BUILTIN_ADAPTERS.items()
    }

    def env(name: str) -> str:
        return environ.get(name, "") if name else ""

    desks: dict[str, DeskSettings] = {}
    for key, desk in configured.items():
        names = ("token", "api_key", "client_id", "client_secret", "password")
        desks[key] = DeskSettings(
            key=key,
            adapter=desk["adapter"],
            base_url=desk["base_url"],
            # A plugin adapter without [priorities.<adapter>] brings a full table in the desk.
            priority=_priority_map(
                {**doc["priorities"].get(desk["adapter"], {}), **desk["priority"]}
            ),
            mode=desk["mode"],
            secret_env=tuple(desk["secret_env"]),
            secrets=tuple(env(name) for name in desk["secret_env"] if env(name)),
            email=desk["email"],
            username=desk["username"],
            api_user_id=desk["api_user_id"],
            fields=dict(desk["desk_fields"]),
            timeout=desk["timeout"],
            max_attempts=desk["max_attempts"],
            options=dict(desk["options"]),
            **{f"{name}_env": desk[f"{name}_env"] for name in names},
            **{name: env(desk[f"{name}_env"]) for name in names},
        )
    return desks


def _build_admin(doc: dict[str, Any], environ: Mapping[str, str]) -> AdminSettings:
    access: dict[str, AdminToken] = dict(doc["admin"]["tokens"])
    token_env = {name: token.env for name, token in access.items()}
    tokens = {name: environ[var] for name, var in token_env.items() if environ.get(var)}
    return AdminSettings(
        token_env=token_env,
        tokens=tokens,
        access=access,
        max_body_bytes=doc["admin"]["max_body_bytes"],
    )


def _env_url(
    environ: Mapping[str, str], name: str, configured: str, check: Callable[[str], bool]
) -> str:
    value = environ.get(name, "")
    if not value:
        return configured
    if not check(value):
        raise ConfigError(f"{name}: not a valid URL: {_without_password(repr(value))}")
    return value


def _validate(doc: dict[str, Any], source: str) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = _ConfigSchema().load(doc)
    except ValidationError as err:
        raise ConfigError(
            [_problem(source, path, message, doc) for path, message in _flatten(err.messages)]
        ) from None
    problems = [_problem(source, path, message, doc) for path, message in _cross_check(loaded)]
    if problems:
        raise ConfigError(problems)
    return loaded


@functools.cache
def _default_document() -> tuple[dict[str, Any], Policy]:
    loaded = _validate(_defaults(), "connector/defaults.toml")
    return loaded, _build_policy(loaded)


# --------------------------------------------------------------------------------------------
# Public API


def load_settings(
    config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read, merge over the defaults, and validate the configuration.

    :param config: a dict in the TOML's shape; a path to a TOML file; or ``None`` for
        discovery: the file named by ``CARE_CONFIG``, then ``./config.toml``, then the built-in
        defaults only.
    :param environ: the environment (default :data:`os.environ`): ``CARE_CONFIG``,
        ``CARE_DATABASE_URL``, ``CARE_PUBLIC_URL`` and the variables desks name.
    :raises ConfigError: the file is missing or not TOML, or a key is invalid; the message
        names the file, the dotted key and the bad value.
    """
    environ = os.environ if environ is None else environ
    if config is not None and not isinstance(config, Mapping | str | os.PathLike):
        raise ConfigError(
            f"config: expected a dict, a path to a TOML file or None, not {type(config).__name__}"
        )
    path: Path | None
    if isinstance(config, Mapping):
        path, source, overrides = None, "config", dict(config)
    else:
        path = _discover(environ) if config is None else Path(config)
        source = str(path)
        overrides = {} if path is None else _read_toml(path)

    if overrides:
        doc = _validate(_merge(_defaults(), overrides), source)
        policy = _build_policy(doc)
        _check_policy(policy, source)
    else:
        doc, policy = _default_document()

    database_url = _env_url(
        environ, ENV_DATABASE_URL, doc["database"]["url"], lambda v: bool(_DB_URL_RE.fullmatch(v))
    )
    if not database_url:
        database_url = f"sqlite:///{Path.cwd().resolve() / _SQLITE_FILE}"
    elif not _DB_URL_RE.fullmatch(database_url):
        raise ConfigError(
            f"{source}: database.url: not a database URL: {_without_password(repr(database_url))} "
            "(e.g. postgresql+psycopg://user@host/db, or empty for SQLite)"
        )
    public_url = _env_url(
        environ,
        ENV_PUBLIC_URL,
        doc["server"]["public_url"],
        lambda v: bool(_HTTP_URL_RE.fullmatch(v)),
    ).rstrip("/")
    metrics: MetricsSettings = doc["metrics"]
    metrics_token = environ.get(metrics.token_env, "") if metrics.token_env else ""

    return Settings(
        policy=policy,
        database_url=database_url,
        public_url=public_url,
        desks=_build_desks(doc, environ),
        priorities={key: _priority_map(value) for key, value in doc["priorities"].items()},
        source_path=path,
        desks_configured=bool(doc["desks"]),
        jobs=doc["jobs"],
        admin=_build_admin(doc, environ),
        outbox=doc["outbox"],
        health=doc["health"],
        metrics=replace(metrics, token=metrics_token),
        logging=_log_settings(doc["logging"], environ),
    )


def _log_settings(configured: LogSettings, environ: Mapping[str, str]) -> LogSettings:
    """``[logging]`` with ``CARE_LOG_FORMAT`` and ``CARE_LOG_LEVEL`` applied."""
    fmt = environ.get(ENV_LOG_FORMAT, "").strip().lower() or configured.format
    level = environ.get(ENV_LOG_LEVEL, "").strip().upper() or configured.level
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"{ENV_LOG_FORMAT}: unknown format {fmt!r} (one of: json, text)")
    if level not in LOG_LEVELS:
        choices = ", ".join(LOG_LEVELS)
        raise ConfigError(f"{ENV_LOG_LEVEL}: unknown level {level!r} (one of: {choices})")
    return LogSettings(format=fmt, level=level)


def default_settings(*, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the built-in defaults only (no file is looked for).

    The environment still applies: ``CARE_DATABASE_URL``, ``CARE_PUBLIC_URL``, desk secrets.
    """
    return load_settings({}, environ=environ)


def default_policy() -> Policy:
    """The built-in default policy (``connector/defaults.toml``), built once per process."""
    return _default_document()[1]
