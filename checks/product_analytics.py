"""Product analytics checks: identity, capture tuning, the data model and whether people use what they built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.model import Finding, Impact, Severity, Status, Table, check
from checks import impact as pricing
from checks.billing import group_analytics_paid
from checks.common import (
    SURVEY_EVENTS,
    cube,
    date_or_never,
    event_mix,
    event_total,
    frame_table,
    identity,
    identity_totals,
    member_last_login,
    num,
    pct,
    records,
    share,
    total,
    truncation_note,
    warning_counts,
    web,
    within,
)
from checks.impact import EVENTS, GROUP_ANALYTICS, PERSON_PROFILES, Charge

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    import polars as pl

    from auditor.facts import Facts
else:
    from auditor.lazy import polars as pl

DOCS = "https://posthog.com/docs"


def custom_events(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(~pl.col("event").str.starts_with("$") & ~pl.col("event").is_in(SURVEY_EVENTS))


def custom_event_totals(facts: Facts) -> pl.DataFrame:
    """Each custom event's events and events with custom properties, most frequent first (two checks read it: at
    50,000 cube rows the grouping is worth doing once)."""
    df: pl.DataFrame = facts.memo("custom_event_totals", lambda: custom_events(cube(facts)).group_by("event").agg(
        pl.col("events").sum(), pl.col("with_custom_properties").sum()
    ).sort(["events", "event"], descending=[True, False]))
    return df


def identifying(df: pl.DataFrame) -> bool:
    return event_total(df, "$identify") > 0 or total(df, "identified") > 0


@check(
    id="product_analytics.identify-used",
    title="posthog.identify() is implemented",
    failure_title="Users are never identified",
    description="Without identify, a signed-in user is a new anonymous person on every device and browser: "
    "funnels, retention and per-customer analysis are wrong, and flags cannot target known users.",
    severity=Severity.BLOCKER,
    docs_url=f"{DOCS}/product-analytics/identify",
    requires=("cube",),
)
def identify_used(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    identifies, identified = event_total(df, "$identify"), total(df, "identified")
    metrics = {"identify_events": identifies, "events_from_identified_users": identified, **truncation_note(facts)}
    if identifies or identified:
        return Finding(Status.PASS, f"{num(identifies)} $identify events and {num(identified)} events from "
                       "identified users in 30 days.", metrics)
    return Finding(Status.FAIL, "No $identify events and no events from identified users in 30 days.", metrics,
                   remediation="Call `posthog.identify(userId)` once after sign-up and log-in (and "
                   "`posthog.reset()` on log-out); server SDKs should send the same user id as distinct_id.")


@check(
    id="product_analytics.identify-call-rate",
    title="identify and $set are called sparingly",
    failure_title="identify / $set are over-called",
    description="Each identify or $set is a billed event and a person update; calling them on every page view "
    "inflates the bill and slows ingestion. Once per session is enough.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/product-analytics/cutting-costs",
    requires=("cube",),
    uses=("identity", "billing"),
    thresholds={"pass_share": 0.05, "warn_share": 0.10, "per_session": 4},
)
def identify_call_rate(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    calls = event_total(df, "$identify") + event_total(df, "$set")
    events = total(df)
    if events == 0:
        return Finding(Status.SKIP, "No events in 30 days.", {})
    ratio = share(calls, events)
    metrics: dict[str, Any] = {"identify_and_set_events": calls, "share_of_events": pct(ratio),
                               **truncation_note(facts)}
    per_session = None
    sessions = session_calls = 0
    if facts.ok("identity"):
        # Per session: the calls made in a session (server-side identify carries none), over the sessions.
        sessions = identity_totals(facts)["sessions"]
        session_calls = event_total(df, "$identify", "session_events") + event_total(df, "$set", "session_events")
        if sessions:
            per_session = session_calls / sessions
            metrics["per_session"] = round(per_session, 2)
        else:
            metrics["per_session"] = "not judged: no events carry a session"
    fix = ("Call identify once per session, guarded by `posthog._isIdentified()`, and send person properties with "
           "identify or `$set` only when they change.")
    summary = f"$identify + $set are {pct(ratio)} of events"
    if per_session is not None:
        summary += f" ({per_session:.1f} per session)."
    elif facts.ok("identity"):
        summary += " (not judged per session: no events carry a session)."
    else:
        summary += "."
    cost = identify_cost(facts, session_calls - sessions) if per_session is not None else None
    if ratio > thresholds["warn_share"]:
        return Finding(Status.FAIL, summary, metrics, remediation=fix, impact=cost)
    if ratio > thresholds["pass_share"] or (per_session is not None and per_session > thresholds["per_session"]):
        return Finding(Status.WARN, summary, metrics, remediation=fix, impact=cost)
    return Finding(Status.PASS, summary, metrics)


def identify_cost(facts: Facts, excess: int) -> Impact | None:
    """$identify and $set beyond one per session: billed events, each also processed with a person profile."""
    units = pricing.per_month(max(excess, 0), facts, "cube")
    return pricing.impact(facts, [Charge(EVENTS, units, "$identify/$set events", "beyond one per session"),
                                  Charge(PERSON_PROFILES, units, "person-processed events", "the same events")],
                          pricing.key(facts, "identify-over-calls"))


@check(
    id="product_analytics.illegal-distinct-ids",
    title="No hard-coded or placeholder distinct ids",
    failure_title="Placeholder distinct ids are in use",
    description="Ids such as 'undefined', 'null', 'guest' or '0' merge unrelated users into one person. PostHog "
    "refuses to merge them, so those users' histories are lost or mixed.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/product-analytics/identify",
    requires=("cube",),
    uses=("identity", "ingestion_warnings"),
)
def illegal_distinct_ids(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    events = total(df, "illegal_id_events")
    refused = warning_counts(facts.get("ingestion_warnings") or []).get("cannot_merge_with_illegal_distinct_id", 0)
    rows: list[list[Any]] = []
    if facts.ok("identity"):
        ids = identity(facts).filter(pl.col("kind") == "illegal_id").sort(["events", "key"], descending=[True, False])
        rows = [[r["key"], r["events"], r["sessions"]] for r in ids.iter_rows(named=True)]
    table = Table.of(["distinct id", "events (30 d)", "sessions"], rows) if rows else None
    metrics = {"events_with_illegal_ids": events, "refused_merges_7d": refused, **truncation_note(facts)}
    if events or refused:
        named = ", ".join(repr(r[0]) for r in rows[:3]) or "see ingestion warnings"
        return Finding(Status.FAIL, f"{num(events)} events use placeholder distinct ids ({named}); "
                       f"{num(refused)} merges refused in 7 days.", metrics, table,
                       "Find where the id comes from (often `identify(user.id)` before the user loads, or a "
                       "server SDK sending a constant) and send the real user id, or skip the call.")
    return Finding(Status.PASS, "No events with placeholder distinct ids in 30 days.", metrics)


@check(
    id="product_analytics.merge-conflicts",
    title="identify is not called with a second id for an identified user",
    failure_title="Already-identified users are being re-identified",
    description="When identify is called with a different id for a user who is already identified, PostHog "
    "refuses the merge: usually a shared device, a missing reset() on log-out, or the wrong id being sent.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/data/ingestion-warnings",
    requires=("ingestion_warnings",),
    thresholds={"fail_count": 100},
)
def merge_conflicts(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    count = warning_counts(facts.require("ingestion_warnings")).get("cannot_merge_already_identified", 0)
    metrics = {"cannot_merge_already_identified_7d": count}
    fix = "Call `posthog.reset()` on log-out and identify with one stable id per user (not an email in one place " \
          "and a database id in another)."
    if count >= thresholds["fail_count"]:
        return Finding(Status.FAIL, f"{num(count)} refused merges of already-identified users in 7 days.",
                       metrics, remediation=fix)
    if count:
        return Finding(Status.WARN, f"{num(count)} refused merges of already-identified users in 7 days.",
                       metrics, remediation=fix)
    return Finding(Status.PASS, "No refused merges of already-identified users in 7 days.", metrics)


@check(
    id="product_analytics.group-analytics",
    title="posthog.group() is implemented correctly",
    failure_title="Group analytics is not implemented well",
    description="B2B analysis (per company, per workspace) needs groups; without group properties they cannot "
    "be filtered, and over-calling group identify inflates the bill.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/product-analytics/group-analytics",
    requires=("groups", "cube"),
    uses=("billing", "organization"),
    thresholds={"groupidentify_share": 0.05},
)
def group_analytics(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    types = [g for g in facts.require("groups") or [] if isinstance(g, dict)]
    paid = group_analytics_paid(facts.get("billing"))
    severity = Severity.MAJOR if paid else Severity.INFO
    with_groups, group_identify, events = total(df, "with_groups"), event_total(df, "$groupidentify"), total(df)
    metrics = {"group_types": len(types), "events_with_groups": with_groups, "groupidentify_events": group_identify,
               "group_analytics_paid": "unknown" if paid is None else ("yes" if paid else "no"),
               **truncation_note(facts)}
    table = Table.of(["index", "group type"], [[g.get("group_type_index"), g.get("group_type")] for g in types]) \
        if types else None
    if not types and not with_groups:
        if paid:
            projects = len((facts.get("organization") or {}).get("teams") or [])
            why = "Group analytics add-on paid, no group used in this project" + (
                f" (if none of the organization's other {projects - 1} project(s) uses groups either)"
                if projects > 1 else "")
            cost = pricing.whole_charge(facts, GROUP_ANALYTICS, pricing.org_key("group-analytics-unused"), why)
            return Finding(Status.FAIL, "Paying for group analytics, but no group types and no events with groups.",
                           metrics, table, "Call `posthog.group('company', id, {name, plan})` after login, or "
                           "remove the group analytics add-on.", severity, impact=cost)
        return Finding(Status.INFO, "Group analytics is not used (and not paid for).", metrics, severity=severity)
    ratio = share(group_identify, events)
    if types and not group_identify:
        return Finding(Status.WARN, f"{len(types)} group type(s) but no $groupidentify: groups have no properties.",
                       metrics, table, "Pass group properties with `posthog.group(type, key, {name: …})` so "
                       "groups can be filtered and named.", severity)
    if ratio > thresholds["groupidentify_share"]:
        return Finding(Status.WARN, f"$groupidentify is {pct(ratio)} of events: group() is over-called.",
                       metrics, table, "Call group() with properties once per group per session, not on "
                       "every page.", severity)
    return Finding(Status.PASS, f"{len(types)} group type(s), {pct(share(with_groups, events))} of events carry "
                   "a group.", metrics, table, severity=severity)


@check(
    id="product_analytics.person-profiles",
    title="Anonymous vs identified events are understood",
    failure_title="Every anonymous visitor gets a person profile",
    description="Events processed with a person profile cost up to 4× more than anonymous events. Sites where "
    "most visitors never sign in should only create profiles for identified users.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/data/anonymous-vs-identified-events",
    requires=("cube", "identity"),
    uses=("billing",),
    thresholds={"identified_share": 0.20},
)
def person_profiles(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    w = web(cube(facts))
    web_events = total(w)
    if web_events == 0:
        return Finding(Status.SKIP, "No web (posthog-js) traffic in 30 days.", {})
    totals = identity_totals(facts)
    identified_ratio = share(totals["identified_ids"], totals["distinct_ids"])
    personless = total(w, "personless")
    metrics = {"web_events": web_events, "anonymous_web_events": personless,
               "identified_share_of_distinct_ids": pct(identified_ratio)}
    if personless == 0 and identified_ratio < thresholds["identified_share"]:
        # Events of users not (yet) identified, processed with a person profile: with identified_only they would be
        # anonymous, billed at the base event rate without the person profiles charge.
        anonymous = max(web_events - total(w, "identified") - personless, 0)
        cost = pricing.impact(facts, [Charge(PERSON_PROFILES, pricing.per_month(anonymous, facts, "cube"),
                                             "web events processed with a person profile",
                                             "of users not identified")],
                              pricing.key(facts, "person-profiles"),
                              caveat="they would still be billed as anonymous events")
        return Finding(Status.WARN, f"All web events create person profiles, yet only {pct(identified_ratio)} of "
                       "distinct ids are identified.", metrics, remediation="Set `person_profiles: "
                       "'identified_only'` in posthog.init: anonymous events cost up to 4× less.", impact=cost)
    return Finding(Status.PASS, f"{pct(share(personless, web_events))} of web events are anonymous; "
                   f"{pct(identified_ratio)} of distinct ids are identified.", metrics)


def autocapture_actions(actions: list[Any]) -> list[dict[str, Any]]:
    return [
        a for a in actions
        if isinstance(a, dict) and not a.get("deleted")
        and any((s or {}).get("event") == "$autocapture" for s in a.get("steps") or [])
    ]


@check(
    id="product_analytics.autocapture-tuned",
    title="Automatic capture is tuned",
    failure_title="Autocapture dominates the event volume",
    description="Untuned autocapture can be most of a bill while nobody looks at it. Autocapture is valuable "
    "when actions turn the clicks that matter into named, analysable events.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/product-analytics/autocapture",
    requires=("cube", "project"),
    uses=("actions", "billing"),
    thresholds={"max_share": 0.50},
)
def autocapture_tuned(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    events, autocaptured = total(df), event_total(df, "$autocapture")
    opted_out = bool(facts.require("project").get("autocapture_opt_out"))
    if autocaptured == 0 and opted_out:
        return Finding(Status.SKIP, "Autocapture is off and no autocaptured events arrive.",
                       {"autocapture_opt_out": True})
    ratio = share(autocaptured, events)
    metrics = {**event_mix(df), **truncation_note(facts)}  # event_mix includes the $autocapture share
    if ratio <= thresholds["max_share"]:
        return Finding(Status.PASS, f"$autocapture is {pct(ratio)} of events.", metrics)
    actions = autocapture_actions(facts.require("actions"))
    metrics["actions_on_autocapture"] = len(actions)
    fix = ("Restrict autocapture (`autocapture: {url_allowlist, dom_event_allowlist, element_allowlist, "
           "css_selector_allowlist}`) or turn it off where custom events cover the journey, and build actions "
           "on the clicks that matter.")
    if actions:
        return Finding(Status.WARN, f"$autocapture is {pct(ratio)} of events; {len(actions)} action(s) use it.",
                       metrics, remediation=fix)
    return Finding(Status.FAIL, f"$autocapture is {pct(ratio)} of events and no action uses it.", metrics,
                   remediation=fix, impact=autocapture_cost(facts, df, thresholds["max_share"]))


def autocapture_cost(facts: Facts, df: pl.DataFrame, max_share: float) -> Impact | None:
    """The autocaptured events beyond the threshold that no action uses: removing x of them brings autocapture to
    `max_share` of events, (a - x) / (E - x) = s, so x = (a - sE) / (1 - s). Their person-processed part (events
    without `$process_person_profile = false`) also carries the person profiles charge."""
    autocaptured, events = event_total(df, "$autocapture"), total(df)
    excess = (autocaptured - max_share * events) / (1 - max_share) if max_share < 1 else 0
    if excess <= 0:
        return None
    person_share = share(autocaptured - event_total(df, "$autocapture", "personless"), autocaptured)
    units = pricing.per_month(excess, facts, "cube")
    return pricing.impact(facts, [
        Charge(EVENTS, units, "$autocapture events", f"beyond {pct(max_share)} of events, used by no action"),
        Charge(PERSON_PROFILES, units * person_share, "person-processed events",
               "the same events" if person_share >= 1 else f"{pct(person_share)} of the same events"),
    ], pricing.key(facts, "autocapture-unused"))


@check(
    id="product_analytics.custom-events",
    title="Custom events are defined",
    failure_title="No custom events",
    description="Custom events name what matters to the business (signed up, invited teammate, upgraded). "
    "Without them, analysis rests on clicks and pageviews alone.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/product-analytics/capture-events",
    requires=("cube",),
    thresholds={"pass_share": 0.05},
)
def custom_events_defined(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    events = total(df)
    if events == 0:
        return Finding(Status.SKIP, "No events in 30 days.", {})
    custom = custom_event_totals(facts).select("event", "events")
    ratio = share(total(custom), events)
    table = frame_table(["custom event", "events (30 d)"], custom)
    metrics = {"custom_event_types": custom.height, "custom_share": pct(ratio), **truncation_note(facts)}
    fix = "Capture the key moments of the product with `posthog.capture('signed up', {plan: …})`, " \
          "on the server where possible."
    if ratio >= thresholds["pass_share"]:
        return Finding(Status.PASS, f"{custom.height} custom event types, {pct(ratio)} of events.", metrics, table)
    if ratio > 0:
        return Finding(Status.WARN, f"Custom events are only {pct(ratio)} of events ({custom.height} types).",
                       metrics, table, fix)
    return Finding(Status.FAIL, "No custom events in 30 days.", metrics, remediation=fix)


@check(
    id="product_analytics.custom-event-properties",
    title="Custom events carry properties",
    failure_title="Custom events carry no properties",
    description="Properties (plan, source, amount) are what make an event analysable: breakdowns and filters "
    "need them.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/product-analytics/capture-events",
    requires=("cube",),
    thresholds={"top_events": 20, "pass_share": 0.80, "warn_share": 0.50},
)
def custom_event_properties(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    custom = custom_event_totals(facts).head(int(thresholds["top_events"]))
    if custom.height == 0:
        return Finding(Status.SKIP, "No custom events to judge.", {})
    # An event "carries properties" when most of its occurrences have at least one non-$ property.
    custom = custom.with_columns((pl.col("with_custom_properties") * 2 >= pl.col("events")).alias("has_props"))
    with_props = int(custom["has_props"].sum())
    ratio = share(with_props, custom.height)
    table = Table.of(["custom event", "events", "share with custom properties"], [
        [r["event"], r["events"], pct(share(r["with_custom_properties"], r["events"]))]
        for r in custom.iter_rows(named=True)
    ])
    metrics = {"events_judged": custom.height, "with_properties": with_props, **truncation_note(facts)}
    summary = f"{with_props} of the top {custom.height} custom events carry properties."
    fix = "Add the properties analysts break down by (plan, source, amount, item) to each capture call."
    if ratio >= thresholds["pass_share"]:
        return Finding(Status.PASS, summary, metrics, table)
    return Finding(Status.WARN if ratio >= thresholds["warn_share"] else Status.FAIL, summary, metrics, table, fix)


@check(
    id="product_analytics.person-properties",
    title="Identified persons have meaningful properties",
    failure_title="Persons have no properties of their own",
    description="Person properties (email, plan, company) power cohorts, flag targeting and every per-user "
    "breakdown.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/product-analytics/person-properties",
    requires=("person_properties", "cube"),
    thresholds={"pass_count": 3},
)
def person_properties(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    if not identifying(cube(facts)):
        return Finding(Status.SKIP, "Users are not identified, so person properties do not apply yet.", {})
    names = sorted({
        p["name"] for p in facts.require("person_properties")
        if isinstance(p, dict) and p.get("name") and not str(p["name"]).startswith("$") and not p.get("virtual")
    })
    metrics = {"custom_person_properties": len(names)}
    table = Table.of(["person property"], [[n] for n in names]) if names else None
    fix = "Send person properties with identify: `posthog.identify(id, {email, name, plan, company})`."
    if len(names) >= thresholds["pass_count"]:
        return Finding(Status.PASS, f"{len(names)} custom person properties.", metrics, table)
    if names:
        return Finding(Status.WARN, f"Only {len(names)} custom person properties.", metrics, table, fix)
    return Finding(Status.FAIL, "Identified persons have no custom properties.", metrics, remediation=fix)


@check(
    id="product_analytics.actions-defined",
    title="Actions exist where autocapture carries the data",
    failure_title="Autocapture data without actions",
    description="Actions turn autocaptured clicks and pageviews into named events that insights can use, "
    "retroactively.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/data/actions",
    requires=("actions", "cube"),
    thresholds={"autocapture_heavy_share": 0.30},
)
def actions_defined(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    actions = [a for a in facts.require("actions") if isinstance(a, dict) and not a.get("deleted")]
    ratio = share(event_total(df, "$autocapture"), total(df))
    metrics = {"actions": len(actions), "autocapture_share": pct(ratio)}
    table = Table.of(["action", "created"], actions,
                     row=lambda a: [a.get("name"), date_or_never(a.get("created_at"))]) if actions else None
    if actions:
        return Finding(Status.PASS, f"{len(actions)} action(s) defined.", metrics, table)
    fix = "Define actions for the key clicks and pages (Data management → Actions) so insights can use them."
    if ratio > thresholds["autocapture_heavy_share"]:
        return Finding(Status.FAIL, f"No actions, while $autocapture is {pct(ratio)} of events.", metrics,
                       remediation=fix)
    return Finding(Status.WARN, "No actions defined.", metrics, remediation=fix)


def _viewed_at(item: dict[str, Any]) -> Any:
    return item.get("last_viewed_at") or item.get("last_accessed_at")


@check(
    id="product_analytics.dashboards-in-use",
    title="Insights and dashboards are built and used",
    failure_title="Insights and dashboards are not used",
    description="Saved insights and dashboards that people open are the clearest sign the customer gets value "
    "from product analytics.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/product-analytics/dashboards",
    requires=("dashboards", "insights"),
    thresholds={"min_insights": 5, "min_dashboards": 1, "recent_days": 7, "stale_days": 30},
)
def dashboards_in_use(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    dashboards = [d for d in facts.require("dashboards") if isinstance(d, dict) and not d.get("deleted")]
    # How many saved insights there are (PostHog's own count: its list leaves deleted ones out) and the most
    # recently viewed of them: enough for the latest view (auditor/facts.py, _insights).
    saved = facts.require("insights")
    if not (isinstance(saved, dict) and isinstance(saved.get("count"), int) and isinstance(saved.get("items"), list)):
        return Finding(Status.ERROR, "Could not be judged: the insights fact is not a count with the most recently "
                       "viewed insights (a facts file from an older posthog-auditor?).")
    insight_count = saved["count"]
    insights = records(saved["items"])
    as_of = facts.as_of
    # Older PostHog versions expose no view times: the last refresh stands in for them, and the evidence says so.
    # Where a kind exposes them, a view is what counts (a null one is never opened), so the most recently viewed
    # insights settle it whatever the rest refreshed. Each kind is judged on its own: a newer dashboards list
    # says nothing of what the insights list exposes.
    views: list[Any] = []
    hidden = False
    for kind in (dashboards, insights):
        exposed = any(key in i for i in kind for key in ("last_viewed_at", "last_accessed_at"))
        hidden = hidden or (bool(kind) and not exposed)
        views += [v for v in (_viewed_at(i) if exposed else i.get("last_refresh") for i in kind) if v]
    metrics: dict[str, Any] = {"dashboards": len(dashboards), "saved_insights": insight_count,
                               "last_viewed": date_or_never(max(views)) if views else "never"}
    if hidden:
        metrics["view_times"] = "not exposed by this PostHog version; last refresh used instead"
    recent = [v for v in views if within(v, as_of, thresholds["recent_days"])]
    top = sorted(dashboards, key=lambda d: str(_viewed_at(d) or ""), reverse=True)
    table = Table.of(["dashboard", "last viewed"], top, row=lambda d: [d.get("name"), date_or_never(_viewed_at(d))]) \
        if dashboards else None
    fix = ("Walk the customer's core users through building the insights and a dashboard for their key metrics "
           "(PostHog's dashboard templates are a quick start), and check back that they open them.")
    if not insight_count:
        return Finding(Status.FAIL, "No saved insights.", metrics, table, fix)
    if not any(within(v, as_of, thresholds["stale_days"]) for v in views):
        return Finding(Status.FAIL, f"{insight_count} saved insights, but none opened within "
                       f"{thresholds['stale_days']} days.", metrics, table, fix)
    enough = insight_count >= thresholds["min_insights"] and len(dashboards) >= thresholds["min_dashboards"]
    if enough and recent:
        return Finding(Status.PASS, f"{len(dashboards)} dashboard(s) and {insight_count} saved insights; "
                       f"some opened within {thresholds['recent_days']} days.", metrics, table)
    why = "none opened in the last week" if not recent else \
        f"only {insight_count} saved insights and {len(dashboards)} dashboard(s)"
    return Finding(Status.WARN, f"Insights and dashboards exist, but {why}.", metrics, table, fix)


@check(
    id="product_analytics.team-adoption",
    title="The core user base uses PostHog",
    failure_title="Few people use PostHog",
    description="An account used by one or two people is fragile: when they leave, so does the value.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/settings/organizations",
    requires=("members",),
    thresholds={"pass_count": 10, "pass_share": 0.40, "warn_count": 3, "days": 30},
)
def team_adoption(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    members = [m for m in facts.require("members") if isinstance(m, dict)]
    active = [m for m in members
              if within(member_last_login(m), facts.as_of, thresholds["days"])]
    ratio = share(len(active), len(members))
    metrics = {"members": len(members), f"logged_in_{thresholds['days']}d": len(active), "share": pct(ratio)}
    summary = f"{len(active)} of {len(members)} members logged in within {thresholds['days']} days."
    if len(active) >= thresholds["pass_count"] or (ratio >= thresholds["pass_share"]
                                                   and len(active) >= thresholds["warn_count"]):
        return Finding(Status.PASS, summary, metrics)
    fix = "Invite the people who make product decisions and run a short training on the dashboards they need."
    return Finding(Status.WARN if len(active) >= thresholds["warn_count"] else Status.FAIL, summary, metrics,
                   remediation=fix)


def behavioural(cohort: dict[str, Any]) -> bool:
    """Dynamic cohorts defined by what people did cannot target flags, experiments or surveys. PostHog says so
    in `cohort_type` (posthog/models/cohort/cohort.py CohortType: static, person_property, behavioral, realtime,
    analytical); older versions lack it, so their filters are read instead."""
    if cohort.get("cohort_type"):
        return bool(cohort["cohort_type"] == "behavioral")
    if cohort.get("is_static"):
        return False
    text = str(cohort.get("filters") or "") + str(cohort.get("groups") or "")
    return "'behavioral'" in text or "'event_id'" in text or "'action_id'" in text or '"behavioral"' in text


@check(
    id="product_analytics.cohorts-defined",
    title="Cohorts are known",
    failure_title="No cohorts",
    description="Training proxy: cohorts show the team segments users. Behavioural cohorts cannot target "
    "flags, experiments or surveys, which often surprises people.",
    severity=Severity.INFO,
    docs_url=f"{DOCS}/data/cohorts",
    requires=("cohorts",),
)
def cohorts_defined(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    cohorts = [c for c in facts.require("cohorts") if isinstance(c, dict) and not c.get("deleted")]
    behavioural_count = sum(1 for c in cohorts if behavioural(c))
    table = Table.of(["cohort", "type", "people"], cohorts, row=lambda c: [
        c.get("name"), "static" if c.get("is_static") else ("behavioural" if behavioural(c) else "dynamic"),
        c.get("count")]) if cohorts else None
    return Finding(Status.INFO, f"{len(cohorts)} cohort(s), {behavioural_count} behavioural.",
                   {"cohorts": len(cohorts), "behavioural": behavioural_count}, table)


CHECKS = (identify_used, identify_call_rate, illegal_distinct_ids, merge_conflicts, group_analytics,
          person_profiles, autocapture_tuned, custom_events_defined, custom_event_properties, person_properties,
          actions_defined, dashboards_in_use, team_adoption, cohorts_defined)
