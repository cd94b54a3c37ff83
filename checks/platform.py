"""Platform checks: is data arriving, cleanly, from current SDKs, through a proxy, owned by the right people."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.model import Finding, Severity, Status, Table, check
from checks.common import (
    LEVEL_NAMES,
    cube,
    date_or_never,
    frame_table,
    last_event,
    member_last_login,
    member_name,
    num,
    pct,
    records,
    share,
    skip_if_unreadable,
    total,
    truncation_note,
    warning_counts,
    web,
    within,
)
from checks.sdk_versions import LATEST_SDKS, TABLE_DATE, is_outdated

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    import polars as pl

    from auditor.facts import Facts
else:
    from auditor.lazy import polars as pl

OWNER, ADMIN = 15, 8


@check(
    id="platform.events-flowing",
    title="Events are arriving",
    failure_title="Events have stopped arriving",
    description="Every product depends on events reaching PostHog. A project with no recent events is either "
    "broken or abandoned, and nothing else in this audit means much until data flows.",
    severity=Severity.BLOCKER,
    docs_url="https://posthog.com/docs/getting-started/install",
    requires=("cube",),
    # The project's timezone (HogQL's times are in it), and the identity totals for when the last event happened:
    # without them the verdict stands, only that time is unknown.
    uses=("project", "identity"),
)
def events_flowing(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    last_24h, last_7d, last_30d = total(df, "events_24h"), total(df, "events_7d"), total(df)
    last_seen = last_event(facts) if facts.ok("identity") else None
    metrics = {"events_24h": last_24h, "events_7d": last_7d, "events_30d": last_30d,
               "last_event": last_seen.isoformat() if last_seen else None, **truncation_note(facts)}
    fix = ("Check that the SDK is initialised with this project's token and host, that no ad blocker or CSP "
           "blocks it, and look at the project's ingestion warnings. Use the Activity page to see live events.")
    if last_24h > 0:
        return Finding(Status.PASS, f"{num(last_24h)} events in the last 24 h ({num(last_30d)} in 30 days).", metrics)
    when = f"the last event was {date_or_never(last_seen)}" if last_seen else "the time of the last event is unknown"
    if last_7d > 0:
        return Finding(Status.WARN, f"No events in the last 24 h; {num(last_7d)} in the last 7 days ({when}).",
                       metrics, remediation=fix)
    when = when if last_30d else "no events at all in 30 days"
    return Finding(Status.FAIL, f"No events in the last 7 days: {when}.", metrics, remediation=fix)


@check(
    id="platform.owners-and-admins",
    title="Owners and admins are set up",
    failure_title="No active owner or admin",
    description="Someone in the organization must be able to change settings, billing and access. An "
    "organization run by one admin, or by owners who never log in, stalls every fix.",
    severity=Severity.MAJOR,
    docs_url="https://posthog.com/docs/settings/organizations",
    requires=("members",),
    thresholds={"min_admins": 2, "login_days": 90},
    private_evidence=True,  # names, emails and last logins: the new owner's outreach list, not the customer's
)
def owners_and_admins(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    members = records(facts.require("members"))
    as_of, login_days = facts.as_of, thresholds["login_days"]
    privileged = sorted(
        (m for m in members if (m.get("level") or 0) >= ADMIN), key=lambda m: -(m.get("level") or 0)
    )
    owners = [m for m in privileged if m.get("level") == OWNER]
    active = [m for m in privileged if within(member_last_login(m), as_of, login_days)]
    active_owners = [m for m in owners if m in active]
    table = Table.of(["name", "email", "level", "last login"], privileged, row=lambda m: [
        member_name(m), (m.get("user") or {}).get("email"), LEVEL_NAMES.get(m.get("level") or 1, m.get("level")),
        date_or_never(member_last_login(m))])
    metrics = {"members": len(members), "owners": len(owners), "admins_or_owners": len(privileged),
               f"active_in_{login_days}d": len(active)}
    fix = ("Promote a second person to admin (Organization settings → Members) so access does not hang on one "
           "person, and confirm who owns the account today.")
    if not active:
        return Finding(Status.FAIL, f"None of the {len(privileged)} owners/admins logged in within {login_days} days.",
                       metrics, table, fix)
    if len(privileged) < thresholds["min_admins"]:
        return Finding(Status.WARN, f"Only {len(privileged)} member at admin level or above.", metrics, table, fix)
    if not active_owners:
        return Finding(Status.WARN, f"No owner logged in within {login_days} days "
                       f"({len(active)} admin(s) did).", metrics, table, fix)
    return Finding(Status.PASS, f"{len(owners)} owner(s) and {len(privileged) - len(owners)} admin(s); "
                   f"{len(active)} logged in within {login_days} days.", metrics, table)


@check(
    id="platform.sdk-versions",
    title="SDKs are current",
    failure_title="SDKs are outdated",
    description="Old SDKs miss fixes and features (replay minimum duration, flag bootstrapping, exception "
    "autocapture) and can send malformed data. PostHog recommends updating monthly.",
    severity=Severity.MAJOR,
    docs_url="https://posthog.com/docs/health-checks/sdk-health",
    requires=("cube",),
    uses=("sdk_health",),
    thresholds={"traffic_share": 0.10, "web_traffic_share": 0.20, "minor_versions_behind": 3},
)
def sdk_versions(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    report = facts.get("sdk_health")
    if isinstance(report, dict) and isinstance(report.get("sdks"), list):
        return _from_sdk_report(report)
    return _from_cube(facts, thresholds)


def _from_sdk_report(report: dict[str, Any]) -> Finding:
    sdks = records(report["sdks"])

    def volume(sdk: dict[str, Any]) -> int:
        return sum(int(r.get("count") or 0) for r in sdk.get("releases") or [])

    rows = []
    for sdk in sorted(sdks, key=volume, reverse=True):
        releases = sorted(sdk.get("releases") or [], key=lambda r: -(r.get("count") or 0))
        main = releases[0] if releases else {}
        rows.append([sdk.get("lib"), main.get("version"), sdk.get("latest_version"),
                     "yes" if sdk.get("needs_updating") else "no", sdk.get("reason") or ""])
    table = Table.of(["SDK", "main version", "latest", "needs updating", "why"], rows)
    metrics = {"source": "PostHog SDK health report", "health": report.get("health"),
               "needs_updating": report.get("needs_updating_count"), "sdks": report.get("team_sdk_count")}
    fix = "Update the flagged SDKs to their latest release; PostHog recommends updating every month."
    top = max(sdks, key=volume) if sdks else None
    if report.get("health") == "danger" or (top and top.get("needs_updating")):
        who = f"{top.get('lib')} (the SDK carrying most events)" if top and top.get("needs_updating") else "SDKs"
        return Finding(Status.FAIL, f"{who} outdated; PostHog rates SDK health '{report.get('health')}'.",
                       metrics, table, fix)
    alerts = [s for s in sdks if s.get("outdated_traffic_alerts") or s.get("needs_updating")]
    if alerts:
        names = ", ".join(str(s.get("lib")) for s in alerts)
        return Finding(Status.WARN, f"Outdated versions still carry traffic: {names}.", metrics, table, fix)
    return Finding(Status.PASS, f"All {len(sdks)} SDK(s) current per PostHog's SDK health report.", metrics, table)


def _from_cube(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts).filter(pl.col("lib").is_not_null() & (pl.col("lib") != ""))
    by_version = df.group_by(["lib", "lib_version"]).agg(pl.col("events").sum()).sort(
        ["lib", "events", "lib_version"], descending=[False, True, False]
    )
    lib_totals = df.group_by("lib").agg(pl.col("events").sum()).sort(["events", "lib"], descending=[True, False])
    if lib_totals.height == 0:
        return Finding(Status.SKIP, "No SDK traffic in 30 days to judge.", {})
    rows, failing, warning, unjudged = [], [], [], []
    top_lib = lib_totals["lib"][0]
    for lib, lib_events in lib_totals.iter_rows():
        latest = LATEST_SDKS.get(lib)
        versions = by_version.filter(pl.col("lib") == lib)
        if latest is None:
            unjudged.append(lib)
            main_version = versions["lib_version"][0] if versions.height else None
            rows.append([lib, main_version, "unknown", "-", pct(share(lib_events, total(df)))])
            continue
        outdated_events = sum(
            ev for v, ev in versions.select(["lib_version", "events"]).iter_rows()
            if is_outdated(v, latest, thresholds["minor_versions_behind"])
        )
        main_version = versions["lib_version"][0]
        outdated_share = share(outdated_events, lib_events)
        rows.append([lib, main_version, latest["latest"], pct(outdated_share), pct(share(lib_events, total(df)))])
        limit = thresholds["web_traffic_share"] if lib == "web" else thresholds["traffic_share"]
        if lib == top_lib and is_outdated(main_version, latest, thresholds["minor_versions_behind"]):
            failing.append(f"{lib} {main_version} (latest {latest['latest']})")
        elif outdated_share >= limit:
            warning.append(f"{lib} ({pct(outdated_share)} of its events on outdated versions)")
    table = Table.of(["SDK", "main version", "latest", "share on outdated versions", "share of all events"], rows)
    metrics: dict[str, Any] = {"source": f"bundled version table dated {TABLE_DATE} (SDK health report "
                                         f"unavailable: {facts.reason('sdk_health')})", **truncation_note(facts)}
    if unjudged:
        metrics["not_judged"] = ", ".join(unjudged)
    fix = ("Update the SDKs to their latest release (outdated = a major behind, or older than the release "
           "current three months ago); PostHog recommends updating every month.")
    if failing:
        return Finding(Status.FAIL, f"The SDK carrying most events is outdated: {failing[0]}.", metrics, table, fix)
    if warning:
        return Finding(Status.WARN, f"Outdated versions still carry traffic: {'; '.join(warning)}.",
                       metrics, table, fix)
    judged = lib_totals.height - len(unjudged)
    if judged == 0:
        return Finding(Status.ERROR, f"No bundled latest version for {', '.join(unjudged)} and PostHog's SDK "
                       "health report is unavailable, so versions cannot be judged.", metrics, table)
    return Finding(Status.PASS, f"{judged} SDK(s) current.", metrics, table)


@check(
    id="platform.reverse-proxy",
    title="Web traffic goes through a reverse proxy",
    failure_title="Web traffic is not proxied",
    description="Ad blockers drop requests to PostHog's own domains; a reverse proxy (managed or your own) "
    "recovers typically 10–30% of web events and recordings.",
    severity=Severity.MINOR,
    docs_url="https://posthog.com/docs/advanced/proxy",
    requires=("cube",),
    thresholds={"pass_share": 0.90},
)
def reverse_proxy(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    w = web(cube(facts))
    web_events = total(w)
    if web_events == 0:
        return Finding(Status.SKIP, "No web (posthog-js) traffic in 30 days.", {})
    proxied = share(total(w, "proxied"), web_events)
    metrics = {"web_events": web_events, "proxied_share": pct(proxied), **truncation_note(facts)}
    fix = ("Set up PostHog's managed reverse proxy or your own (Cloudflare, Next.js rewrites, nginx) and point "
           "`api_host` at it.")
    if proxied >= thresholds["pass_share"]:
        return Finding(Status.PASS, f"{pct(proxied)} of web events arrive through a reverse proxy.", metrics)
    if proxied > 0:
        return Finding(Status.WARN, f"Only {pct(proxied)} of web events arrive through a reverse proxy.",
                       metrics, remediation=fix)
    return Finding(Status.FAIL, "No web events arrive through a reverse proxy ($lib_custom_api_host never set).",
                   metrics, remediation=fix)


@check(
    id="platform.authorized-urls",
    title="Authorized URLs are configured",
    failure_title="No authorized URLs",
    description="Authorized URLs let the toolbar and heatmaps work on the customer's site and scope web "
    "analytics to their own domains.",
    severity=Severity.MINOR,
    docs_url="https://posthog.com/docs/toolbar",
    requires=("project", "cube"),
)
def authorized_urls(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    if total(web(cube(facts))) == 0:
        return Finding(Status.SKIP, "No web (posthog-js) traffic in 30 days.", {})
    urls = [u for u in facts.require("project").get("app_urls") or [] if u]
    if urls:
        return Finding(Status.PASS, f"{len(urls)} authorized URL(s).", {"app_urls": len(urls)},
                       Table.of(["authorized URL"], [[u] for u in urls]))
    return Finding(Status.FAIL, "No authorized URLs while the project receives web traffic.", {"app_urls": 0},
                   remediation="Add the customer's production domains under Project settings → Authorized URLs.")


@check(
    id="platform.ingestion-warnings",
    title="Ingestion is clean",
    failure_title="Ingestion warnings pile up",
    description="Ingestion warnings mean events were dropped, merged wrongly or arrived malformed; they are "
    "silent data loss unless someone looks.",
    severity=Severity.MAJOR,
    docs_url="https://posthog.com/docs/data/ingestion-warnings",
    uses=("ingestion_warnings",),
    thresholds={"warn_count": 10, "fail_count": 1000},
)
def ingestion_warnings(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    unreadable = skip_if_unreadable(facts, "ingestion_warnings", "Ingestion warnings (see Data management → "
                                    "Ingestion warnings)", missing_scope_too=True)
    if unreadable:
        return unreadable
    warnings = warning_counts(facts.require("ingestion_warnings"))
    count = sum(warnings.values())
    table = Table.of(["warning", "count (7 d)"], sorted(([k, v] for k, v in warnings.items()), key=lambda r: -r[1]))
    metrics = {"warnings_7d": count, "types": len(warnings)}
    fix = "Open Data management → Ingestion warnings, fix the largest type first, and re-check after a day."
    if warnings.get("ingestion_capacity_overflow"):
        return Finding(Status.FAIL, f"{num(count)} warnings in 7 days, including ingestion capacity overflow "
                       "(events sent in a loop or a burst).", metrics, table, fix)
    if count >= thresholds["fail_count"]:
        return Finding(Status.FAIL, f"{num(count)} ingestion warnings in 7 days.", metrics, table, fix)
    if count >= thresholds["warn_count"]:
        return Finding(Status.WARN, f"{num(count)} ingestion warnings in 7 days.", metrics, table, fix)
    return Finding(Status.PASS, f"{num(count)} ingestion warnings in 7 days.", metrics, table)


@check(
    id="platform.test-traffic",
    title="No dev or staging traffic in production",
    failure_title="Dev/staging traffic leaks into production",
    description="Events from localhost, staging and dev hosts inflate the bill and skew every metric.",
    severity=Severity.MINOR,
    docs_url="https://posthog.com/tutorials/filter-internal-users",
    requires=("cube",),
    thresholds={"warn_share": 0.01, "fail_share": 0.05},
)
def test_traffic(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    events = total(df)
    if events == 0:
        return Finding(Status.SKIP, "No events in 30 days.", {})
    test = total(df, "test_host_events")
    ratio = share(test, events)
    top = (df.filter(pl.col("test_host_events") > 0).group_by("event").agg(pl.col("test_host_events").sum())
           .sort(["test_host_events", "event"], descending=[True, False]))
    table = frame_table(["event", "events from test hosts"], top)
    metrics = {"test_host_events": test, "share": pct(ratio), **truncation_note(facts)}
    fix = ("Use a separate PostHog project for development and staging (or don't initialise PostHog there), and "
           "add a test-account filter for $host.")
    status = Status.FAIL if ratio >= thresholds["fail_share"] else \
        Status.WARN if ratio >= thresholds["warn_share"] else Status.PASS
    return Finding(status, f"{pct(ratio)} of events come from localhost, staging or dev hosts.", metrics, table,
                   fix if status != Status.PASS else "")


CHECKS = (events_flowing, owners_and_admins, sdk_versions, reverse_proxy, authorized_urls, ingestion_warnings,
          test_traffic)
