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


def healthy(s: Scenario) -> None:
    """A customer onboarded the way the handbook asks: every product check passes."""
    from auditor.demo import cube_row

    now = _now(s)
    keep = [r for r in s.cube_rows if r["lib"] != "web" or r["lib_version"] == "1.447.0"]
    s.cube_rows[:] = keep
    for row in s.cube_rows:
        row.update(illegal_id_events=0, test_host_events=0)
        if row["lib"] == "web":
            row.update(proxied=row["events"], personless=row["events"] // 2)
    s.cube_rows.append(cube_row("$identify", "web", "1.447.0", 30_000, now, identified=30_000, proxied=30_000))
    s.cube_rows.append(cube_row("$groupidentify", "web", "1.447.0", 2_000, now, proxied=2_000))
    s.cube_rows.append(cube_row("$feature_flag_called", "web", "1.447.0", 140_000, now, proxied=140_000))
    s.cube_rows.append(cube_row("survey shown", "web", "1.447.0", 12_000, now, proxied=12_000))
    s.cube_rows.append(cube_row("survey sent", "web", "1.447.0", 900, now, proxied=900))
    s.identity_rows[:] = [r for r in s.identity_rows if r["kind"] != "illegal_id"]
    for row in s.identity_rows:
        if row["kind"] == "flag" and row["lib"] == "posthog-node":
            row["flag_locally_evaluated"] = "true"
        if row["kind"] == "totals":
            row["extra"] = 90_000
    s.plain["sdk_health/report/"] = {"overall_health": "healthy", "health": "success", "needs_updating_count": 0,
                                     "team_sdk_count": 2, "sdks": []}
    s.plain["ingestion_warnings_v2/"] = []
    s.project.update(session_recording_minimum_duration_milliseconds=2000, session_recording_sample_rate="0.50",
                     recording_domains=["https://app.hedgebox.net"], autocapture_exceptions_opt_in=True)
    for row in s.replay_rows:
        row["short_recordings"] = row["recordings"] // 10
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
    import copy

    sibling = copy.deepcopy(s)
    sibling.project_id = "4243"
    sibling.project.update(id=4243, name="Hedgebox (marketing site)")
    privacy_risky_replay(sibling)
    s.siblings["4243"] = sibling


VARIANTS["with_sibling"] = with_sibling


SCRIPT = "<script>document.body.setAttribute('data-pwned','script')</script>"
IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
LINK = "<a href=\"javascript:document.body.setAttribute('data-pwned','link')\">open</a>"
SVG = "\"><svg onload=\"document.body.setAttribute('data-pwned','svg')\">"
PAYLOADS = (SCRIPT, IMG, LINK, SVG)


def hostile(s: Scenario) -> None:
    """Names a customer controls, carrying HTML and JavaScript: the report must show them as text."""
    from auditor.demo import cube_row

    s.project["name"] = f"Acme {SCRIPT}"
    s.organization["name"] = f"Org {IMG}"
    s.members[0]["user"]["first_name"] = SVG
    s.cube_rows.append(cube_row(IMG, "posthog-node", "5.61.0", 50_000, _now(s), with_custom_properties=10))
    s.cube_rows.append(cube_row(LINK, "posthog-node", "5.61.0", 40_000, _now(s)))
    flag = s.lists["feature_flags/"][3]  # dark-mode: stale and uncalled, so it is listed in two findings
    flag["key"] = SCRIPT
    s.lists["surveys/"][0]["name"] = LINK
    s.lists["property_definitions/"].append({"id": "pp-x", "name": SVG, "is_numerical": False})
    s.identity_rows.append({"kind": "illegal_id", "key": IMG, "lib": "", "flag_locally_evaluated": "",
                            "events": 5, "distinct_ids": 1, "sessions": 1, "extra": 0})


VARIANTS["hostile"] = hostile
