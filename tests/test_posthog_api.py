"""The PostHog client over a real loopback socket: pagination, HogQL, the read-only guard, and faults."""

from __future__ import annotations

import time

import pytest

from auditor import queries
from auditor.clients.posthog_api import (
    DEFAULT_LIMITS,
    ApiError,
    PostHogClient,
    RateLimiter,
    ReadOnlyViolation,
    normalise_host,
    throttles_for,
)
from tests.conftest import fast_client
from tests.standin import Fault, running


def client_for(standin, **kwargs) -> PostHogClient:
    return fast_client(standin.url, standin.api_key, **kwargs)


def test_limit_offset_list_fetches_remaining_pages_in_parallel(standin, scenario):
    scenario.lists["insights/"] = [{"id": i, "saved": True} for i in range(250)]
    with client_for(standin) as client:
        items = client.project_list(scenario.project_id, "insights/", {"limit": 100})
    assert [i["id"] for i in items] == list(range(250))
    assert standin.count(r"/insights/$") == 3  # first page, then offsets 100 and 200 fetched together


def test_plain_array_endpoint(standin, scenario):
    with client_for(standin) as client:
        groups = client.project_get(scenario.project_id, "groups_types/")
    assert groups[0]["group_type"] == "company"


def test_environments_fallback_on_404(standin, scenario):
    scenario.missing.add("projects:sdk_health/report/")
    with client_for(standin) as client:
        report = client.project_get(scenario.project_id, "sdk_health/report/")
    assert report["health"] == "danger"
    assert standin.count(r"^/api/projects/.*/sdk_health/") == 1
    assert standin.count(r"^/api/environments/.*/sdk_health/") == 1


def test_secrets_are_dropped_on_receipt(standin, scenario):
    with client_for(standin) as client:
        project = client.project_get(scenario.project_id, "")
        org = client.get(f"/api/organizations/{scenario.organization['id']}/")
    assert "api_token" not in project and "secret_api_token" not in project
    assert all("api_token" not in team for team in org["teams"])


def test_hogql_query_returns_rows(standin, scenario):
    with client_for(standin) as client:
        result = client.query(scenario.project_id, queries.identity_sql(), name="posthog-auditor identity")
    assert result.columns[0] == "kind" and not result.truncated
    records = result.records()
    totals = next(r for r in records if r["kind"] == "totals")
    assert totals["events"] == sum(1 for e in scenario.raw_events().events if e.seconds_ago < 30 * 86_400)
    assert standin.count(r"/query/$", "POST") == 1


def test_hogql_result_that_hits_its_limit_is_flagged_truncated(standin, scenario):
    with client_for(standin) as client:
        result = client.query(scenario.project_id, "SELECT event FROM events LIMIT 3", name="x", limit=3)
    assert len(result.rows) == 3
    assert result.truncated


def test_hogql_query_without_limit_is_refused_before_sending(standin, scenario):
    with client_for(standin) as client, pytest.raises(ValueError, match="LIMIT"):
        client.query(scenario.project_id, "SELECT event FROM events", name="x")
    assert standin.count(r"/query/") == 0


def test_async_query_is_polled_until_complete(standin, scenario):
    scenario.async_queries = True
    with client_for(standin) as client:
        result = client.query(scenario.project_id, "SELECT event, count() FROM events GROUP BY event LIMIT 50000",
                              name="posthog-auditor cube")
    assert result.rows and not result.truncated
    assert standin.count(r"/query/q1/$", "GET") == 1


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE", "PUT"])
def test_read_only_guard_refuses_writes_before_sending(standin, scenario, method):
    with client_for(standin) as client, pytest.raises(ReadOnlyViolation):
        client.request(method, client.url(f"/api/projects/{scenario.project_id}/feature_flags/1/"))
    assert standin.count(".*") == 0


def test_401_is_an_auth_error(scenario):
    with running(scenario) as standin, fast_client(standin.url, "phx_wrong_key_123456") as client, \
            pytest.raises(ApiError) as info:
        client.get("/api/personal_api_keys/@current/")
    assert info.value.kind == "auth"
    assert "refused (401)" in str(info.value)


def test_403_missing_scope_names_the_scope(standin, scenario):
    scenario.key_scopes = ["project:read"]
    with client_for(standin) as client, pytest.raises(ApiError) as info:
        client.project_list(scenario.project_id, "actions/")
    assert info.value.kind == "scope"
    assert str(info.value) == "API key missing scope action:read"


def test_403_personal_key_not_supported_is_unavailable(standin, scenario):
    standin.faults.append(Fault(r"ingestion_warnings", status=403,
                                body={"detail": "This action does not support Personal API Key access"}))
    with client_for(standin) as client, pytest.raises(ApiError) as info:
        client.project_get(scenario.project_id, "ingestion_warnings_v2/")
    assert info.value.unavailable


