"""Opt-in telemetry: one `posthog_audit_completed` event per audited account into an internal PostHog
project, grouped by the audited organization, so a team can chart its book's health in PostHog itself.

Off by default. Sent synchronously and flushed before returning. It carries scores, verdicts and ids, never a
key, a token, or anything about the customer's users.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

EVENT = "posthog_audit_completed"


@dataclass
class TelemetrySettings:
    enabled: bool = False
    host: str = "https://us.i.posthog.com"
    api_key_env: str = "POSTHOG_AUDITOR_TELEMETRY_KEY"  # the internal project's (public) project API key
    distinct_id: str = "posthog-auditor"


def event_properties(run: dict[str, Any], account: str) -> dict[str, Any]:
    readiness = run["readiness"]
    props: dict[str, Any] = {
        "account": account,
        "organization_id": run["target"].get("organization_id"),
        "project_ids": str(run["target"].get("project_id")),
        "mode": run.get("mode", "handover"),
        "readiness": readiness["score"],
        "ready": readiness["ready"],
        "band": readiness.get("band"),
        "reasons": len(readiness["reasons"]),
        "failed_checks": sorted({r["id"] for r in run["results"] if r["status"] == "fail"}),
        "tool_version": run.get("tool_version"),
        "run_id": run["run_id"],
    }
    for category in run["categories"]:
        props[f"score_{category['id']}"] = category["score"]
    return props


def send(settings: TelemetrySettings, run: dict[str, Any], account: str) -> bool:
    """Send the event if telemetry is on and a key is set; returns whether it was sent."""
    key = os.environ.get(settings.api_key_env)
    if not settings.enabled or not key:
        return False
    from posthog import Posthog

    client = Posthog(key, host=settings.host, sync_mode=True, disable_geoip=True, max_retries=2, timeout=10)
    try:
        org = run["target"].get("organization_id") or account
        client.capture(EVENT, distinct_id=settings.distinct_id, properties=event_properties(run, account),
                       groups={"organization": str(org)})
        client.flush()
    finally:
        client.shutdown()
    return True
