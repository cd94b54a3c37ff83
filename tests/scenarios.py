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


def _now(s: Scenario):
    from datetime import datetime

    return datetime.fromisoformat(s.cube_rows[0]["last_seen"].replace("Z", "+00:00"))


VARIANTS: dict[str, Callable[[Scenario], None]] = {
    "privacy_risky_replay": privacy_risky_replay,
    "flag_heavy_throwaway_ids": flag_heavy_throwaway_ids,
}
