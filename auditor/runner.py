"""Run every selected check over the facts. Nothing aborts the run: a check whose fact failed, or that
raised, becomes an `error` result with the reason."""

from __future__ import annotations

import re
from collections.abc import Iterable

from auditor.config import Settings
from auditor.facts import FactNotAvailable, Facts
from auditor.model import Check, CheckResult, Finding, Severity, Status
from auditor.queries import WINDOW_DAYS
from auditor.registry import PluginFailure


def needed_facts(checks: Iterable[Check]) -> set[str]:
    names: set[str] = set()
    for c in checks:
        names.update(c.meta.requires)
        names.update(c.meta.uses)
    return names


def run_check(check: Check, facts: Facts, settings: Settings) -> CheckResult:
    meta = check.meta
    missing = [name for name in meta.requires if not facts.ok(name)]
    if missing:
        reasons = "; ".join(f"{name}: {facts.reason(name)}" for name in missing)
        return _error(check, f"Could not be judged: {reasons}")
    try:
        finding = check.fn(facts.only(meta.requires + meta.uses), settings.thresholds(check))
    except FactNotAvailable as exc:
        return _error(check, f"Could not be judged: {exc}")
    except Exception as exc:
        return _error(check, f"The check raised {type(exc).__name__}: {exc}")
    if not isinstance(finding, Finding):
        return _error(check, f"The check returned {type(finding).__name__}, not a Finding")
    status = Status(finding.status)
    summary = within_window(finding.summary, shortened_window(facts, meta.requires + meta.uses))
    return CheckResult(
        id=meta.id,
        category=meta.category,
        severity=finding.severity or meta.severity,
        status=status,
        title=meta.failure_title if status in (Status.WARN, Status.FAIL) else meta.title,
        summary=summary,
        evidence=finding.evidence(),
        remediation=finding.remediation if status not in (Status.PASS, Status.SKIP) else "",
        docs_url=meta.docs_url,
        error=summary if status == Status.ERROR else None,
        description=meta.description,
        # Passed through as the check states them: the engine prices nothing and builds no URL.
        impact=finding.impact.to_dict() if finding.impact is not None else None,
        links=[link.to_dict() for link in finding.links],
        audience=meta.audience,
        private_evidence=meta.private_evidence,
    )


def shortened_window(facts: Facts, names: Iterable[str]) -> int | None:
    """The days a HogQL fact this check reads really covers, when PostHog stopped the full query for time and
    it was run again over a shorter window (see facts._hogql); None when every window is whole."""
    days = []
    for name in names:
        value = facts.get(name)
        if isinstance(value, dict) and isinstance(value.get("window_days"), int):
            days.append(value["window_days"])
    short = [d for d in days if d < WINDOW_DAYS]
    return min(short) if short else None


def within_window(summary: str, days: int | None) -> str:
    """Checks word their summaries for the full 30-day window ("… in 30 days"); after the shorter re-run that
    would overstate what was measured. One rewrite here rather than in every summary of every check."""
    if days is None:
        return summary
    return re.sub(rf"\b{WINDOW_DAYS} (days|d)\b", lambda m: f"{days} {m.group(1)}", summary)


def _error(check: Check, reason: str) -> CheckResult:
    meta = check.meta
    return CheckResult(
        id=meta.id,
        category=meta.category,
        severity=meta.severity,
        status=Status.ERROR,
        title=meta.title,
        summary=reason,
        evidence={"metrics": {}, "table": None},
        remediation="",
        docs_url=meta.docs_url,
        error=reason,
        description=meta.description,
        audience=meta.audience,
        private_evidence=meta.private_evidence,
    )


def plugin_failure_result(failure: PluginFailure) -> CheckResult:
    slug = "".join(ch if ch.isalnum() else "-" for ch in failure.name.lower()).strip("-") or "plugin"
    reason = f"Plugin '{failure.name}' ({failure.distribution}) failed to load, so its checks did not run: " \
             f"{failure.error}"
    return CheckResult(
        id=f"plugins.{slug}",
        category="plugins",
        severity=Severity.INFO,
        status=Status.ERROR,
        title=f"Plugin {failure.name} loads",
        summary=reason,
        evidence={"metrics": {}, "table": None},
        remediation="Fix or uninstall the plugin, or run with --no-plugins.",
        docs_url="https://posthog.com/docs",
        error=reason,
    )


def run_checks(checks: Iterable[Check], facts: Facts, settings: Settings) -> list[CheckResult]:
    return [run_check(c, facts, settings) for c in checks]
