"""Product knowledge the engine needs for scope: what is paid for (billing) and what is used (facts)."""

from __future__ import annotations

from datetime import timedelta

from auditor.facts import Facts
from checks import billing
from checks.common import cube, event_total, parse_time, total

# Facts the report needs whatever checks run: the scope (billing, usage), the target and the brief.
SCOPE_FACTS = ("billing", "cube", "project", "organization", "members")
DAYS = 30


def paid_from_billing(facts: Facts) -> list[str] | None:
    return billing.paid_products(facts.get("billing"))


def products_used(facts: Facts) -> dict[str, bool]:
    """Which products show usage in 30 days (used to pick the scope when nothing says what is paid).
    Worked out once per run: the scope, the brief and handover.paid-products-used all ask."""
    return dict(facts.memo("products_used", lambda: _products_used(facts)))


def _products_used(facts: Facts) -> dict[str, bool]:
    used: dict[str, bool] = {}
    if facts.ok("cube"):
        df = cube(facts)
        used["product_analytics"] = total(df) > 0
        used["feature_flags"] = event_total(df, "$feature_flag_called") > 0
        used["surveys"] = event_total(df, "survey shown") > 0
        used["error_tracking"] = event_total(df, "$exception") > 0
    project = facts.get("project") or {}
    if facts.ok("replay"):
        from checks.session_replay import since

        used["session_replay"] = int(since(facts, DAYS)["recordings"].sum()) > 0
    elif facts.ok("project"):
        used["session_replay"] = bool(project.get("session_recording_opt_in"))
    if facts.ok("warehouse_sources"):
        cutoff_time = facts.as_of - timedelta(days=DAYS)
        used["data_warehouse"] = any(
            (parse_time(schema.get("last_synced_at")) or cutoff_time) > cutoff_time
            for source in facts.require("warehouse_sources") for schema in (source or {}).get("schemas") or []
        )
    return used
