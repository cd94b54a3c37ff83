"""Feature flag checks: flags are used, evaluated cheaply, and cleaned up; experiments are concluded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.model import Finding, Impact, Severity, Status, Table, check
from checks import impact as pricing
from checks.common import (
    SERVER_LIBS,
    cube,
    date_or_never,
    frame_table,
    identity,
    identity_totals,
    num,
    pct,
    records,
    share,
    total,
    truncation_note,
    within,
)
from checks.impact import FLAG_REQUESTS
from checks.links import experiment_links, flag_links

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    import polars as pl

    from auditor.facts import Facts
else:
    from auditor.lazy import polars as pl

DOCS = "https://posthog.com/docs/feature-flags"
BILLING_FIX = ("Evaluate flags locally on the server (with a polling interval of 5 minutes rather than 30 s), "
               "bootstrap flags on the client, and call flags with the real user id, not a throwaway id.")


def active_flags(facts: Facts) -> list[dict[str, Any]]:
    return [f for f in records(facts.require("flags")) if f.get("active") and not f.get("deleted")]


def flag_calls(facts: Facts) -> pl.DataFrame:
    """$feature_flag_called by flag key, lib and local evaluation (from the identity query)."""
    return identity(facts).filter(pl.col("kind") == "flag")


def calls_by_key(facts: Facts) -> dict[str, int]:
    calls = flag_calls(facts).group_by("key").agg(pl.col("events").sum())
    return dict(calls.iter_rows())


def rollout(flag: dict[str, Any]) -> str:
    """A readable rollout, from filters.groups (the top-level rollout_percentage is null for most flags)."""
    filters = flag.get("filters") or {}
    variants = ((filters.get("multivariate") or {}).get("variants")) or []
    groups = filters.get("groups") or []
    parts = []
    for g in groups:
        pct_ = g.get("rollout_percentage")
        pct_text = "100%" if pct_ is None else f"{pct_}%"
        parts.append(f"{pct_text} of {'matching users' if g.get('properties') else 'everyone'}")
    text = "; ".join(parts) or "no release conditions"
    if variants:
        text += " · variants " + ", ".join(f"{v.get('key')} {v.get('rollout_percentage')}%" for v in variants)
    return text


def fully_rolled_out(flag: dict[str, Any]) -> bool:
    """Everyone gets the same value: a condition-free group at 100% (and, if multivariate, one variant at 100%)."""
    filters = flag.get("filters") or {}
    groups = filters.get("groups") or []
    everyone = any(not g.get("properties") and g.get("rollout_percentage") in (None, 100) for g in groups)
    if not everyone:
        return False
    variants = ((filters.get("multivariate") or {}).get("variants")) or []
    return not variants or any(v.get("rollout_percentage") == 100 for v in variants)


@check(
    id="feature_flags.flags-in-use",
    title="Flags are part of the workflow",
    failure_title="No flag is being used",
    description="Flags are only onboarded when code evaluates them: an active flag that is called shows the "
    "integration works end to end.",
    severity=Severity.BLOCKER,
    docs_url=f"{DOCS}/installation",
    requires=("flags", "identity"),
    thresholds={"days": 30},
)
def flags_in_use(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    flags = active_flags(facts)
    calls = calls_by_key(facts)
    used = [f for f in flags
            if calls.get(str(f.get("key")), 0) > 0 or within(f.get("last_called_at"), facts.as_of, thresholds["days"])]
    metrics = {"active_flags": len(flags), "flags_called_30d": len(used), "flag_calls_30d": sum(calls.values()),
               **truncation_note(facts, "identity")}
    table = Table.of(["flag", "calls (30 d)", "last called"], sorted(used, key=lambda f: -calls.get(f.get("key"), 0)),
                     row=lambda f: [f.get("key"), calls.get(f.get("key"), 0), date_or_never(f.get("last_called_at"))]) \
        if used else None
    if used:
        return Finding(Status.PASS, f"{len(used)} of {len(flags)} active flags were called in "
                       f"{thresholds['days']} days.", metrics, table)
    what = "No active flags" if not flags else f"None of the {len(flags)} active flags was called"
    return Finding(Status.FAIL, f"{what} in {thresholds['days']} days.", metrics, table,
                   "Wrap a real feature in a flag with `posthog.isFeatureEnabled('key')` (or the server SDK) and "
                   "check it shows calls in the flag's usage tab.")


@check(
    id="feature_flags.call-volume",
    title="Flag calls do not inflate the bill",
    failure_title="Flag calls inflate the bill",
    description="Flags are billed per request. Evaluating flags on every request, or server-side with "
    "throwaway ids that create a new person each time, multiplies the bill without adding value.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/cutting-costs",
    requires=("cube", "identity"),
    thresholds={"pass_per_session": 4, "warn_per_session": 10, "flag_only_share": 0.20},
)
def call_volume(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    flag_events = cube(facts).filter(pl.col("event") == "$feature_flag_called")
    calls = total(flag_events)
    if calls == 0:
        return Finding(Status.SKIP, "No $feature_flag_called events in 30 days.", {})
    totals = identity_totals(facts)
    flag_only = identity(facts).filter(pl.col("kind") == "flag_only_ids")
    flag_only_ids = int(flag_only["distinct_ids"].sum()) if flag_only.height else 0
    # Per session: only calls that carry a session count (server SDKs send none), over the project's sessions.
    session_calls = total(flag_events, "session_events")
    per_session = session_calls / totals["sessions"] if totals["sessions"] and session_calls else None
    flag_only_ratio = share(flag_only_ids, totals["distinct_ids"])
    metrics = {"flag_calls_30d": calls, "flag_calls_in_sessions": session_calls, "sessions": totals["sessions"],
               "per_session": round(per_session, 2) if per_session is not None else "not judged (no sessions)",
               "ids_seen_only_in_flag_calls": flag_only_ids, "share_of_distinct_ids": pct(flag_only_ratio),
               **truncation_note(facts, "cube", "identity")}
    by_key = flag_calls(facts).group_by(["key", "lib"]).agg(pl.col("events").sum(), pl.col("sessions").sum()) \
        .sort(["events", "key", "lib"], descending=[True, False, False])
    table = frame_table(["flag", "lib", "calls (30 d)", "sessions"], by_key)
    if flag_only_ratio > thresholds["flag_only_share"]:
        flag_only_calls = int(flag_only["events"].sum()) if flag_only.height else 0
        return Finding(Status.FAIL, f"{pct(flag_only_ratio)} of distinct ids ({num(flag_only_ids)}) appear only in "
                       "flag calls: server-side checks with throwaway ids create billable persons.",
                       metrics, table, BILLING_FIX,
                       impact=flag_calls_cost(facts, flag_only_calls, "from ids seen only in flag calls"))
    if per_session is None:
        why = "no events carry a session" if not totals["sessions"] else "the calls carry no session (server-side)"
        return Finding(Status.PASS, f"{num(calls)} flag calls; not judged per session: {why}.", metrics, table)
    summary = f"{per_session:.1f} $feature_flag_called per session ({num(calls)} in 30 days)."
    excess = session_calls - thresholds["pass_per_session"] * totals["sessions"]
    what = f"beyond {thresholds['pass_per_session']:g} per session"
    if per_session > thresholds["warn_per_session"]:
        return Finding(Status.FAIL, summary, metrics, table, BILLING_FIX, impact=flag_calls_cost(facts, excess, what))
    if per_session > thresholds["pass_per_session"]:
        return Finding(Status.WARN, summary, metrics, table, BILLING_FIX, impact=flag_calls_cost(facts, excess, what))
    return Finding(Status.PASS, summary, metrics, table)


def flag_calls_cost(facts: Facts, calls: float, what: str) -> Impact | None:
    """Flag calls in units only: PostHog bills flag requests (`/flags`, local evaluation ×10), not the
    `$feature_flag_called` events the data counts, and how many requests stand behind them is not measured
    (posthog/tasks/usage_report.py leaves $feature_flag_called out of billed events)."""
    return pricing.unpriced(facts, pricing.per_month(calls, facts, "cube"), "$feature_flag_called event",
                            "$feature_flag_called events", FLAG_REQUESTS, pricing.key(facts, "flag-calls"),
                            "PostHog bills flag requests, not $feature_flag_called events, and the requests behind "
                            "these calls are not measured", which=what)


@check(
    id="feature_flags.server-local-evaluation",
    title="Server SDKs evaluate flags locally",
    failure_title="Server SDKs call PostHog for every flag",
    description="Local evaluation fetches flag definitions periodically and evaluates them in-process: faster "
    "responses and a fraction of the flag requests.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/local-evaluation",
    requires=("identity",),
    thresholds={"pass_share": 0.80},
)
def server_local_evaluation(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    server = flag_calls(facts).filter(pl.col("lib").is_in(SERVER_LIBS))
    calls = int(server["events"].sum()) if server.height else 0
    if calls == 0:
        return Finding(Status.SKIP, "No flag calls from server SDKs in 30 days.", {})
    local = int(server.filter(pl.col("flag_locally_evaluated").str.to_lowercase() == "true")["events"].sum())
    ratio = share(local, calls)
    by_lib = server.group_by("lib").agg(
        pl.col("events").sum(),
        pl.col("events").filter(pl.col("flag_locally_evaluated").str.to_lowercase() == "true").sum().alias("local"),
    ).sort(["events", "lib"], descending=[True, False])
    table = Table.of(["lib", "flag calls", "locally evaluated"], [
        [r["lib"], r["events"], pct(share(r["local"], r["events"]))] for r in by_lib.iter_rows(named=True)
    ])
    metrics = {"server_flag_calls": calls, "locally_evaluated": pct(ratio), **truncation_note(facts, "identity")}
    summary = f"{pct(ratio)} of {num(calls)} server-side flag calls are evaluated locally."
    fix = ("Initialise the server SDK with a feature flags secure API key (personal_api_key) so it evaluates "
           "flags locally, and set a 5-minute polling interval. Not suited to edge/lambda runtimes.")
    if ratio >= thresholds["pass_share"]:
        return Finding(Status.PASS, summary, metrics, table)
    return Finding(Status.WARN if ratio > 0 else Status.FAIL, summary, metrics, table, fix)


@check(
    id="feature_flags.stale-rollouts",
    title="Fully rolled-out flags are cleaned up",
    failure_title="Fully rolled-out flags linger",
    description="A flag at 100% for everyone for weeks is dead code on both sides: it costs a request per "
    "evaluation and hides the real behaviour.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/best-practices",
    requires=("flags",),
    uses=("identity",),
    thresholds={"days": 30},
)
def stale_rollouts(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    flags = active_flags(facts)
    stale = [f for f in flags if str(f.get("status") or "").lower() == "stale"
             or (fully_rolled_out(f) and not within(f.get("updated_at"), facts.as_of, thresholds["days"]))]
    metrics = {"active_flags": len(flags), "stale": len(stale)}
    if not stale:
        return Finding(Status.PASS, f"No active flag has sat at 100% for {thresholds['days']}+ days.", metrics)
    calls = calls_by_key(facts) if facts.ok("identity") else None
    table = Table.of(["flag", "rollout", "last change", "calls (30 d)", "PostHog status"], stale, row=lambda f: [
        f.get("key"), rollout(f), date_or_never(f.get("updated_at")),
        "?" if calls is None else calls.get(f.get("key"), 0), f.get("status") or "—"])
    return Finding(Status.WARN, f"{len(stale)} flag(s) fully rolled out and unchanged for {thresholds['days']}+ days.",
                   metrics, table, "Remove the flag from the code, then disable and delete it in PostHog.",
                   links=flag_links(facts, stale))


@check(
    id="feature_flags.uncalled-flags",
    title="Active flags are evaluated",
    failure_title="Active flags are never called",
    description="Active flags nobody evaluates are clutter, or a sign the integration broke. Locally evaluated "
    "flags may not send $feature_flag_called, so check those before deleting.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/best-practices",
    requires=("flags", "identity"),
    thresholds={"days": 30},
)
def uncalled_flags(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    flags = active_flags(facts)
    calls = calls_by_key(facts)
    uncalled = [f for f in flags if not calls.get(str(f.get("key")))
                and not within(f.get("last_called_at"), facts.as_of, thresholds["days"])]
    metrics = {"active_flags": len(flags), "uncalled": len(uncalled), **truncation_note(facts, "identity")}
    if not uncalled:
        return Finding(Status.PASS, f"All {len(flags)} active flags were called in {thresholds['days']} days.", metrics)
    table = Table.of(["flag", "description", "created", "last change"], uncalled, row=lambda f: [
        f.get("key"), f.get("name") or "", date_or_never(f.get("created_at")), date_or_never(f.get("updated_at"))])
    return Finding(Status.WARN, f"{len(uncalled)} of {len(flags)} active flags had no call in "
                   f"{thresholds['days']} days.", metrics, table,
                   "Check whether the code still evaluates these flags (locally evaluated flags may not report calls); "
                   "disable and delete the ones it does not.", links=flag_links(facts, uncalled))


def targeting_kinds(flag: dict[str, Any]) -> set[str]:
    filters = flag.get("filters") or {}
    kinds = set()
    if filters.get("aggregation_group_type_index") is not None:
        kinds.add("groups")
    if (filters.get("multivariate") or {}).get("variants"):
        kinds.add("multivariate")
    for g in filters.get("groups") or []:
        for p in g.get("properties") or []:
            kinds.add({"person": "person properties", "cohort": "cohorts", "group": "groups"}.get(p.get("type"),
                                                                                                  "other"))
    return kinds


@check(
    id="feature_flags.targeting",
    title="Targeting mechanisms are understood",
    failure_title="Flags use no targeting",
    description="Training proxy: flags targeting person properties, cohorts and groups, and multivariate flags, "
    "show the team knows the tools beyond on/off.",
    severity=Severity.INFO,
    docs_url=f"{DOCS}/creating-feature-flags",
    requires=("flags",),
)
def targeting(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    flags = active_flags(facts)
    counts = {k: 0 for k in ("person properties", "cohorts", "groups", "multivariate")}
    for f in flags:
        for kind in targeting_kinds(f) & set(counts):
            counts[kind] += 1
    table = Table.of(["targeting", "flags", "share"], [[k, v, pct(share(v, len(flags)))] for k, v in counts.items()])
    return Finding(Status.INFO, f"{len(flags)} active flags: " + ", ".join(
        f"{pct(share(v, len(flags)))} {k}" for k, v in counts.items()) + ".", {"active_flags": len(flags)}, table)


@check(
    id="feature_flags.experiments",
    title="Experiments are used and concluded",
    failure_title="Experiments are missing or left running",
    description="Experiments turn flags into decisions. One left running for months is a decision not taken: "
    "ship the winner and clean up.",
    severity=Severity.MINOR,
    docs_url="https://posthog.com/docs/experiments",
    requires=("experiments",),
    thresholds={"max_running_days": 90},
)
def experiments(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    items = [e for e in records(facts.require("experiments")) if not e.get("deleted")
             and not e.get("archived")]
    running = [e for e in items if e.get("start_date") and not e.get("end_date")]
    overdue = [e for e in running if not within(e.get("start_date"), facts.as_of, thresholds["max_running_days"])]
    metrics = {"experiments": len(items), "running": len(running),
               f"running_over_{thresholds['max_running_days']}d": len(overdue)}
    table = Table.of(["experiment", "flag", "started", "ended"], items, row=lambda e: [
        e.get("name"), e.get("feature_flag_key"), date_or_never(e.get("start_date")),
        date_or_never(e.get("end_date"))]) if items else None
    if not items:
        return Finding(Status.WARN, "No experiments.", metrics,
                       remediation="Run the next risky change as an experiment: PostHog computes the result.")
    if overdue:
        names = ", ".join(str(e.get("name")) for e in overdue[:3])
        return Finding(Status.WARN, f"{len(overdue)} experiment(s) running for over "
                       f"{thresholds['max_running_days']} days ({names}).", metrics, table,
                       "Conclude them: ship the winner, end the experiment and remove the flag.",
                       links=experiment_links(facts, overdue))
    return Finding(Status.PASS, f"{len(items)} experiment(s), {len(running)} running.", metrics, table)


CHECKS = (flags_in_use, call_volume, server_local_evaluation, stale_rollouts, uncalled_flags, targeting,
          experiments)
