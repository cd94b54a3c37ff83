"""What the findings cost, as the reports say it: the HTML report opens with the savings, the Markdown and the
Vitally note say the same words, recommendations are ranked by impact, and without billing there are units only."""

from __future__ import annotations

import pytest

from auditor.audit import audit_target
from auditor.clients.posthog_api import PostHogClient
from auditor.config import Settings
from auditor.demo import DEMO_HOST, DEMO_KEY, demo_scenario, demo_session
from auditor.outputs.render import render_html, render_markdown, savings_headline
from auditor.outputs.vitally import note_for
from auditor.registry import load_registry
from checks.brief import recommendations


def test_the_html_report_opens_with_the_savings_and_every_output_says_them(demo_run):
    headline = savings_headline(demo_run["savings"])
    assert headline.startswith("Potential savings: $") and headline.endswith("of the bill)")
    html = render_html(demo_run)
    assert html.index(headline) < html.index("Not ready for handover") < html.index("Findings")
    assert f"**{headline}**" in render_markdown(demo_run)
    assert headline in note_for(demo_run, "acc-1", None)["note"]
    # The demo's billing has tiers: its findings are priced in dollars, against its own bill.
    assert demo_run["savings"]["usd_per_month"] > 0 and demo_run["savings"]["priced"] >= 3


def test_each_priced_finding_states_cost_basis_and_where_to_fix_it(demo_run):
    results = {r["id"]: r for r in demo_run["results"]}
    autocapture = results["product_analytics.autocapture-tuned"]
    assert autocapture["impact"]["unit"] == "event" and autocapture["impact"]["meter"] == "events"
    assert "$autocapture events/month" in autocapture["impact"]["basis"]
    assert "at your current tier of Product analytics" in autocapture["impact"]["basis"]
    kinds = {link["kind"] for link in autocapture["links"]}
    assert kinds == {"fix", "query"}
    html = render_html(demo_run)
    assert "Open in PostHog: Autocapture settings" in html and 'class="query"' in html
    # The two replay findings about the same short recordings are one waste in the total.
    minimum, short = results["session_replay.minimum-duration"], results["session_replay.short-recordings"]
    assert minimum["impact"]["key"] == short["impact"]["key"]
    priced = [r["impact"] for r in demo_run["results"] if r.get("impact") and r["impact"]["usd_per_month"]]
    assert demo_run["savings"]["usd_per_month"] == pytest.approx(
        sum(i["usd_per_month"] for i in priced) - short["impact"]["usd_per_month"], abs=0.011)


def test_without_billing_of_the_audited_organization_units_only():
    scenario = demo_scenario()
    # The key's user is currently in another organization: /api/billing/ answers for that one, so it is not used.
    scenario.user_organization = {"id": "0191ffff-0000-0000-0000-000000000000", "name": "Other Co", "slug": "other",
                                  "membership_level": 15}
    scenario.plain["/api/billing/"] = {**scenario.plain["/api/billing/"], "customer_id": "cus_other"}
    registry, settings = load_registry(plugins=False), Settings()
    with PostHogClient(DEMO_HOST, DEMO_KEY, session=demo_session(scenario),
                       **settings.client_options()) as client:
        run = audit_target(client, [scenario.project_id], registry, list(registry.checks.values()), settings)
    assert run["facts"]["billing"]["status"] == "unavailable"
    impacts = [r["impact"] for r in run["results"] if r.get("impact")]
    assert impacts and all(i["usd_per_month"] is None and i["share_of_bill"] is None for i in impacts)
    assert run["savings"]["usd_per_month"] is None
    headline = savings_headline(run["savings"])
    assert headline.startswith("Potential savings: ") and "events/month" in headline
    assert headline.endswith("$ unknown (billing not readable)")
    assert headline in render_html(run) and "never a guessed price" in render_html(run)


def test_headlines():
    assert savings_headline(None) is None
    assert savings_headline({"findings": 0}) == "Potential savings: none found by these checks"
    both = {"findings": 2, "usd_per_month": 1234.5, "share_of_bill": 0.056, "priced": 1, "unpriced": 1,
            "unpriced_units": [{"unit": "$feature_flag_called event", "units_per_month": 1100}],
            "unpriced_reasons": ["PostHog bills flag requests"]}
    assert savings_headline(both) == ("Potential savings: $1,234.50/month (5.6% of the bill), plus 1,100 "
                                      "$feature_flag_called events/month not priced (PostHog bills flag requests)")


def result(check_id, status="fail", severity="major", usd=None, key=None, category=None):
    impact = {"usd_per_month": usd, "key": key or check_id, "units_per_month": 1, "unit": "event"} \
        if usd is not None else None
    return {"id": check_id, "category": category or check_id.split(".")[0], "status": status, "severity": severity,
            "title": check_id, "summary": "", "remediation": "fix it", "docs_url": "https://posthog.com/docs",
            "impact": impact, "links": [{"label": "x", "url": "https://us.posthog.com/project/1/x", "kind": "fix"},
                                        {"label": "q", "url": "https://us.posthog.com/project/1/sql", "kind": "query"}]}


def test_recommendations_rank_a_blocker_first_then_dollars_then_severity():
    scope = {"paid_products": ["product_analytics", "session_replay"]}
    ranked = recommendations([
        result("platform.sdk-versions"),
        result("product_analytics.person-profiles", "warn", "minor", usd=12.0),
        result("session_replay.minimum-duration", usd=40.0, key="short"),
        result("session_replay.short-recordings", "warn", "minor", usd=40.0, key="short"),  # the same waste
        result("session_replay.privacy-masking", severity="blocker"),
        result("product_analytics.autocapture-tuned", usd=0.0),
    ], scope)
    assert [r["id"] for r in ranked] == ["session_replay.privacy-masking", "session_replay.minimum-duration",
                                         "product_analytics.person-profiles", "platform.sdk-versions",
                                         "product_analytics.autocapture-tuned"]
    assert ranked[1]["impact"]["usd_per_month"] == 40.0
    assert [link["kind"] for link in ranked[0]["links"]] == ["fix"]  # where to fix it, not the query
