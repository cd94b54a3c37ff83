"""The benchmarks, small and without latency, so they keep working (the timed targets live in benchmarks/)."""

from __future__ import annotations

import sys

import pytest
import requests

from benchmarks import run as bench
from benchmarks import scenarios
from tests.standin import retry_after, running, throttles_for


def test_audit_benchmark_measures_what_it_claims():
    row = bench.bench_audit("small", scenarios.small, latency=0.0, baseline=False, repeats=1)
    assert row["hogql_queries"] == 1
    assert row["http_requests"] >= 20 and row["request_depth"] >= 3
    assert row["process_s"] > row["wall_s"] > row["gather_s"] > 0  # the whole process holds the audit
    assert 0 < row["rss_mb"] < 1000 and 0 < row["report_mb"] < 2
    assert row["render_s"] > 0


def test_a_child_reports_its_own_peak_rss_not_the_harness():
    """Spawned straight from a big process, a child's ru_maxrss is the parent's high-water mark; through the
    launcher it is the child's own."""
    ballast = bytearray(300 * 2**20)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # touched: resident
    small = bench.run_process([sys.executable, "-c", "pass"])
    grown = bench.run_process([sys.executable, "-c", "b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    del ballast
    assert small["exit"] == 0 and grown["exit"] == 0
    assert small["rss_mb"] < 100 and small["floor_mb"] < 100
    assert 64 < grown["rss_mb"] < 200
    assert grown["wall_s"] > 0 and grown["cpu_s"] > 0


def test_startup_benchmark_compares_with_a_bare_interpreter():
    rows = bench.bench_startup(runs=1, warm_up=False)
    assert [r["command"] for r in rows] == ["python -c pass", "posthog-auditor --help", "posthog-auditor checks"]
    assert rows[0]["over_python_ms"] == 0 and all(r["runs"] == 1 and r["median_s"] > 0 for r in rows)
    verdicts = bench.startup_verdicts(rows)
    assert [name for name, _, _ in verdicts] == [
        "`posthog-auditor --help` starts in ≤ 150 ms over `python -c pass`",
        "`posthog-auditor checks` starts in ≤ 150 ms over `python -c pass`"]


def test_large_scenario_has_the_advertised_sizes():
    s = scenarios.large(0.01)
    assert len(s.lists["feature_flags/"]) == 50 and len(s.lists["insights/"]) == 50
    assert len({(e.event, e.properties) for e in s.raw_events().events}) >= 500  # a cube of ≥ 500 rows


def test_batch_benchmark_runs():
    # 120 HogQL an hour with the hour shortened to 0.5 s and the budget to 2: three accounts, one wait.
    result = bench.bench_batch(3, time_factor=7200, count_divisor=60, latency=0.0, parallel=3,
                               throttles={"hogql": (120, 3600.0)})
    assert result["reports"] == 3 and result["failed"] == 0
    assert result["hogql"] == 3 and result["forced_s"] == 0.5 and result["binding"] == "hogql"
    assert result["bound_s"] >= result["forced_s"] and result["beyond_s"] >= 0
    assert result["product_limits"]["hogql"] == (2, 0.5)  # the product's own defaults, scaled the same way


def test_standin_enforces_posthogs_throttles_by_endpoint():
    assert throttles_for("POST", "/api/projects/1/query/") == ("hogql",)
    assert "clickhouse_burst" in throttles_for("GET", "/api/projects/1/insights/")
    assert "burst" in throttles_for("GET", "/api/projects/1/feature_flags/")
    scenario = scenarios.small()
    limits = {"burst": (1, 1.0), "clickhouse_burst": (2, 1.0)}  # a minute, shortened 60 times
    with running(scenario, api_key="k", limits=limits, time_scale=60.0) as standin:
        def get(path: str) -> requests.Response:
            return requests.get(f"{standin.url}/api/projects/{scenario.project_id}/{path}",
                                headers={"Authorization": "Bearer k"}, timeout=5)

        assert get("feature_flags/").status_code == 200
        refused = get("cohorts/")
        assert refused.status_code == 429 and 0 < float(refused.headers["Retry-After"]) <= 1.0
        assert get("insights/").status_code == 200 and get("insights/").status_code == 200  # their own budget
        assert get("insights/").status_code == 429
        assert standin.throttled_by == {"burst": 1, "clickhouse_burst": 1}


def test_retry_after_is_whole_seconds_scaled_with_the_windows():
    assert retry_after(0.2) == "1" and retry_after(2.2) == "3"
    assert retry_after(0.001, time_scale=60) == "0.0167"  # PostHog's 1 s, in a run whose windows are 60× shorter
    assert retry_after(0.5, time_scale=60) == "0.5000"


def test_formats_benchmark_runs():
    result = bench.bench_formats(2, rounds=1, latency=0.0, parallel=2, warm_up=False)
    assert result["json_s"] > 0 and result["all_s"] > 0 and result["ratio"] > 0


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


def test_readme_results_are_written_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Benchmarks\n\nprose\n\n{bench.README_BEGIN}\nold table\n{bench.README_END}\n\nmore prose\n")
    results = {"date": "2026-11-30 12:00 UTC", "machine": "a test machine", "latency": 0.08, "load_before": "0.1",
               "load_after": "0.2", "formats": {"accounts": 2, "rounds": 1, "json_s": 1.0, "all_s": 1.5,
                                                "ratio": 1.5}}
    verdicts = bench.formats_verdicts(results["formats"])
    bench.write_readme(readme, bench.results_markdown(results, verdicts, "python -m benchmarks.run --quick"))
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nprose\n\n") and text.endswith(f"{bench.README_END}\n\nmore prose\n")
    assert "old table" not in text and "a test machine" in text and "`python -m benchmarks.run --quick`" in text
    assert "| batch writing html+json+md ≤ 1.2× the wall of json only | **FAIL** | 1.50×" in text
    bench.write_readme(readme, "second run")  # idempotent: the markers stay
    assert readme.read_text().count(bench.README_BEGIN) == 1 and "second run" in readme.read_text()


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no results section"):
        bench.write_readme(readme, "table")
    assert readme.read_text() == "# no markers\n"


def test_the_benchmark_readme_has_a_results_section():
    text = bench.README.read_text()
    assert text.index(bench.README_BEGIN) < text.index(bench.README_END)
