"""The new owner's brief: who to talk to, what is used and paid for, and what to fix first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from auditor.model import SEVERITY_WEIGHT, Severity
from checks.common import (
    LEVEL_NAMES,
    SURVEY_EVENTS,
    cube,
    date_or_never,
    member_last_login,
    member_name,
    records,
    total,
    within,
)

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    import polars as pl

    from auditor.facts import Facts
else:
    from auditor.lazy import polars as pl

# The facts the brief reads besides the checks' (the engine gathers them whatever checks run).
BRIEF_FACTS = ("members", "cube")

DATA_MANAGEMENT_CHECKS = (
    "product_analytics.custom-events", "product_analytics.custom-event-properties",
    "product_analytics.autocapture-tuned", "product_analytics.actions-defined",
    "product_analytics.person-properties", "product_analytics.group-analytics",
)  # fmt: skip


def _person(member: dict[str, Any]) -> dict[str, Any]:
    last_login = member_last_login(member)
    return {"name": member_name(member), "email": (member.get("user") or {}).get("email"),
            "level": LEVEL_NAMES.get(member.get("level") or 1, "member"),
            "last_login": date_or_never(last_login), "_sort": str(last_login or "")}


EVENT_GROUPS = (
    ("Autocapture", ("$autocapture",)), ("Pageviews", ("$pageview", "$screen")), ("Page leaves", ("$pageleave",)),
    ("Identify and $set", ("$identify", "$set", "$groupidentify")), ("Flag calls", ("$feature_flag_called",)),
    ("Exceptions", ("$exception",)), ("Web vitals and rage clicks", ("$web_vitals", "$rageclick", "$dead_click")),
)


def event_mix(facts: Facts) -> list[dict[str, Any]]:
    """The 30-day volume by kind of event, for the report's chart."""
    if not facts.ok("cube"):
        return []
    df = cube(facts)
    events = total(df)
    if events == 0:
        return []
    rows = []
    named: set[str] = set()
    for label, names in EVENT_GROUPS:
        named.update(names)
        rows.append((label, total(df.filter(pl.col("event").is_in(names)))))
    custom = df.filter(~pl.col("event").str.starts_with("$") & ~pl.col("event").is_in(SURVEY_EVENTS))
    rows.append(("Custom events", total(custom)))
    rows.append(("Other", events - sum(n for _, n in rows)))
    return [{"label": label, "events": n, "share": round(n / events, 4)} for label, n in rows if n > 0]


def sdk_versions(facts: Facts, limit: int = 10) -> list[dict[str, Any]]:
    if not facts.ok("cube"):
        return []
    df = cube(facts).filter(pl.col("lib").is_not_null() & (pl.col("lib") != ""))
    events = total(df)
    if events == 0:
        return []
    by = df.group_by(["lib", "lib_version"]).agg(pl.col("events").sum()).sort(
        ["events", "lib", "lib_version"], descending=[True, False, False]).head(limit)
    return [{"lib": r["lib"], "version": r["lib_version"], "events": r["events"],
             "share": round(r["events"] / events, 4)} for r in by.iter_rows(named=True)]


def engagement(vitally: dict[str, Any] | None) -> str:
    """One line for the brief: has the customer talked to PostHog people, and when."""
    if not vitally:
        return "Unknown (Vitally not read)."
    inbound, outbound = vitally.get("last_inbound_message"), vitally.get("last_outbound_message")
    notes = len(vitally.get("notes") or [])
    if not inbound and not outbound and notes == 0:
        return "Little interaction with PostHog people so far: no messages or notes in Vitally."
    return (f"Engaged: last message from them {str(inbound or 'never')[:10]}, last from us "
            f"{str(outbound or 'never')[:10]}, {notes} note(s) in Vitally.")


