"""Configuration: a TOML file merged over the built-in defaults, validated once.

The connector's settings come from one TOML file read with :mod:`tomllib` and merged over
``connector/defaults.toml`` (tables merged key by key, lists and scalars replaced). The merged
document is validated once with marshmallow and turned into a frozen :class:`Settings`; nothing
is read at import time. An invalid document raises :class:`ConfigError`, whose one-line message
names the file, the dotted key (``plans[1].priority``) and the bad value.

Environment: ``CARE_CONFIG`` (the file, when :func:`load_settings` gets ``None``),
``CARE_DATABASE_URL`` and ``CARE_PUBLIC_URL`` (win over ``[database] url`` and
``[server] public_url``), and the variables a desk names for its secrets.
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
from dataclasses import dataclass, field
from datetime import date, datetime, time
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Literal
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
    "BUILTIN_ADAPTERS",
    "ConfigError",
    "DeskSettings",
    "JobSettings",
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
    max_attempts: int = 8
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
class Settings:
    """The validated configuration.

    :param source_path: the TOML file used, or ``None`` (a dict, or the defaults only).
    :param priorities: ``[priorities.<adapter>]``; each desk's merged map is on the desk.
    """

    policy: Policy
    database_url: str
    public_url: str = ""
    desks: Mapping[str, DeskSettings] = field(default_factory=dict)
    priorities: Mapping[str, PriorityMap] = field(default_factory=dict)
    source_path: Path | None = None
    #: False when no ``[desks.*]`` is configured and the built-in default desks are used.
    desks_configured: bool = True
    jobs: JobSettings = field(default_factory=JobSettings)

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
                f"{text!r} is not an environment variable name (e.g. CARE_ZENDESK_SECRET)"
            )
        return text


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
    max_attempts = _Int(load_default=8, minimum=1)
    options = _Table(fields.Raw(), keys=_Str(), load_default=dict)

    @pre_load
    def _one_secret(self, data: Any, **kwargs: Any) -> Any:
        # secret_env = "NAME" is read as ["NAME"] (rotation adds a second name later).
        if isinstance(data, Mapping) and isinstance(data.get("secret_env"), str):
            return {**data, "secret_env": [data["secret_env"]]}
        return data


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


def _describe(value: Any) -> str:
    if isinstance(value, date | time):
        return repr(value.isoformat())
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(source: str, path: _Path, message: str, data: Any) -> str:
    if message == "Missing data for required field.":
        return f"{source}: {_dotted(path)}: missing (required)"
    value = _lookup(data, path)
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


def _env_url(
    environ: Mapping[str, str], name: str, configured: str, check: Callable[[str], bool]
) -> str:
    value = environ.get(name, "")
    if not value:
        return configured
    if not check(value):
        raise ConfigError(f"{name}: not a valid URL: {value!r}")
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
            f"{source}: database.url: not a database URL: {database_url!r} "
            "(e.g. postgresql+psycopg://user@host/db, or empty for SQLite)"
        )
    public_url = _env_url(
        environ,
        ENV_PUBLIC_URL,
        doc["server"]["public_url"],
        lambda v: bool(_HTTP_URL_RE.fullmatch(v)),
    ).rstrip("/")

    return Settings(
        policy=policy,
        database_url=database_url,
        public_url=public_url,
        desks=_build_desks(doc, environ),
        priorities={key: _priority_map(value) for key, value in doc["priorities"].items()},
        source_path=path,
        desks_configured=bool(doc["desks"]),
        jobs=doc["jobs"],
    )


def default_settings(*, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the built-in defaults only (no file is looked for).

    The environment still applies: ``CARE_DATABASE_URL``, ``CARE_PUBLIC_URL``, desk secrets.
    """
    return load_settings({}, environ=environ)


def default_policy() -> Policy:
    """The built-in default policy (``connector/defaults.toml``), built once per process."""
    return _default_document()[1]
