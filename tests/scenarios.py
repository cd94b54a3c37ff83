"""Projects other than the demo, each a variant of it with one kind of trouble: served by the stand-in (which runs
every HogQL query on the variant's raw events) and recorded into cassettes."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from functools import lru_cache

from auditor.demo import Scenario
from auditor.demo.events import (
    DAY,
    NODE,
    EventData,
    RawEvent,
    Traffic,
    build_events,
    demo_events,
    demo_replay,
    event,
)


def _server_events(name: str, count: int, ids: list[str], seed: int, **properties: object) -> list[RawEvent]:
    rng = random.Random(seed)
    return [event(name, rng.choice(ids), rng.uniform(60, 30 * DAY),
                  {"$lib": "posthog-node", "$lib_version": NODE, **properties}) for _ in range(count)]


@lru_cache(maxsize=1)
def _privacy_risky_events() -> EventData:
    base = demo_events()
    return EventData(base.events, tuple(demo_replay(random.Random(7), short_share=0.7)))


def privacy_risky_replay(s: Scenario) -> None:
    """Inputs unmasked, network bodies and headers and canvas recorded, any origin, every bounce recorded."""
    s.project.update(
        session_recording_masking_config={"maskAllInputs": False},
        session_recording_network_payload_capture_config={"recordBody": True, "recordHeaders": True},
        session_replay_config={"record_canvas": True},
        recording_domains=[],
        session_recording_minimum_duration_milliseconds=0,
        session_recording_sample_rate="1.00",
    )
    s.events = _privacy_risky_events()


THROWAWAY_IDS = 950


@lru_cache(maxsize=1)
def _flag_heavy_events() -> EventData:
    base = demo_events().where(lambda e: not (e.event == "$feature_flag_called" and '"posthog-node"' in e.properties))
    calls = _server_events("$feature_flag_called", 24_000, [f"req-{i:05x}" for i in range(THROWAWAY_IDS)], seed=11,
                           **{"$feature_flag": "storage-quota-v2", "$feature_flag_response": True,
                              "locally_evaluated": False})
    return base.plus(calls)


def flag_heavy_throwaway_ids(s: Scenario) -> None:
    """A backend checks flags on every request with a random distinct id, remotely evaluated."""
    s.events = _flag_heavy_events()


def warehouse_trouble(s: Scenario) -> None:
    """A Postgres source whose 30M-row events table is re-synced in full every hour, one billing-limited schema."""
    source = s.lists["external_data_sources/"][0]
    source["schemas"].append({
        "id": "0191b5c1-5c00-0000-0000-0000000000f1", "name": "app_events", "should_sync": True,
        "status": "Completed", "sync_type": "full_refresh", "incremental": False, "incremental_field": None,
        "sync_frequency": "1hour", "latest_error": None, "last_synced_at": source["schemas"][0]["last_synced_at"],
        "table": {"id": "tbl-f1", "name": "pg_app_events", "row_count": 30_000_000,
                  "columns": [{"key": "id", "name": "id", "type": "string"}, {"key": "payload", "name": "payload"}]},
    })
    source["schemas"][1]["status"] = "Billing limits"


WEB_EXCEPTIONS = 840


@lru_cache(maxsize=1)
def _minified_exception_events() -> EventData:
    rng = random.Random(13)
    exceptions = [event("$exception", f"user-{rng.randrange(250):05d}", rng.uniform(60, 30 * DAY),
                        {"$lib": "web", "$lib_version": "1.380.1", "$session_id": f"0191x{rng.getrandbits(40):010x}",
                         "$exception_type": "TypeError", "$exception_list": [{"type": "TypeError", "stacktrace": {
                             "frames": [{"filename": "https://app.hedgebox.net/static/js/main.a81f3c.js",
                                         "lineno": 1, "colno": 48213, "resolved": False}]}}]})
                  for _ in range(WEB_EXCEPTIONS)]
    return demo_events().where(lambda e: e.event != "$exception").plus(exceptions)


def minified_exceptions(s: Scenario) -> None:
    """Exception autocapture on, many web exceptions, source maps referenced but never uploaded."""
    s.project["autocapture_exceptions_opt_in"] = True
    s.events = _minified_exception_events()
    s.lists["error_tracking/issues/"] = [{**i, "assignee": None, "status": "active"}
                                         for i in s.lists["error_tracking/issues/"]]


VARIANTS: dict[str, Callable[[Scenario], None]] = {
    "privacy_risky_replay": privacy_risky_replay,
    "flag_heavy_throwaway_ids": flag_heavy_throwaway_ids,
    "warehouse_trouble": warehouse_trouble,
    "minified_exceptions": minified_exceptions,
}

HEALTHY_TRAFFIC = Traffic(new_version_share=1.0, legacy_version="1.447.0", autocapture=8_000, proxied=True,
                          anonymous_personless=True, test_host_every=0, illegal_ids=0, local_evaluation=True,
                          survey_sent=12, exceptions=0, short_replay_share=0.1)


def healthy(s: Scenario) -> None:
    """A customer onboarded the way the handbook asks: every product check passes."""
    s.events = build_events(HEALTHY_TRAFFIC)
    s.plain["sdk_health/report/"] = {"overall_health": "healthy", "health": "success", "needs_updating_count": 0,
                                     "team_sdk_count": 2, "sdks": []}
    s.plain["ingestion_warnings_v2/"] = []
    s.project.update(session_recording_minimum_duration_milliseconds=2000, session_recording_sample_rate="0.50",
                     recording_domains=["https://app.hedgebox.net"], autocapture_exceptions_opt_in=True)
    s.lists["actions/"].append({"id": 3, "name": "Clicked upload", "deleted": False,
                                "steps": [{"event": "$autocapture", "text": "Upload"}]})
    for m in s.members[:12]:
        m["last_login"] = s.members[0]["last_login"]
    flags = s.lists["feature_flags/"]
    flags[:] = [f for f in flags if f["key"] in ("new-file-browser", "bulk-upload")]
    s.lists["experiments/"][0]["end_date"] = s.lists["experiments/"][1]["end_date"]


VARIANTS["healthy"] = healthy


def with_sibling(s: Scenario) -> None:
    """An account of two projects: the demo, and a marketing site project with private data at risk."""
    sibling = copy.deepcopy(s)
    sibling.project_id = "4243"
    sibling.project.update(id=4243, name="Hedgebox (marketing site)")
    privacy_risky_replay(sibling)
    s.siblings["4243"] = sibling


VARIANTS["with_sibling"] = with_sibling


def untyped_booleans(s: Scenario) -> None:
    """A project whose Boolean properties have no Boolean definition: HogQL reads them as text."""
    s.property_types = {}


VARIANTS["untyped_booleans"] = untyped_booleans


@lru_cache(maxsize=1)
def _server_only_events() -> EventData:
    return demo_events().where(lambda e: '"$lib":"web"' not in e.properties, lambda r: False)


def server_only(s: Scenario) -> None:
    """Only a backend SDK sends events: no event carries a session, and nothing records replays."""
    s.events = _server_only_events()
    s.project.update(session_recording_opt_in=False, app_urls=[])


VARIANTS["server_only"] = server_only


def far_timezone(s: Scenario) -> None:
    """The project reports in Pacific/Auckland (UTC+13 in November): its days start 13 hours before UTC's."""
    s.project["timezone"] = "Pacific/Auckland"