def test_404_project(standin):
    with client_for(standin) as client, pytest.raises(ApiError) as info:
        client.project_get("999", "")
    assert info.value.kind == "not_found"


def test_429_honours_retry_after_then_succeeds(standin, scenario):
    standin.faults.append(Fault(r"/actions/", status=429, headers={"Retry-After": "7"}))
    waits: list[float] = []
    with client_for(standin, sleep=waits.append) as client:
        actions = client.project_list(scenario.project_id, "actions/")
    assert len(actions) == 2
    assert waits and waits[0] >= 7
    assert client.stats.retries == 1


def test_500_then_success(standin, scenario):
    standin.faults.append(Fault(r"/dashboards/", status=500, times=2))
    with client_for(standin) as client:
        dashboards = client.project_list(scenario.project_id, "dashboards/")
    assert len(dashboards) == 4
    assert standin.count(r"/dashboards/") == 3


def test_persistent_500_gives_up_with_a_clear_error(standin, scenario):
    standin.faults.append(Fault(r"/dashboards/", status=502, times=99))
    with client_for(standin, max_retries=2) as client, pytest.raises(ApiError) as info:
        client.project_list(scenario.project_id, "dashboards/")
    assert info.value.kind == "server" and "502" in str(info.value)
    assert standin.count(r"/dashboards/") == 3


def test_slow_response_times_out_instead_of_hanging(standin, scenario):
    standin.faults.append(Fault(r"/cohorts/", delay=1.0, times=99))
    started = time.monotonic()
    with client_for(standin, read_timeout=0.2, max_retries=1) as client, pytest.raises(ApiError) as info:
        client.project_list(scenario.project_id, "cohorts/")
    assert info.value.kind == "network" and "timed out" in str(info.value)
    assert time.monotonic() - started < 5


def test_truncated_json_is_retried_then_reported(standin, scenario):
    standin.faults.append(Fault(r"/groups_types/", truncate=True, times=99))
    with client_for(standin, max_retries=1) as client, pytest.raises(ApiError) as info:
        client.project_get(scenario.project_id, "groups_types/")
    assert info.value.kind == "bad_response" and "not valid JSON" in str(info.value)


def test_truncated_json_once_recovers(standin, scenario):
    standin.faults.append(Fault(r"/groups_types/", truncate=True, times=1))
    with client_for(standin) as client:
        assert client.project_get(scenario.project_id, "groups_types/")[0]["group_type_index"] == 0


def test_next_link_that_loops_is_detected(standin, scenario):
    standin.faults.append(Fault(r"/cohorts/", loop_next=True, times=99))
    with client_for(standin) as client, pytest.raises(ApiError) as info:
        client.project_list(scenario.project_id, "cohorts/")
    assert "loops" in str(info.value)
    assert standin.count(r"/cohorts/") <= 3


def test_unreachable_host_is_a_network_error():
    with fast_client("http://127.0.0.1:9", "phx_x", max_retries=1) as client, pytest.raises(ApiError) as info:
        client.get("/api/personal_api_keys/@current/")
    assert info.value.kind == "network"


