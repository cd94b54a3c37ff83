"""Error tracking checks: exceptions arrive, from the web SDK, with readable stack traces, and are worked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.model import Finding, Severity, Status, Table, check
from checks.common import (
    cube,
    event_total,
    frame_table,
    num,
    pct,
    records,
    share,
    skip_if_unreadable,
    total,
    truncation_note,
    web,
)

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    import polars as pl

    from auditor.facts import Facts
else:
    from auditor.lazy import polars as pl

DOCS = "https://posthog.com/docs/error-tracking"


def exceptions(facts: Facts) -> pl.DataFrame:
    return cube(facts).filter(pl.col("event") == "$exception")


@check(
    id="error_tracking.exceptions-captured",
    title="Exceptions are being captured",
    failure_title="No exceptions are captured",
    description="Error tracking needs $exception events: from exception autocapture in posthog-js or "
    "captureException in the server SDKs.",
    severity=Severity.BLOCKER,
    docs_url=f"{DOCS}/installation",
    requires=("cube", "project"),
)
def exceptions_captured(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    exc = exceptions(facts)
    last_7d, last_30d = total(exc, "events_7d"), total(exc)
    autocapture = facts.require("project").get("autocapture_exceptions_opt_in")
    by_lib = exc.group_by("lib").agg(pl.col("events").sum()).sort(["events", "lib"], descending=[True, False])
    table = frame_table(["lib", "$exception (30 d)"], by_lib)
    metrics = {"exceptions_7d": last_7d, "exceptions_30d": last_30d, "autocapture_exceptions_opt_in": bool(autocapture),
               **truncation_note(facts)}
    if last_7d:
        return Finding(Status.PASS, f"{num(last_7d)} exceptions captured in the last 7 days.", metrics, table)
    return Finding(Status.FAIL, "No exceptions captured in the last 7 days"
                   + (" (exception autocapture is off)." if not autocapture else "."), metrics, table,
                   "Turn on exception autocapture in Project settings → Error tracking (posthog-js), and call "
                   "`captureException` (or the framework integration) in the server SDKs.")


@check(
    id="error_tracking.web-sdk",
    title="Error tracking is set up with posthog-js",
    failure_title="Web errors are not captured",
    description="Front-end errors are where users feel breakage; posthog-js captures them with the session "
    "replay that shows what led there.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/installation",
    requires=("cube", "project"),
)
def web_sdk(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    if total(web(df)) == 0:
        return Finding(Status.SKIP, "No web (posthog-js) traffic in 30 days.", {})
    web_exceptions = event_total(web(df), "$exception")
    autocapture = bool(facts.require("project").get("autocapture_exceptions_opt_in"))
    metrics = {"web_exceptions_30d": web_exceptions, "autocapture_exceptions_opt_in": autocapture}
    if web_exceptions:
        return Finding(Status.PASS, f"{num(web_exceptions)} exceptions from posthog-js in 30 days.", metrics)
    if autocapture:
        return Finding(Status.PASS, "Exception autocapture is on; no web exceptions in 30 days.", metrics)
    return Finding(Status.FAIL, "The web app sends events but no exceptions, and exception autocapture is off.",
                   metrics, remediation="Turn on exception autocapture in Project settings → Error tracking, or "
                   "set `capture_exceptions: true` in posthog.init.")


@check(
    id="error_tracking.source-maps",
    title="Stack traces are readable",
    failure_title="Stack traces are minified",
    description="Without uploaded source maps, web stack traces point into minified bundles: unreadable, and "
    "grouped badly into issues.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/upload-source-maps",
    requires=("cube",),
    uses=("symbol_sets",),
)
def source_maps(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    web_exceptions = event_total(web(cube(facts)), "$exception")
    if web_exceptions == 0:
        return Finding(Status.SKIP, "No web exceptions in 30 days.", {})
    unreadable = skip_if_unreadable(facts, "symbol_sets", "Symbol sets")
    if unreadable:
        return unreadable
    sets = records(facts.require("symbol_sets"))
    uploaded = [s for s in sets if s.get("storage_ptr")]
    failed = [s for s in sets if not s.get("storage_ptr")]
    metrics = {"web_exceptions_30d": web_exceptions, "symbol_sets": len(sets), "uploaded": len(uploaded)}
    table = Table.of(["symbol set", "uploaded", "failure"], uploaded + failed, row=lambda s: [
        s.get("ref"), "yes" if s.get("storage_ptr") else "no", s.get("failure_reason") or ""]) if sets else None
    if uploaded:
        return Finding(Status.PASS, f"{len(uploaded)} of {len(sets)} symbol set(s) have source maps uploaded.",
                       metrics, table)
    return Finding(Status.FAIL, f"{num(web_exceptions)} web exceptions, but no source map has been uploaded "
                   f"({len(sets)} symbol set(s) referenced, none uploaded).", metrics, table,
                   "Upload source maps in the build with `posthog-cli sourcemap inject` and `upload` (or the "
                   "bundler plugin) so stack traces resolve to the original code.")


@check(
    id="error_tracking.issues-triaged",
    title="Issues are worked",
    failure_title="Issues pile up unassigned",
    description="Error tracking pays off when issues get an owner and get resolved, not when they accumulate.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/managing-issues",
    uses=("error_issues",),
    thresholds={"pass_share": 0.50, "warn_share": 0.10},
)
def issues_triaged(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    unreadable = skip_if_unreadable(facts, "error_issues", "Error tracking issues")
    if unreadable:
        return unreadable
    issues = records(facts.require("error_issues"))
    relevant = [i for i in issues if i.get("status") in ("active", "resolved", "pending_release")]
    if not relevant:
        return Finding(Status.SKIP, "No active or resolved issues.", {"issues": len(issues)})
    worked = [i for i in relevant if i.get("assignee") or i.get("status") in ("resolved", "pending_release")]
    ratio = share(len(worked), len(relevant))
    metrics = {"issues": len(relevant), "assigned_or_resolved": len(worked), "share": pct(ratio)}
    summary = f"{pct(ratio)} of {len(relevant)} issues are assigned or resolved."
    if ratio >= thresholds["pass_share"]:
        return Finding(Status.PASS, summary, metrics)
    return Finding(Status.WARN if ratio >= thresholds["warn_share"] else Status.FAIL, summary, metrics,
                   remediation="Set up assignment rules so new issues get an owner, and resolve or suppress the "
                   "noise so real regressions stand out.")


CHECKS = (exceptions_captured, web_sdk, source_maps, issues_triaged)
