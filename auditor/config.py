"""Settings: CLI flags > environment > auditor.toml > defaults.

auditor.toml (every section optional):

    [audit]
    host = "eu"                      # us, eu or a self-hosted base URL
    projects = [12345]
    api_key_env = "POSTHOG_PERSONAL_API_KEY"
    concurrency = 24
    paying_for = ["product_analytics", "session_replay"]

    [weights]                        # readiness weight of each category
    session_replay = 25

    [gate]
    min_readiness = 80
    min_category = 70

    [checks."platform.reverse-proxy"]   # any default threshold of a check
    pass_share = 0.95
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from auditor.catalogue import Catalogue
from auditor.clients.posthog_api import DEFAULT_LIMITS
from auditor.defaults import DEFAULT_API_KEY_ENV, DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from auditor.errors import AuditorError
from auditor.model import Check
from auditor.outputs.telemetry import TelemetrySettings
from auditor.outputs.vitally import VitallySettings

DEFAULT_GATE = {"min_readiness": 80.0, "min_category": 70.0}
# [limits] overrides PostHog's throttles (posthog_api.DEFAULT_LIMITS), e.g. a team with a raised
# api_query_rate_limit (hogql = …). `rest` is the former name of the per-minute throttle.
LIMIT_ALIASES = {"rest": "burst"}
CONFIG_FILE_NAME = "auditor.toml"
# [limits]: far above any PostHog throttle; a bigger number is a typo, not a raised limit.
MAX_LIMIT = 1_000_000
MAX_WINDOW_SECONDS = 86_400


class ConfigError(AuditorError):
    """A bad setting: reported as one line, exit code 2."""

    label = "config error"


def read_toml(path: str | Path, what: str, error: type[Exception] = ConfigError) -> dict[str, Any]:
    """A TOML file the user gave, or a one-line error saying what is wrong with it."""
    file = Path(path)
    if not file.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None


@dataclass
class Settings:
    host: str | None = None
    projects: list[str] = field(default_factory=list)
    api_key_env: str = DEFAULT_API_KEY_ENV
    concurrency: int = DEFAULT_CONCURRENCY
    read_timeout: float = 60.0
    max_retries: int = 4
    rate_limits: dict[str, tuple[int, float]] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    paying_for: list[str] | None = None
    weights: dict[str, float] = field(default_factory=dict)  # overrides of the catalogue's weights
    gate: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GATE))
    check_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    vitally: VitallySettings = field(default_factory=VitallySettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    source: str = "defaults"

    def with_overrides(self, **flags: Any) -> Settings:
        """These settings with the command line's flags over them (a flag left out, None, changes nothing)."""
        return replace(self, **{name: value for name, value in flags.items() if value is not None})

    def thresholds(self, check: Check) -> dict[str, Any]:
        return {**check.meta.thresholds, **self.check_overrides.get(check.id, {})}

    def client_options(self) -> dict[str, Any]:
        """PostHogClient keyword arguments from these settings (the client shares its key's limiter)."""
        return {"concurrency": self.concurrency, "read_timeout": self.read_timeout, "max_retries": self.max_retries,
                "rate_limits": self.rate_limits}

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None


