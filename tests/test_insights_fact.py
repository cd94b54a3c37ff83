"""The insights fact: the list's count and its most recently viewed page, asked in one request of a PostHog that
sorts on the view time, read in full of one that cannot; and the same verdict either way."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from auditor.config import Settings
from auditor.demo import insight_list
from auditor.facts import Fact, Facts, gather
from auditor.registry import load_registry
from auditor.runner import run_check
from tests.conftest import fast_client
from tests.standin import Fault

INSIGHTS = r"^/api/projects/[^/]+/insights/$"
REGISTRY = load_registry(plugins=False)


def insights(scenario, n: int, seed: int = 1, never_viewed: float = 0.3) -> list[dict]:
    """n saved insights viewed at random times in the last 60 days (some never), in the list's default order."""
    rng = random.Random(seed)

    def viewed() -> str | None:
        if rng.random() < never_viewed:
            return None
        return (scenario.now - timedelta(hours=rng.randrange(60 * 24))).isoformat().replace("+00:00", "Z")

    def refreshed() -> str | None:  # the deprecated column: unrelated to views, often recent
        return (scenario.now - timedelta(hours=rng.randrange(10 * 24))).isoformat() if rng.random() < 0.5 else None

    return [{"id": i, "short_id": f"s{i}", "name": f"Insight {i}", "saved": True, "deleted": False,
             "last_refresh": refreshed(), "last_viewed_at": viewed()} for i in range(n)]


def gather_insights(standin, scenario, **client_options) -> Fact:
    with fast_client(standin.url, standin.api_key, **client_options) as client:
        facts = gather(client, scenario.project_id, ["insights"], scopes=None, project=scenario.project)
    return facts.values["insights"]


def test_a_long_list_is_one_request_its_count_and_the_most_recently_viewed(standin, scenario):
    scenario.lists["insights/"] = insights(scenario, 250)
    fact = gather_insights(standin, scenario)
    assert fact.status == "ok", fact.error
    assert standin.count(INSIGHTS) == 1
    assert fact.value["count"] == 250 and fact.value["complete"] is False and len(fact.value["items"]) == 100
    latest = max(i["last_viewed_at"] for i in scenario.lists["insights/"] if i["last_viewed_at"])
    assert fact.value["items"][0]["last_viewed_at"] == latest


def test_a_short_list_is_complete_in_one_page(standin, scenario):
    scenario.lists["insights/"] = insights(scenario, 40)
    fact = gather_insights(standin, scenario)
    assert fact.value["count"] == 40 and fact.value["complete"] is True and len(fact.value["items"]) == 40
    assert standin.count(INSIGHTS) == 1


def unsorted_page(scenario, count: int) -> dict:
    page = sorted(insights(scenario, 100, never_viewed=0), key=lambda i: i["id"])
    return {"count": count, "next": None, "previous": None, "results": page}


@pytest.mark.parametrize("fault", [
    pytest.param(Fault(INSIGHTS, status=500, body={"detail": "Cannot resolve keyword 'last_viewed_at'"}),
                 id="an older PostHog refuses the order"),
    pytest.param(None, id="the page is not in the order asked"),
    pytest.param("no view times", id="the page says nothing of view times"),
])
def test_a_posthog_that_cannot_sort_on_the_view_time_is_read_in_full(standin, scenario, fault):
    scenario.lists["insights/"] = everything = insights(scenario, 250)
    if fault is None:
        fault = Fault(INSIGHTS, status=200, body=unsorted_page(scenario, 250))
    elif fault == "no view times":
        page = [{k: v for k, v in i.items() if k != "last_viewed_at"} for i in everything[:100]]
        fault = Fault(INSIGHTS, status=200, body={"count": 250, "next": None, "previous": None, "results": page})
    standin.faults[:] = [fault]
    fact = gather_insights(standin, scenario, max_retries=0)
    assert fact.status == "ok", fact.error
    assert fact.value["count"] == 250 and fact.value["complete"] is True
    assert sorted(i["id"] for i in fact.value["items"]) == list(range(250))


def test_a_malformed_first_page_is_an_error_not_a_fallback(standin, scenario):
    scenario.lists["insights/"] = insights(scenario, 250)
    standin.faults[:] = [Fault(INSIGHTS, status=200, body={"count": 250, "next": None, "previous": None,
                                                           "results": []})]
    fact = gather_insights(standin, scenario, max_retries=0)
    assert fact.status == "error" and "first page is empty" in fact.error
    assert standin.count(INSIGHTS) == 1


