"""Shared fixtures: the loopback stand-in, a fast client, the demo's report, and vcrpy settings for the cassettes."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auditor.clients.posthog_api import KeyAnswers, PostHogClient, RateLimiter
from auditor.demo import demo_scenario
from tests.scenarios import VARIANTS
from tests.standin import StandIn, running

ROOT = Path(__file__).resolve().parent.parent
CANONICAL_HOST = "https://us.posthog.com"
# Recording against a real project instead of the stand-in (see README, "Cassettes").
RECORD_HOST = os.environ.get("AUDITOR_RECORD_HOST")
RECORD_PROJECT = os.environ.get("AUDITOR_RECORD_PROJECT")
CASSETTE_PROJECT = "4242"  # every recording is rewritten to this project id
SECRET_PATTERN = re.compile(r"phx_[A-Za-z0-9]{8,}|phc_[A-Za-z0-9]{8,}|phs_[A-Za-z0-9]{8,}|Bearer [A-Za-z0-9_]{12,}"
                            r"|Basic [A-Za-z0-9+/=]{12,}")
SECRET_KEYS = ("api_token", "secret_api_token", "secret_api_token_backup", "live_events_token", "token")
FIXED_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# Live stand-in tests share one clock, so the same HogQL asked in two tests is executed once.
SESSION_NOW = datetime.now(UTC)


@pytest.fixture
def scenario(request: pytest.FixtureRequest):
    """The demo project, or a variant of it (parametrize indirectly with a VARIANTS name). Cassette tests get it
    as of FIXED_NOW (they judge as of the recording day); live stand-in tests as of now."""
    base = demo_scenario(FIXED_NOW if request.node.get_closest_marker("vcr") else SESSION_NOW)
    variant = getattr(request, "param", None)
    if variant:
        VARIANTS[variant](base)
    return base


@pytest.fixture(scope="session")
def demo_report_json(tmp_path_factory: pytest.TempPathFactory) -> str:
    """report.json of `audit --demo`, through the CLI: audited once for the whole session."""
    from click.testing import CliRunner

    from auditor.cli import cli

    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(cli, ["audit", "--demo", "--format", "json", "--out", str(out), "--quiet"])
    assert result.exit_code == 1, result.output  # the demo customer is not ready
    return (out / "report.json").read_text()


@pytest.fixture
def demo_run(demo_report_json: str) -> dict[str, Any]:
    """The demo's RunResult as report.json holds it: a fresh copy for each test, which may change it."""
    result: dict[str, Any] = json.loads(demo_report_json)
    return result


@pytest.fixture(autouse=True)
def fresh_rate_limiters() -> Iterator[None]:
    """Each test starts as a fresh process would: with no requests counted against the key's hourly budgets
    (every stand-in test uses the same key, and the limiter is shared per key for the whole process)."""
    RateLimiter._shared.clear()
    KeyAnswers.forget()  # nor any answer kept for the key
    yield
    RateLimiter._shared.clear()
    KeyAnswers.forget()


@pytest.fixture
def standin(scenario) -> Iterator[StandIn]:
    with running(scenario) as s:
        yield s


def fast_client(url: str, key: str, **kwargs: Any) -> PostHogClient:
    """A client that never really sleeps between retries and has its own (unshared) rate limiter."""
    options: dict[str, Any] = {"max_retries": 3, "backoff_base": 0.01, "read_timeout": 5.0,
                               "limiter": RateLimiter(), "sleep": lambda s: None}
    options.update(kwargs)
    return PostHogClient(url, key, **options)


# ---- vcrpy (pytest-recording) ---------------------------------------------------------------------

def _scrub_text(text: str) -> str:
    return SECRET_PATTERN.sub("REDACTED", _canonical(text))


def _scrub_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("REDACTED" if k in SECRET_KEYS else _scrub_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v) for v in value]
    return value


# Where the stand-in listens while recording. Plain functions and module state, because pytest-recording
# deep-copies vcr_config (a bound method would be copied along with its instance).
RECORDING: dict[str, Any] = {"rewrites": [], "project": None}  # rewrites: (loopback base, canonical base)


def _canonical(text: str) -> str:
    for loopback, canonical in RECORDING["rewrites"]:
        text = text.replace(loopback, canonical)
    project = RECORDING["project"]
    if project and project != CASSETTE_PROJECT:
        text = re.sub(rf"/(projects|environments)/{re.escape(project)}/", rf"/\1/{CASSETTE_PROJECT}/", text)
    return text


def scrub_request(request: Any) -> Any:
    """Rewrite the loopback base URL to the canonical host so replay never depends on the stand-in's port."""
    request.uri = _canonical(request.uri)
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Drop cookies and volatile headers, redact secret fields and tokens, rewrite the loopback host."""
    response["headers"] = {k: v for k, v in response["headers"].items()
                           if k.lower() not in ("set-cookie", "date", "server")}
    body = response["body"].get("string", b"")
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    with contextlib.suppress(ValueError):
        text = json.dumps(_scrub_json(json.loads(text)))
    response["body"]["string"] = _scrub_text(text).encode()
    return response


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {
        "filter_headers": [("authorization", "REDACTED")],
        "decode_compressed_response": True,
        "before_record_request": scrub_request,
        "before_record_response": scrub_response,
        "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    return str(ROOT / "cassettes" / request.module.__name__.split(".")[-1])


@pytest.fixture
def recording_target(record_mode: str, scenario) -> Iterator[tuple[str, str, str]]:
    """(base URL, API key, project id) for a cassette test: the canonical host on replay; on record, the
    stand-in, or AUDITOR_RECORD_HOST / AUDITOR_RECORD_PROJECT with the key in POSTHOG_PERSONAL_API_KEY."""
    if record_mode == "none":
        yield CANONICAL_HOST, "phx_replay_key_not_used", CASSETTE_PROJECT
        return
    if RECORD_HOST:
        RECORDING["project"] = RECORD_PROJECT
        try:
            yield RECORD_HOST, os.environ["POSTHOG_PERSONAL_API_KEY"], RECORD_PROJECT or CASSETTE_PROJECT
        finally:
            RECORDING["project"] = None
        return
    with running(scenario) as s:
        RECORDING["rewrites"] = [(s.url, CANONICAL_HOST)]
        try:
            yield s.url, s.api_key, CASSETTE_PROJECT
        finally:
            RECORDING["rewrites"] = []


@pytest.fixture
def vitally_target(record_mode: str) -> Iterator[tuple[str, str]]:
    """(base URL, key) of Vitally for a cassette test: the EU base on replay, the loopback stand-in on record."""
    from auditor.clients.vitally_api import EU_BASE
    from tests.vitally_standin import running_vitally

    if record_mode == "none":
        yield EU_BASE, "vitally_replay_key_not_used"
        return
    with running_vitally() as v:
        RECORDING["rewrites"] = [(v.url, EU_BASE)]
        try:
            yield v.url, v.api_key
        finally:
            RECORDING["rewrites"] = []
