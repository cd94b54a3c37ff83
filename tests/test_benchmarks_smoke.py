"""The benchmarks, small and without latency, so they keep working (the timed targets live in benchmarks/)."""

from __future__ import annotations

from benchmarks import run as bench
from benchmarks import scenarios


def test_audit_benchmark_measures_what_it_claims():
    row = bench.bench_audit("small", scenarios.small, latency=0.0, baseline=False)
    assert row["hogql_queries"] == 1
    assert row["http_requests"] >= 20 and row["request_depth"] >= 3
    assert 0 < row["rss_mb"] < 1000 and 0 < row["report_mb"] < 2
    assert row["render_s"] > 0


def test_large_scenario_has_the_advertised_sizes():
    s = scenarios.large(0.01)
    assert len(s.lists["feature_flags/"]) == 50 and len(s.lists["insights/"]) == 50
    assert len({(e.event, e.properties) for e in s.raw_events().events}) >= 500  # a cube of ≥ 500 rows


def test_batch_benchmark_runs():
    result = bench.bench_batch(3, hogql=(2, 1.0), rest=(200, 1.0), latency=0.0, parallel=3)
    assert result["reports"] == 3 and result["failed"] == 0
    assert result["hogql"] == 3 and result["forced_s"] == 1.0


def test_soak_benchmark_runs_and_checks_invariants():
    result = bench.bench_soak(3, fault_rate=0.1)
    assert result["crashes"] == 0 and result["other_exit"] == 0
    assert result["reports"] + result["exit_3"] == 3
    assert result["violations"] == []


def test_soak_invariants_catch_a_violation():
    run = {"facts": {"cube": {"status": "error"}}, "scope": {"paid_products": ["product_analytics"]},
           "readiness": {"ready": True},
           "results": [{"id": "platform.events-flowing", "status": "pass", "severity": "blocker",
                        "category": "platform"},
                       {"id": "product_analytics.identify-used", "status": "error", "severity": "blocker",
                        "category": "product_analytics"}]}
    problems = bench.soak_violations(0, run, {"platform.events-flowing": {"cube"}})
    assert any("events-flowing is pass" in p for p in problems)
    assert any("ready although blocker" in p for p in problems)