def load_settings(path: str | None, checks: Mapping[str, Check], catalogue: Catalogue,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Read auditor.toml (the given path, or ./auditor.toml if present) and the environment."""
    env = os.environ if env is None else env
    settings = Settings()
    file = Path(path) if path else Path(CONFIG_FILE_NAME)
    if path or file.is_file():  # ./auditor.toml is optional; a --config file must exist
        apply_file(settings, read_toml(file, "config file"), checks, catalogue, str(file))
        settings.source = str(file)
    if env.get("POSTHOG_HOST"):
        settings.host = env["POSTHOG_HOST"]
    if env.get("POSTHOG_PROJECT_ID"):
        settings.projects = [p.strip() for p in env["POSTHOG_PROJECT_ID"].split(",") if p.strip()]
    return settings


def apply_file(settings: Settings, data: dict[str, Any], checks: Mapping[str, Check], catalogue: Catalogue,
               where: str) -> None:
    known = {"audit", "weights", "gate", "checks", "vitally", "telemetry", "limits"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown section [{unknown[0]}] (known: {', '.join(sorted(known))})")
    audit = _table(data, "audit", where)
    for key, value in audit.items():
        if key == "host":
            settings.host = _str(value, f"{where}: audit.host")
        elif key == "projects":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where}: audit.projects must be a non-empty list of project ids")
            settings.projects = [str(v) for v in value]
        elif key == "api_key_env":
            settings.api_key_env = _str(value, f"{where}: audit.api_key_env")
        elif key == "concurrency":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CONCURRENCY:
                raise ConfigError(f"{where}: audit.concurrency must be an integer from 1 to {MAX_CONCURRENCY}")
            settings.concurrency = value
        elif key == "read_timeout":
            settings.read_timeout = _number(value, f"{where}: audit.read_timeout", minimum=0.1, maximum=600)
        elif key == "max_retries":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
                raise ConfigError(f"{where}: audit.max_retries must be an integer from 0 to 10")
            settings.max_retries = value
        elif key == "paying_for":
            if not isinstance(value, list):
                raise ConfigError(f"{where}: audit.paying_for must be a list of products")
            settings.paying_for = parse_products(",".join(str(v) for v in value), catalogue)
        else:
            raise ConfigError(f"{where}: unknown setting audit.{key}")
    for category, weight in _table(data, "weights", where).items():
        if category not in catalogue.products:
            raise ConfigError(f"{where}: weights.{category}: unknown category (known: "
                              f"{', '.join(catalogue.products)})")
        settings.weights[category] = _number(weight, f"{where}: weights.{category}", minimum=0)
    for key, value in _table(data, "gate", where).items():
        if key not in DEFAULT_GATE:
            raise ConfigError(f"{where}: unknown setting gate.{key} (known: {', '.join(DEFAULT_GATE)})")
        settings.gate[key] = _number(value, f"{where}: gate.{key}", minimum=0, maximum=100)
    apply_vitally(settings.vitally, _table(data, "vitally", where), where)
    limits = _table(data, "limits", where)
    for alias, kind in LIMIT_ALIASES.items():  # older name of a throttle
        for suffix in ("", "_window_seconds"):
            if alias + suffix in limits:
                limits.setdefault(kind + suffix, limits.pop(alias + suffix))
    for kind in settings.rate_limits:
        count, window = settings.rate_limits[kind]
        if kind in limits:
            count = int(_number(limits.pop(kind), f"{where}: limits.{kind}", minimum=1, maximum=MAX_LIMIT))
        if f"{kind}_window_seconds" in limits:
            window = _number(limits.pop(f"{kind}_window_seconds"), f"{where}: limits.{kind}_window_seconds",
                             minimum=0.001, maximum=MAX_WINDOW_SECONDS)
        settings.rate_limits[kind] = (count, window)
    if limits:
        names = ", ".join(k + s for k in settings.rate_limits for s in ("", "_window_seconds"))
        raise ConfigError(f"{where}: unknown setting limits.{sorted(limits)[0]} (known: {names})")
    for key, value in _table(data, "telemetry", where).items():
        if key == "enabled":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: telemetry.enabled must be true or false")
            settings.telemetry.enabled = value
        elif key in ("host", "api_key_env", "distinct_id"):
            setattr(settings.telemetry, key, _str(value, f"{where}: telemetry.{key}"))
        else:
            raise ConfigError(f"{where}: unknown setting telemetry.{key}")
    by_any_id = {name: c for c in checks.values() for name in (c.id, *c.meta.aliases)}  # a renamed check's old id too
    for given_id, overrides in _table(data, "checks", where).items():
        if given_id not in by_any_id:
            raise ConfigError(f"{where}: [checks.\"{given_id}\"]: no such check (see `posthog-auditor checks`)")
        check_id = by_any_id[given_id].id
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}: checks.\"{given_id}\" must be a table of thresholds")
        defaults = checks[check_id].meta.thresholds
        for key, value in overrides.items():
            if key not in defaults:
                names = ", ".join(defaults) or "none"
                raise ConfigError(f"{where}: {check_id} has no threshold '{key}' (its thresholds: {names})")
            default = defaults[key]
            if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, int | float) and not isinstance(value, int | float)
            ):
                raise ConfigError(f"{where}: {check_id}.{key} must be a {type(default).__name__}")
            check_threshold_range(value, f"{where}: {check_id}.{key}", key)
        settings.check_overrides[check_id] = {**settings.check_overrides.get(check_id, {}), **overrides}


# Threshold names say what they hold: a share or a rate is a fraction of a whole, everything else numeric is a
# count, a number of days, hours, rows or milliseconds, none of which can be negative.
FRACTION_SUFFIXES = ("_share", "_rate")


def check_threshold_range(value: Any, what: str, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if name.endswith(FRACTION_SUFFIXES):
        if not 0 <= value <= 1:
            raise ConfigError(f"{what} is a share: it must be between 0 and 1 (e.g. 0.25 for 25%), got {value}")
    elif value < 0:
        raise ConfigError(f"{what} must be 0 or more, got {value}")


def apply_vitally(vitally: VitallySettings, table: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        if key in ("region", "subdomain", "api_key_env", "paying_for_prefix", "new_owner_label",
                   "invoices_paid_label"):
            setattr(vitally, key, _str(value, f"{where}: vitally.{key}"))
        elif key == "min_arr":
            vitally.min_arr = _number(value, f"{where}: vitally.min_arr", minimum=0)
        elif key in ("country_traits", "timezone_traits"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: vitally.{key} must be a list of trait keys")
            setattr(vitally, key, value)
        else:
            raise ConfigError(f"{where}: unknown setting vitally.{key}")
    if vitally.region not in ("eu", "us") and not vitally.region.startswith(("https://", "http://")):
        raise ConfigError(f"{where}: vitally.region must be 'eu', 'us' or a base URL")


def parse_products(text: str, catalogue: Catalogue) -> list[str]:
    products = [p.strip().replace("-", "_") for p in text.split(",") if p.strip()]
    for p in products:
        if p not in catalogue.payable:
            raise ConfigError(f"unknown product '{p}' (known: {', '.join(catalogue.payable)})")
    return products


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty string")
    return value


def _number(value: Any, what: str, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{what} must be a number")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        # Say only the bounds there are (never "between 0 and None").
        if minimum is not None and maximum is not None:
            raise ConfigError(f"{what} must be between {minimum:g} and {maximum:g}, got {value:g}")
        if minimum is not None:
            raise ConfigError(f"{what} must be {minimum:g} or more, got {value:g}")
        raise ConfigError(f"{what} must be {maximum:g} or less, got {value:g}")
    return float(value)