VARIANTS["far_timezone"] = far_timezone


SCRIPT = "<script>document.body.setAttribute('data-pwned','script')</script>"
IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
LINK = "<a href=\"javascript:document.body.setAttribute('data-pwned','link')\">open</a>"
SVG = "\"><svg onload=\"document.body.setAttribute('data-pwned','svg')\">"
PAYLOADS = (SCRIPT, IMG, LINK, SVG)


@lru_cache(maxsize=1)
def _hostile_events() -> EventData:
    users = [f"user-{i:05d}" for i in range(40)]
    return demo_events().plus(_server_events(IMG, 500, users, seed=17) + _server_events(LINK, 400, users, seed=19))


def hostile(s: Scenario) -> None:
    """Names a customer controls, carrying HTML and JavaScript: the report must show them as text."""
    s.project["name"] = f"Acme {SCRIPT}"
    s.organization["name"] = f"Org {IMG}"
    s.members[0]["user"]["first_name"] = SVG
    s.events = _hostile_events()
    flag = s.lists["feature_flags/"][3]  # dark-mode: stale and uncalled, so it is listed in two findings
    flag["key"] = SCRIPT
    s.lists["surveys/"][0]["name"] = LINK
    s.lists["property_definitions/"].append({"id": "pp-x", "name": SVG, "is_numerical": False})


VARIANTS["hostile"] = hostile
