"""Survey checks: surveys are live and answered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.model import Finding, Severity, Status, Table, check
from checks.common import cube, date_or_never, event_total, identity, num, pct, records, share, truncation_note, within

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    import polars as pl

    from auditor.facts import Facts
else:
    from auditor.lazy import polars as pl

DOCS = "https://posthog.com/docs/surveys"


def launched(survey: dict[str, Any], facts: Facts, days: int) -> bool:
    """Started, and still running or ended within the window."""
    if not survey.get("start_date") or survey.get("archived"):
        return False
    return not survey.get("end_date") or within(survey.get("end_date"), facts.as_of, days)


@check(
    id="surveys.launched",
    title="Surveys are live",
    failure_title="No survey is live",
    description="Surveys are onboarded when one is launched and people answer it.",
    severity=Severity.BLOCKER,
    docs_url=f"{DOCS}/installation",
    requires=("surveys", "identity"),
    thresholds={"days": 90},
)
def surveys_launched(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    surveys = records(facts.require("surveys"))
    live = [s for s in surveys if launched(s, facts, thresholds["days"])]
    answers = identity(facts).filter((pl.col("kind") == "survey") & (pl.col("lib") == "survey sent"))
    sent = dict(answers.group_by("key").agg(pl.col("events").sum()).iter_rows())
    answered = [s for s in live if sent.get(str(s.get("id")), 0) > 0]
    metrics = {"surveys": len(surveys), "launched": len(live), "with_responses": len(answered),
               **truncation_note(facts, "identity")}
    table = Table.of(["survey", "type", "started", "ended", "responses (30 d)"], live, row=lambda s: [
        s.get("name"), s.get("type"), date_or_never(s.get("start_date")), date_or_never(s.get("end_date")),
        sent.get(str(s.get("id")), 0)
    ]) if live else None
    if answered:
        return Finding(Status.PASS, f"{len(answered)} launched survey(s) with responses.", metrics, table)
    if live:
        return Finding(Status.WARN, f"{len(live)} survey(s) launched, but no responses in 30 days.", metrics, table,
                       "Check the survey's targeting and display conditions, and that `surveys_opt_in` is on "
                       "and posthog-js is recent enough to show it.")
    return Finding(Status.FAIL, f"No survey launched within {thresholds['days']} days ({len(surveys)} in total).",
                   metrics,
                   table, "Launch a first survey (an NPS or a feature feedback popover) from a template.")


@check(
    id="surveys.response-rate",
    title="Surveys get answers",
    failure_title="Surveys are rarely answered",
    description="A survey seen by many and answered by few needs better targeting, timing or a shorter form.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/best-practices",
    requires=("cube",),
    thresholds={"pass_rate": 0.05, "warn_rate": 0.01, "min_shown": 100},
)
def response_rate(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    df = cube(facts)
    shown, sent = event_total(df, "survey shown"), event_total(df, "survey sent")
    if shown < thresholds["min_shown"]:
        return Finding(Status.SKIP, f"Only {num(shown)} surveys shown in 30 days: too few to judge.",
                       {"survey_shown": shown})
    rate = share(sent, shown)
    metrics = {"survey_shown": shown, "survey_sent": sent, "response_rate": pct(rate)}
    summary = f"{pct(rate)} of {num(shown)} survey views were answered."
    if rate >= thresholds["pass_rate"]:
        return Finding(Status.PASS, summary, metrics)
    return Finding(Status.WARN if rate >= thresholds["warn_rate"] else Status.FAIL, summary, metrics,
                   remediation="Target the survey at users who just did the relevant action, show it once, and "
                   "shorten it to one or two questions.")


CHECKS = (surveys_launched, response_rate)