def recommendations(results: Sequence[Mapping[str, Any]], scope: Mapping[str, Any],
                    limit: int = 5) -> list[dict[str, Any]]:
    """Failing and warning checks ranked by impact: an in-scope blocker first; then what saves money, by dollars a
    month where billing prices it; then paid products first, severity, fail before warn. Two findings about the
    same waste (the same impact key) make one recommendation."""
    # Paid products come first, with the categories judged whatever is paid for (not among those one can pay for).
    payable = set(scope.get("products") or {})
    paid = set(scope.get("paid_products") or []) | {r["category"] for r in results if r["category"] not in payable}
    # Handover items are PostHog's own homework (the Account Plan, attestations), not advice for the customer.
    candidates = [r for r in results if r["status"] in ("fail", "warn") and r.get("remediation")
                  and r["category"] != "handover"]

    def usd(r: Mapping[str, Any]) -> float:
        return float((r.get("impact") or {}).get("usd_per_month") or 0)

    def rank(r: Mapping[str, Any]) -> tuple[int, float, int, int, int]:
        blocker = r["severity"] == "blocker" and r["status"] == "fail" and r["category"] in paid
        return (0 if blocker else 1, -usd(r), 0 if r["category"] in paid else 1,
                -SEVERITY_WEIGHT[Severity(r["severity"])], 0 if r["status"] == "fail" else 1)

    chosen: list[Mapping[str, Any]] = []
    wastes: set[tuple[Any, Any]] = set()
    for r in sorted(candidates, key=rank):
        waste = (r.get("project_id"), (r.get("impact") or {}).get("key"))
        if waste[1] and waste in wastes:
            continue
        wastes.add(waste)
        chosen.append(r)
    return [
        {"id": r["id"], "title": r["title"], "summary": r["summary"], "remediation": r["remediation"],
         "docs_url": r["docs_url"], "status": r["status"], "severity": r["severity"],
         "impact": r.get("impact"), "links": [link for link in r.get("links") or [] if link.get("kind") != "query"],
         **({"project_name": r["project_name"]} if "project_name" in r else {})}
        for r in chosen[:limit]
    ]


def build_brief(facts: Facts, results: Sequence[Mapping[str, Any]], scope: Mapping[str, Any]) -> dict[str, Any]:
    members = records(facts.get("members"))
    people = [_person(m) for m in members]
    admins = [p for p in people if p["level"] in ("owner", "admin")]
    most_active = sorted(people, key=lambda p: p["_sort"], reverse=True)[:5]
    for p in people:
        p.pop("_sort", None)
    active_30d = sum(1 for m in members
                     if within(member_last_login(m), facts.as_of, 30))
    used, titles = scope.get("used") or {}, scope.get("products") or {}
    used_list = [p for p in titles if used.get(p)]
    not_used = [p for p in titles if used.get(p) is False]
    paid = scope.get("paid_products") or []
    paid_unused = [p for p in paid if used.get(p) is False] if scope.get("source") != "usage" else []
    top = recommendations(results, scope)
    by_id = {r["id"]: r for r in results}
    data_notes = [by_id[c]["summary"] for c in DATA_MANAGEMENT_CHECKS if c in by_id and by_id[c]["status"] != "error"]
    tip = (f"Open with the finding that matters most — {top[0]['title']}: {top[0]['summary']} Offer the fix "
           f"({top[0]['docs_url']}) and a short call to walk through it.") if top else \
        "Open by confirming their goals for the next quarter: the deployment is in good shape."
    vitally = facts.get("vitally")
    return {
        "engagement": engagement(vitally),
        "owners_and_admins": admins,
        "most_active_members": most_active,
        "members": len(members),
        "members_active_30d": active_30d,
        "products_used": [titles[p] for p in used_list],
        "products_not_used": [titles[p] for p in not_used],
        "paid_but_unused": [titles.get(p, p) for p in paid_unused],
        "data_management": " ".join(data_notes) or "Not assessed: the event data could not be read.",
        "top_recommendations": top,
        "first_outreach_tip": tip,
        "event_mix": event_mix(facts),
        "sdk_versions": sdk_versions(facts),
    }
