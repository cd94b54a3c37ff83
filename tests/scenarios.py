"""Projects other than the demo, each a variant of it with one kind of trouble: served by the stand-in and
recorded into cassettes."""

from __future__ import annotations

from collections.abc import Callable

from auditor.demo import Scenario, cube_row


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
    for row in s.replay_rows:
        row["short_recordings"] = row["recordings"] * 7 // 10


def flag_heavy_throwaway_ids(s: Scenario) -> None:
    """A backend checks flags on every request with a random distinct id, remotely evaluated."""
    now_row = next(r for r in s.cube_rows if r["event"] == "$feature_flag_called" and r["lib"] == "posthog-node")
    s.cube_rows.remove(now_row)
    s.cube_rows.append(cube_row("$feature_flag_called", "posthog-node", "5.61.0", 2_400_000, _now(s),
                                distinct_ids=95_000, sessions=0))
    for row in s.identity_rows:
        if row["kind"] == "totals":
            row.update(events=row["events"] + 2_310_000, distinct_ids=150_000)
        if row["kind"] == "flag" and row["lib"] == "posthog-node":
            row.update(events=2_400_000, distinct_ids=95_000)
        if row["kind"] == "flag_only_ids":
            row.update(events=2_300_000, distinct_ids=95_000)


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


def minified_exceptions(s: Scenario) -> None:
    """Exception autocapture on, many web exceptions, source maps referenced but never uploaded."""
    s.project["autocapture_exceptions_opt_in"] = True
    for row in s.cube_rows:
        if row["event"] == "$exception":
            row.update(events=84_000, events_7d=19_600, events_24h=2_800)
    s.lists["error_tracking/issues/"] = [{**i, "assignee": None, "status": "active"}
                                         for i in s.lists["error_tracking/issues/"]]


def _now(s: Scenario):
    from datetime import datetime

    return datetime.fromisoformat(s.cube_rows[0]["last_seen"].replace("Z", "+00:00"))


VARIANTS: dict[str, Callable[[Scenario], None]] = {
    "privacy_risky_replay": privacy_risky_replay,
    "flag_heavy_throwaway_ids": flag_heavy_throwaway_ids,
    "warehouse_trouble": warehouse_trouble,
    "minified_exceptions": minified_exceptions,
}
