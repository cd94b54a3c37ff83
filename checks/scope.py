"""Product knowledge the engine needs for scope: what is paid for (billing) and what is used (facts)."""

from __future__ import annotations

from auditor.facts import Facts
from checks import billing
from checks.common import cube, event_total, total

# Facts the report needs whatever checks run: the scope (billing, usage), the target and the brief.
SCOPE_FACTS = ("billing", "cube", "project", "organization", "members")


def paid_from_billing(facts: Facts) -> list[str] | None:
    return billing.paid_products(facts.get("billing"))


def products_used(facts: Facts) -> dict[str, bool]:
    """Which products show usage in 30 days (used to pick the scope when nothing says what is paid)."""
    used: dict[str, bool] = {}
    if facts.ok("cube"):
        df = cube(facts)
        used["product_analytics"] = total(df) > 0
        used["feature_flags"] = event_total(df, "$feature_flag_called") > 0
        used["surveys"] = event_total(df, "survey shown") > 0
        used["error_tracking"] = event_total(df, "$exception") > 0
    project = facts.get("project") or {}
    used["session_replay"] = bool(project.get("session_recording_opt_in"))
    if facts.ok("warehouse_sources"):
        used["data_warehouse"] = bool(facts.get("warehouse_sources"))
    return used