def test_rate_limiter_blocks_past_the_budget():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter({"hogql": (3, 3600.0)}, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire("hogql")
    assert slept == []
    limiter.acquire("hogql")
    assert slept == [3600.25]  # the window plus a margin (0.25 s) for PostHog counting on arrival


def test_a_request_waits_for_every_throttle_it_counts_against():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter({"burst": (100, 60.0), "sustained": (1_000, 3_600.0), "clickhouse_burst": (2, 60.0),
                           "clickhouse_sustained": (1_200, 3_600.0), "hogql": (120, 3_600.0)},
                          clock=lambda: now[0], sleep=sleep)
    insights = "https://us.posthog.com/api/projects/1/insights/?limit=1000"
    for _ in range(2):
        limiter.acquire(*throttles_for("GET", insights))
    limiter.acquire(*throttles_for("GET", "https://us.posthog.com/api/projects/1/actions/"))
    assert slept == []  # actions are not ClickHouse-backed: only burst and sustained, both with room
    limiter.acquire(*throttles_for("GET", insights))
    assert slept == [60.25]  # insights wait for their own 2-a-minute throttle (window + the arrival margin)


def test_throttles_are_posthogs():
    """posthog/rate_limit.py: every endpoint burst + sustained; insights, recordings, playlists also the
    ClickHouse throttles; a HogQL query only its own."""
    base = "https://us.posthog.com/api"
    assert throttles_for("POST", f"{base}/projects/1/query/") == ("hogql",)
    assert throttles_for("GET", f"{base}/projects/1/query/q1/") == ("burst", "sustained")
    for path in ("insights/", "session_recordings/", "session_recording_playlists/"):
        assert "clickhouse_sustained" in throttles_for("GET", f"{base}/environments/1/{path}")
    assert throttles_for("GET", f"{base}/organizations/@current/") == ("burst", "sustained")
    assert set(DEFAULT_LIMITS) == {"burst", "sustained", "clickhouse_burst", "clickhouse_sustained", "hogql"}
    assert DEFAULT_LIMITS["sustained"] == (4_800, 3_600.0) and DEFAULT_LIMITS["clickhouse_sustained"] == (1_200,
                                                                                                        3_600.0)


def test_limits_are_configurable_and_the_old_name_still_reads(tmp_path):
    from auditor.config import load_settings
    from auditor.registry import load_registry

    config = tmp_path / "auditor.toml"
    config.write_text("[limits]\nrest = 100\nhogql = 600\nclickhouse_sustained = 900\n")
    limits = load_settings(str(config), {}, load_registry(plugins=False).catalogue).rate_limits
    assert limits["burst"] == (100, 60.0) and limits["hogql"] == (600, 3_600.0)
    assert limits["clickhouse_sustained"] == (900, 3_600.0) and limits["sustained"] == (4_800, 3_600.0)


def test_rate_limiter_is_shared_per_key():
    assert RateLimiter.for_key("phx_a") is RateLimiter.for_key("phx_a")
    assert RateLimiter.for_key("phx_a") is not RateLimiter.for_key("phx_b")


@pytest.mark.parametrize(("given", "expected"), [
    ("us", "https://us.posthog.com"), ("EU", "https://eu.posthog.com"),
    ("https://eu.i.posthog.com/", "https://eu.posthog.com"), ("https://ph.example.com", "https://ph.example.com"),
])
def test_hosts(given, expected):
    assert normalise_host(given) == expected


def test_bad_host_is_rejected():
    with pytest.raises(ValueError, match="host must be"):
        normalise_host("posthog")


def test_a_server_that_caps_limit_still_yields_every_item(standin, scenario):
    scenario.max_limit = 100
    scenario.lists["feature_flags/"] = [{"id": i, "key": f"f{i}", "active": True} for i in range(450)]
    with client_for(standin) as client:
        flags = client.project_list(scenario.project_id, "feature_flags/", {"limit": 1000})
    assert [f["id"] for f in flags] == list(range(450))
    assert standin.count(r"/feature_flags/$") == 5


def test_big_pages_when_the_server_allows_them(standin, scenario):
    scenario.lists["feature_flags/"] = [{"id": i, "key": f"f{i}", "active": True} for i in range(2500)]
    with client_for(standin) as client:
        flags = client.project_list(scenario.project_id, "feature_flags/", {"limit": 1000})
    assert len(flags) == 2500 and standin.count(r"/feature_flags/$") == 3


def test_enough_stops_paging_early(standin, scenario):
    scenario.max_limit = 100
    scenario.lists["property_definitions/"] = [{"name": f"p{i}"} for i in range(100_000)]
    with client_for(standin) as client:
        props = client.project_list(scenario.project_id, "property_definitions/", {"limit": 1000},
                                    enough=lambda items: len(items) >= 150)
    assert len(props) == 200  # two pages, not a thousand
    assert standin.count(r"/property_definitions/") == 2


def test_request_depth_measures_the_critical_path(standin, scenario):
    scenario.lists["feature_flags/"] = [{"id": i, "key": f"f{i}", "active": True} for i in range(3000)]
    with client_for(standin, concurrency=8) as client:
        client.get("/api/personal_api_keys/@current/")          # depth 1
        client.project_list(scenario.project_id, "feature_flags/", {"limit": 1000})  # first page 2, rest 3 together
    assert client.stats.max_depth == 3
    assert client.stats.http_requests == 4


def test_connection_reset_is_retried(standin, scenario):
    standin.faults.append(Fault(r"/groups_types/", reset=True, times=1))
    with client_for(standin) as client:
        assert client.project_get(scenario.project_id, "groups_types/")[0]["group_type"] == "company"
    assert client.stats.retries == 1


def test_standin_rate_limit_answers_429_with_retry_after(scenario):
    with running(scenario, limits={"rest": (2, 60.0)}) as limited, client_for(limited, max_retries=0) as client:
        client.get("/api/personal_api_keys/@current/")
        client.project_get(scenario.project_id, "")
        with pytest.raises(ApiError) as info:
            client.project_get(scenario.project_id, "groups_types/")
    assert info.value.kind == "rate_limited" and limited.throttled == 1


def test_request_depth_is_not_inherited_by_a_later_client(standin):
    """A freed client's chain may be left in the context under what becomes the next client's id(): the next
    client must start its own chain all the same."""
    import auditor.clients.posthog_api as api

    with client_for(standin) as client:
        api._chain_depth.set((id(client), 7))  # what a freed client at the same address would leave behind
        client.get("/api/personal_api_keys/@current/")
        client.get("/api/personal_api_keys/@current/")
    assert client.stats.max_depth == 2
