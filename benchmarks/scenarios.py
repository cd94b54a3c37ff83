"""Benchmark projects: the demo (small) and a large project built on it, at any scale."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from auditor.demo import Scenario, demo_scenario
from auditor.demo.events import DAY, EventData, RawEvent, demo_events

LARGE = {"event_definitions": 20_000, "property_definitions": 100_000, "flags": 5_000, "cohorts": 2_000,
         "dashboards": 500, "insights": 5_000, "cube_rows": 50_000, "warehouse_schemas": 30}
LIBS = [("web", "1.447.0"), ("web", "1.380.1"), ("posthog-node", "5.61.0"), ("posthog-python", "7.88.0")]


@lru_cache(maxsize=4)
def large_events(rows: int, event_names: int, flags: int) -> EventData:
    """Raw events whose 30-day cube has `rows` rows (one (event, lib, version) each), plus a call of every other
    flag: the biggest HogQL answers an audit meets."""
    events = []
    for i in range(rows):
        lib, version = LIBS[(i // event_names) % len(LIBS)]
        props = {"$lib": lib, "$lib_version": version, **({"plan": "pro"} if i % 3 else {})}
        events.append(RawEvent(f"event_{i % event_names}", f"user-{i % 997}", 60.0 + (i * 7919) % int(29 * DAY),
                               json.dumps(props, separators=(",", ":"))))
    for i in range(0, flags, 2):
        props = {"$lib": "web", "$lib_version": "1.447.0", "$feature_flag": f"flag-{i}", "$session_id": f"s{i}"}
        events.append(RawEvent("$feature_flag_called", f"user-{i % 997}", 120.0 + i,
                               json.dumps(props, separators=(",", ":"))))
    return demo_events().plus(events)


def small(now: datetime | None = None) -> Scenario:
    return demo_scenario(now or datetime.now(UTC))


def large(scale: float = 1.0) -> Scenario:
    """The demo organization grown to LARGE × scale objects of every kind."""
    now = datetime.now(UTC)
    s = demo_scenario(now)

    def n(kind: str) -> int:
        return int(LARGE[kind] * scale)

    def ago(**kw: Any) -> str:
        return (now - timedelta(**kw)).isoformat().replace("+00:00", "Z")

    s.events = large_events(n("cube_rows"), max(1, n("event_definitions")), n("flags"))
    s.lists["event_definitions/"] = [{"id": i, "name": f"event_{i}", "last_seen_at": ago(days=i % 60)}
                                     for i in range(n("event_definitions"))]
    s.lists["property_definitions/"] = [{"id": f"p{i}", "name": (f"$initial_{i}" if i < 40 else f"prop_{i}"),
                                         "is_numerical": False} for i in range(n("property_definitions"))]
    s.lists["feature_flags/"] = [
        {"id": i, "key": f"flag-{i}", "name": f"Flag {i}", "active": i % 10 != 0, "deleted": False,
         "filters": {"groups": [{"properties": [], "rollout_percentage": (100 if i % 4 == 0 else 30)}]},
         "created_at": ago(days=200), "updated_at": ago(days=i % 120), "last_called_at": None}
        for i in range(n("flags"))
    ]
    s.lists["cohorts/"] = [{"id": i, "name": f"Cohort {i}", "is_static": i % 5 == 0, "deleted": False,
                            "count": i * 3, "filters": {"properties": {"values": []}}} for i in range(n("cohorts"))]
    s.lists["dashboards/"] = [{"id": i, "name": f"Dashboard {i}", "deleted": False,
                               "last_accessed_at": ago(days=i % 40)} for i in range(n("dashboards"))]
    s.lists["insights/"] = [{"id": i, "short_id": f"i{i}", "name": f"Insight {i}", "saved": True, "deleted": False,
                             "last_viewed_at": ago(days=i % 50)} for i in range(n("insights"))]
    source = s.lists["external_data_sources/"][0]
    template = source["schemas"][1]
    source["schemas"] = [{**template, "id": f"schema-{i}", "name": f"Table{i}",
                          "sync_type": "full_refresh" if i % 3 == 0 else "incremental"}
                         for i in range(LARGE["warehouse_schemas"])]
    return s
