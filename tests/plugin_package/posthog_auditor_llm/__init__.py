"""A third-party plugin bringing a whole product: LLM analytics, its catalogue entry and its checks.

Installed, it would declare in its pyproject.toml:

    [project.entry-points."posthog_auditor.checks"]
    llm_analytics = "posthog_auditor_llm:PLUGIN"

Here its .dist-info beside it says the same, so the tests find it through Python's own entry-point discovery.
"""

from __future__ import annotations

from typing import Any

from auditor.facts import Facts
from auditor.model import Finding, Product, Severity, Status, check
from checks.common import cube, event_total, num, truncation_note

GENERATION = "$ai_generation"  # what PostHog's LLM analytics SDKs capture per model call


def used(facts: Facts) -> bool | None:
    return event_total(cube(facts), GENERATION) > 0 if facts.ok("cube") else None


LLM_ANALYTICS = Product("llm_analytics", "LLM analytics", weight=10, billing_type="llm_analytics",
                        vitally_label="LLM Analytics", used=used, used_facts=("cube",))


@check(
    id="llm_analytics.generations-captured",
    title="LLM generations are captured",
    failure_title="No LLM generations captured",
    description="LLM analytics is onboarded when the app's model calls arrive as $ai_generation events.",
    severity=Severity.BLOCKER,
    docs_url="https://posthog.com/docs/llm-analytics",
    requires=("cube",),
)
def generations_captured(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    recent = event_total(cube(facts), GENERATION, "events_7d")
    metrics = {"generations_7d": recent, **truncation_note(facts)}
    if recent:
        return Finding(Status.PASS, f"{num(recent)} LLM generations in the last 7 days.", metrics)
    return Finding(Status.FAIL, "No $ai_generation events in the last 7 days.", metrics,
                   remediation="Wrap the model client with PostHog's LLM analytics SDK (posthog.ai).")


PLUGIN = (LLM_ANALYTICS, generations_captured)