def verdict(scenario, insights_value: dict) -> tuple[str, str, dict]:
    check = REGISTRY.checks["product_analytics.dashboards-in-use"]
    dashboards = [{"id": 1, "name": "Growth", "last_accessed_at": None}]
    facts = Facts(values={"dashboards": Fact("ok", dashboards), "insights": Fact("ok", insights_value)},
                  as_of=scenario.now, target={})
    result = run_check(check, facts, Settings())
    return result.status.value, result.summary, result.evidence.get("metrics", {})


@pytest.mark.parametrize("seed", range(12))
def test_the_verdict_from_one_page_is_the_verdict_from_every_insight(scenario, seed):
    """The judgement the page allows is the one the whole list gives, however views fall (recent, old, never)."""
    rng = random.Random(seed)
    n = rng.choice([3, 120, 450])
    everything = insights(scenario, n, seed=seed, never_viewed=rng.choice([0.0, 0.5, 0.97, 1.0]))
    for item in everything:
        if item["last_viewed_at"] and seed % 3 == 0:  # nothing opened for a month
            item["last_viewed_at"] = (scenario.now - timedelta(days=40)).isoformat()
        elif item["last_viewed_at"] and seed % 3 == 1:  # nothing opened this last week
            item["last_viewed_at"] = (scenario.now - timedelta(days=rng.uniform(8, 29))).isoformat()
    listed = insight_list(everything, {"saved": "true", "basic": "true", "order": "-last_viewed_at"})
    page = {"count": n, "items": listed[:100], "complete": n <= 100}
    full = {"count": n, "items": everything, "complete": True}
    assert verdict(scenario, page) == verdict(scenario, full)


def test_the_one_recent_view_at_the_end_of_the_default_order_is_on_the_page(scenario):
    """Only the last of 450 insights in PostHog's default order was opened this week: the page sorted by view
    time carries it (a page in the default order would not, and would fail the customer)."""
    everything = insights(scenario, 450, never_viewed=0)
    for item in everything:
        item["last_viewed_at"] = (scenario.now - timedelta(days=40)).isoformat()
    everything[-1]["last_viewed_at"] = (scenario.now - timedelta(hours=1)).isoformat()
    listed = insight_list(everything, {"saved": "true", "basic": "true", "order": "-last_viewed_at"})
    page = {"count": 450, "items": listed[:100], "complete": False}
    assert verdict(scenario, page)[0] == "pass"
    assert verdict(scenario, page) == verdict(scenario, {"count": 450, "items": everything, "complete": True})
    assert verdict(scenario, {"count": 450, "items": everything[:100], "complete": False})[0] == "fail"


@pytest.mark.parametrize(("times", "trusted"), [
    (["2026-11-20T10:00:00Z", "2026-11-19T10:00:00+00:00", None, None], True),
    (["2026-11-19T10:00:00Z", "2026-11-20T10:00:00Z"], False),  # oldest first
    ([None, "2026-11-20T10:00:00Z"], False),  # the never viewed first
    ([None, None], False),  # nothing viewed: as a server that sorts nulls first would answer too
    (["2026-11-20T10:00:00Z", "yesterday"], False),
    (["2026-11-20T10:00:00", "2026-11-19T10:00:00Z"], False),  # a time without its offset
    ([7], False),
])
def test_a_page_is_trusted_only_when_sorted_as_asked(times, trusted):
    from auditor.facts import most_recently_viewed_first

    assert most_recently_viewed_first([{"id": i, "last_viewed_at": t} for i, t in enumerate(times)]) is trusted


def test_a_list_of_hundreds_of_thousands_is_still_one_page(standin, scenario):
    """The count is judged against the pages a full read would take (1,000 items), not the 100 asked for."""
    page = sorted(insights(scenario, 100, never_viewed=0), key=lambda i: i["last_viewed_at"], reverse=True)
    standin.faults[:] = [Fault(INSIGHTS, status=200, body={"count": 300_000, "next": None, "previous": None,
                                                           "results": page})]
    fact = gather_insights(standin, scenario, max_retries=0)
    assert fact.status == "ok", fact.error
    assert fact.value["count"] == 300_000 and standin.count(INSIGHTS) == 1
