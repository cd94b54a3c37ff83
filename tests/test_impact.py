"""Pricing a finding's wasted units at the customer's own tiers (checks/impact.py), and the run's total
(auditor/savings.py). Tier tables and figures are PostHog's own billing fixtures
(frontend/src/mocks/fixtures/_billing.tsx, _billing_v2.json; see /work/notes/research_16.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from auditor.facts import Fact, Facts
from auditor.savings import total
from checks import impact as pricing
from checks.impact import EVENTS, FLAG_REQUESTS, GROUP_ANALYTICS, PERSON_PROFILES, RECORDINGS, Charge


def tier(up_to, price, flat="0"):
    return {"flat_amount_usd": flat, "unit_amount_usd": price, "up_to": up_to, "current_amount_usd": "0.00",
            "current_usage": 0, "projected_usage": None, "projected_amount_usd": None}


# _billing.tsx (newest): product analytics, 7 tiers; projected 7,000,000 events = $960.00.
PA_TIERS = [tier(1_000_000, "0"), tier(2_000_000, "0.00031"), tier(15_000_000, "0.00013"),
            tier(50_000_000, "0.0000819"), tier(100_000_000, "0.0000455"), tier(250_000_000, "0.0000234"),
            tier(None, "0.0000052")]
# _billing.tsx: feature flags; projected 5,000,000 requests = $235.00.
FF_TIERS = [tier(1_000_000, "0"), tier(2_000_000, "0.0001"), tier(10_000_000, "0.000045"),
            tier(50_000_000, "0.000025"), tier(None, "0.00001")]
# _billing_v2.json: session replay; 16,022 recordings = $5.11.
SR_TIERS = [tier(15_000, "0"), tier(50_000, "0.005"), tier(None, "0.0035")]
# posthog.com billing-products.json: the person profiles add-on (list prices, used here only as a tier table).
EP_TIERS = [tier(1_000_000, "0"), tier(2_000_000, "0.000198"), tier(15_000_000, "0.0000697"), tier(None, "0.000036")]


def bill(**extra):
    return {
        "customer_id": "cus_1", "projected_total_amount_usd": "1200.00", "current_total_amount_usd": "500.00",
        "billing_period": {"interval": "month"},
        "products": [
            {"type": "product_analytics", "usage_key": "events", "subscribed": True, "tiers": PA_TIERS,
             "current_usage": 3_000_000, "projected_usage": 7_000_000, "projected_amount_usd": "960.00",
             "addons": [
                 {"type": "enhanced_persons", "usage_key": "enhanced_persons_events", "inclusion_only": True,
                  "subscribed": False, "tiers": EP_TIERS, "current_usage": 1_500_000, "projected_usage": 3_000_000},
                 {"type": "group_analytics", "subscribed": True, "tiers": [tier(1_000_000, "0"),
                                                                           tier(None, "0.0001")],
                  "current_usage": 3_000_000, "projected_usage": None}]},
            {"type": "feature_flags", "usage_key": "feature_flag_requests", "subscribed": True, "tiers": FF_TIERS,
             "current_usage": 2_000_000, "projected_usage": 5_000_000},
            {"type": "session_replay", "usage_key": "recordings", "subscribed": True, "tiers": SR_TIERS,
             "current_usage": 16_022, "projected_usage": None},
            {"type": "surveys", "usage_key": "survey_responses", "subscribed": False, "tiers": None,
             "free_allocation": 250},
        ],
        **extra,
    }


def facts_with(billing, status="ok", window_days=None):
    values = {"billing": Fact(status, billing, None if status == "ok" else "not the audited organization's")}
    if window_days:
        values["cube"] = Fact("ok", {"columns": [], "rows": [], "window_days": window_days})
    return Facts(values=values, as_of=datetime(2026, 11, 1, tzinfo=UTC), target={"project_id": "7"})


def test_graduated_cost_matches_posthogs_fixture_amounts():
    table = pricing.tiers({"tiers": PA_TIERS})
    assert pricing.graduated_cost(table, Decimal(7_000_000)) == Decimal("960.00")  # 310 + 650
    assert pricing.graduated_cost(pricing.tiers({"tiers": FF_TIERS}), Decimal(5_000_000)) == Decimal("235.00")
    assert pricing.graduated_cost(pricing.tiers({"tiers": SR_TIERS}), Decimal(16_022)) == Decimal("5.110")
    assert pricing.graduated_cost(table, Decimal(0)) == 0


def test_the_price_is_marginal_at_the_current_tier_not_an_average():
    priced = pricing.price(bill(), Charge(EVENTS, 312_000, "$autocapture events"))
    # 7M projected: the last 312,000 events sit in the 2M-15M tier at $0.00013 (the average is $0.000137).
    assert priced.usd == pytest.approx(312_000 * 0.00013)
    assert "$0.00013 at your current tier of Product analytics" in priced.words


def test_removing_units_across_tiers_prices_each_tier():
    priced = pricing.price(bill(), Charge(EVENTS, 5_500_000, "events"))
    # 7M -> 1.5M: 5M at $0.00013 and 0.5M at $0.00031.
    assert priced.usd == pytest.approx(5_000_000 * 0.00013 + 500_000 * 0.00031)
    assert "across your tiers" in priced.words and "$0.00031" in priced.words and "$0.00013" in priced.words


def test_units_within_the_free_tier_cost_nothing():
    facts = facts_with(bill())
    made = pricing.impact(facts, [Charge(RECORDINGS, 1500, "recordings")], "k")
    # current 16,022 (no projection): removing 1,500 leaves 14,522: only the 1,022 above 15,000 cost $0.005.
    assert made.usd_per_month == pytest.approx(1022 * 0.005)
    assert "so far" in made.basis  # priced on usage so far, and it says so


def test_an_unsubscribed_product_costs_nothing_and_says_why():
    priced = pricing.price(bill(), Charge(pricing.PRODUCT_METERS["surveys"], 100, "responses"))
    assert priced.usd == 0 and "not on a paid plan" in priced.words


def test_discount_and_annual_plans():
    discounted = pricing.price(bill(discount_percent=20), Charge(EVENTS, 100_000, "events"))
    assert discounted.usd == pytest.approx(100_000 * 0.00013 * 0.8) and "20% discount" in discounted.words
    annual = bill(billing_period={"interval": "year"})
    annual["products"][0]["projected_usage"] = 84_000_000  # a year's events
    priced = pricing.price(annual, Charge(EVENTS, 1_000_000, "events"))
    # An annual plan's tiers apply to the year's usage: 12M a year removed from 84M, all in the 50M-100M tier.
    assert priced.usd == pytest.approx(12_000_000 * 0.0000455 / 12)


def test_free_allocation_without_a_free_tier():
    flat = {"products": [{"type": "session_replay", "subscribed": True, "free_allocation": 5000,
                          "unit_amount_usd": "0.005", "tiers": None, "projected_usage": 6000}]}
    assert pricing.price(flat, Charge(RECORDINGS, 2000, "recordings")).usd == pytest.approx(1000 * 0.005)


def test_person_profiles_add_on_is_priced_on_its_own_usage_and_tiers():
    priced = pricing.price(bill(), Charge(PERSON_PROFILES, 500_000, "events"))
    # identified events: 3M projected -> 2.5M, in the 2M-15M tier of the add-on.
    assert priced.usd == pytest.approx(500_000 * 0.0000697)
    no_addon = bill()
    no_addon["products"][0]["addons"] = []
    assert pricing.price(no_addon, Charge(PERSON_PROFILES, 500_000, "events")).usd is None


def test_group_analytics_is_priced_on_the_products_event_volume():
    facts = facts_with(bill())
    made = pricing.whole_charge(facts, GROUP_ANALYTICS, "k", "unused")
    assert made.usd_per_month == pytest.approx(6_000_000 * 0.0001)  # 7M projected events, first 1M free
    assert made.share_of_bill == pytest.approx(600 / 1200)


def test_without_readable_billing_units_only():
    facts = facts_with(None, status="unavailable")
    made = pricing.impact(facts, [Charge(EVENTS, 312_000, "$autocapture events")], "k")
    assert made.usd_per_month is None and made.share_of_bill is None and made.units_per_month == 312_000
    assert "$ unknown (billing not readable)" in made.basis


def test_an_impact_states_its_basis_and_share():
    made = pricing.impact(facts_with(bill()), [Charge(EVENTS, 312_000, "$autocapture events")], "k")
    assert made.basis.startswith("312,000 $autocapture events/month × $0.00013 at your current tier")
    assert made.share_of_bill == pytest.approx(312_000 * 0.00013 / 1200, abs=1e-4)
    assert made.meter == "events" and made.unit == "event"


def test_flag_calls_are_never_priced_as_requests():
    made = pricing.unpriced(facts_with(bill()), 40_000, "$feature_flag_called event", "$feature_flag_called events",
                            FLAG_REQUESTS, "k", "PostHog bills flag requests, not $feature_flag_called events")
    assert made.usd_per_month is None and "bills flag requests" in made.basis


def test_per_month_scales_a_shortened_window():
    assert pricing.per_month(700, facts_with(bill(), window_days=7), "cube") == pytest.approx(3000)
    assert pricing.per_month(700, facts_with(bill()), "cube") == 700


def test_the_total_counts_each_waste_once():
    results = [
        {"id": "a", "impact": {"usd_per_month": 10.0, "share_of_bill": 0.01, "units_per_month": 5, "unit": "event",
                               "key": "x"}},
        {"id": "b", "impact": {"usd_per_month": 12.5, "share_of_bill": 0.0125, "units_per_month": 6,
                               "unit": "event", "key": "x"}},  # the same waste: counted once, the larger
        {"id": "c", "impact": {"usd_per_month": 5.0, "share_of_bill": 0.005, "units_per_month": 1, "unit": "row",
                               "key": "y"}},
        {"id": "d", "impact": {"usd_per_month": None, "units_per_month": 300, "unit": "$feature_flag_called event",
                               "key": "z", "unpriced_reason": "flags are billed per request"}},
        {"id": "e", "impact": None},
    ]
    got = total(results)
    assert got["usd_per_month"] == 17.5 and got["share_of_bill"] == pytest.approx(0.0175)
    assert got["priced"] == 2 and got["unpriced"] == 1
    assert got["unpriced_units"] == [{"unit": "$feature_flag_called event", "units_per_month": 300}]
    assert got["unpriced_reasons"] == ["flags are billed per request"]
    assert total([])["usd_per_month"] is None


def test_the_demos_billing_agrees_with_its_own_tiers():
    """The demo's stated amounts are what its tiers charge for its usage (as PostHog's billing computes them)."""
    from auditor.demo import demo_billing

    demo = demo_billing(datetime(2026, 11, 1, tzinfo=UTC))
    entries = [p for p in demo["products"] if p["tiers"]] + [a for p in demo["products"] for a in p.get("addons") or []]
    for entry in entries:
        table = pricing.tiers(entry)
        for usage, amount in (("current_usage", "current_amount_usd"), ("projected_usage", "projected_amount_usd")):
            cost = pricing.graduated_cost(table, Decimal(entry[usage])).quantize(Decimal("0.01"))
            assert cost == Decimal(entry[amount]), entry["type"]
        assert sum(t["projected_usage"] for t in entry["tiers"]) == entry["projected_usage"]
    charged = [e for e in entries if e["current_amount_usd"]]
    assert Decimal(demo["projected_total_amount_usd"]) == sum(Decimal(e["projected_amount_usd"]) for e in charged)
