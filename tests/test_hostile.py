"""Hostile servers and hostile names, over loopback only: the key never leaves the configured host, no redirect is
followed, a malformed answer never becomes a pass (issue 13, items 1–3), and names a customer controls (carriage
returns, escape sequences, NUL, bidi overrides) are shown neutralised in the terminal, Markdown and HTML (item 5)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.adapters import BaseAdapter

from auditor.cli import cli
from auditor.clients.posthog_api import ApiError, same_origin
from auditor.clients.vitally_api import VitallyClient
from auditor.facts import gather
from auditor.outputs.render import render_html, render_markdown
from auditor.outputs.vitally import note_for
from auditor.text import neutralise
from tests.conftest import fast_client
from tests.standin import Fault
from tests.vitally_standin import running_vitally


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    """Retries do not really wait (each test gets fresh per-key limiters: tests/conftest.py)."""
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)


class Catcher:
    """Another server on the machine: records whatever reaches it (it must be nothing)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Authorization header)
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> None:
                catcher.seen.append((self.command, self.path, self.headers.get("Authorization")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = do_DELETE = _record

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def catcher() -> Iterator[Catcher]:
    c = Catcher()
    threading.Thread(target=c.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()


def page(next_url: str, items: list[Any] | None = None, count: Any = None) -> dict[str, Any]:
    return {"count": count, "next": next_url, "previous": None, "results": items or [{"id": 1, "name": "first"}]}


# ---- 1. the key goes to the configured host only -----------------------------------------------------------

@pytest.mark.parametrize(("url", "same"), [
    ("https://us.posthog.com/api/x/?offset=100", True),
    ("https://US.PostHog.com:443/api/x/", True),
    ("http://us.posthog.com/api/x/", False),           # https -> http downgrade
    ("https://us.posthog.com:8443/api/x/", False),     # another port
    ("https://eu.posthog.com/api/x/", False),          # another host
    ("https://us.posthog.com.evil.io/api/x/", False),
    ("https://us.posthog.com@evil.io/api/x/", False),  # user info: the host is evil.io
    ("https://user@us.posthog.com/api/x/", False),     # user info on the right host: not what was configured
    ("https://us.posthog.com:99999/api/x/", False),    # unparseable port
    ("//evil.io/api/x/", False),
    ("ftp://us.posthog.com/api/x/", False),
])
def test_same_origin(url, same):
    assert same_origin(url, "https://us.posthog.com") is same


@pytest.mark.parametrize("suffix", ["cohorts/", "feature_flags/"])
def test_a_next_link_to_another_port_is_not_followed(standin, scenario, catcher, suffix):
    standin.faults.append(Fault(rf"/{suffix}$", status=200, body=page(f"{catcher.url}/api/projects/4242/{suffix}"
                                                                      "?limit=100&offset=100", count=250)))
    with fast_client(standin.url, standin.api_key) as client, pytest.raises(ApiError) as info:
        client.project_list(scenario.project_id, suffix, {"limit": 100})
    assert info.value.kind == "foreign_host"
    assert str(info.value).startswith(f"PostHog sent a link to another host: {catcher.url}/api/projects/4242/")
    assert catcher.seen == []


def test_a_next_link_elsewhere_makes_the_fact_an_error(standin, scenario, catcher):
    standin.faults.append(Fault(r"/cohorts/$", status=200, body=page(f"{catcher.url}/steal?offset=100")))
    with fast_client(standin.url, standin.api_key) as client:
        facts = gather(client, scenario.project_id, ["cohorts"], scopes=None, project=scenario.project)
    assert facts.status("cohorts") == "error"
    assert facts.reason("cohorts") == f"PostHog sent a link to another host: {catcher.url}/steal?offset=100"
    assert catcher.seen == []


def test_a_relative_next_link_stays_on_the_host(standin, scenario):
    scenario.lists["cohorts/"] = [{"id": i} for i in range(3)]
    standin.faults.append(Fault(r"/cohorts/$", status=200, body=page("?limit=2&offset=1", items=[{"id": 0}])))
    with fast_client(standin.url, standin.api_key) as client:
        cohorts = client.project_list(scenario.project_id, "cohorts/", {"limit": 2})
    assert [c["id"] for c in cohorts] == [0, 1, 2]


class RecordingAdapter(BaseAdapter):
    """In-process answers (no socket at all) for an https host, recording every URL asked for."""

    def __init__(self, answers: dict[str, Any]):
        super().__init__()
        self.answers, self.urls = answers, []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.urls.append(request.url)
        response = requests.Response()
        response.status_code, response.url, response.request = 200, request.url, request
        response._content = requests.compat.json.dumps(self.answers.get(request.url, {})).encode()
        response.raw = BytesIO(response._content)
        return response

    def close(self) -> None:
        pass


def test_an_https_to_http_downgrade_is_another_host():
    first = "https://us.posthog.com/api/projects/4242/cohorts/"
    adapter = RecordingAdapter({first: page("http://us.posthog.com/api/projects/4242/cohorts/?offset=1")})
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    with fast_client("https://us.posthog.com", "phx_hostile_test_key", session=session) as client, \
            pytest.raises(ApiError, match=r"another host: http://us\.posthog\.com/"):
        client.get_list("/api/projects/4242/cohorts/")
    assert adapter.urls == [first]


def test_an_async_query_id_cannot_steer_the_poll(standin, scenario):
    standin.faults.append(Fault(r"/query/$", status=202, body={"query_status": {
        "id": "../../../dashboards", "complete": False}}))
    with fast_client(standin.url, standin.api_key) as client, pytest.raises(ApiError, match="not a plain id"):
        client.query(scenario.project_id, "SELECT 1 LIMIT 10", name="posthog-auditor cube")
    assert standin.count(r"dashboards") == 0


# ---- 2. no redirects, on GET or POST --------------------------------------------------------------------------

def test_a_307_on_the_query_endpoint_is_not_re_posted(standin, scenario):
    dashboards = f"{standin.url}/api/projects/{scenario.project_id}/dashboards/"
    standin.faults.append(Fault(r"/query/$", status=307, headers={"Location": dashboards}))
    with fast_client(standin.url, standin.api_key) as client, pytest.raises(ApiError) as info:
        client.query(scenario.project_id, "SELECT 1 LIMIT 10", name="posthog-auditor cube")
    assert info.value.kind == "redirect" and info.value.status == 307
    assert f"redirecting to {dashboards}" in str(info.value)
    assert standin.requests == [("POST", f"/api/projects/{scenario.project_id}/query/")]  # once, never retried


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_on_get_is_an_error_naming_the_location(standin, scenario, catcher, status):
    standin.faults.append(Fault(r"/groups_types/$", status=status, headers={"Location": f"{catcher.url}/x"}))
    with fast_client(standin.url, standin.api_key) as client, pytest.raises(ApiError) as info:
        client.get(f"/api/projects/{scenario.project_id}/groups_types/")
    assert info.value.kind == "redirect" and f"redirecting to {catcher.url}/x" in str(info.value)
    assert catcher.seen == [] and standin.count(r"/groups_types/") == 1


def test_a_redirect_makes_the_fact_an_error(standin, scenario, catcher):
    standin.faults.append(Fault(r"/groups_types/$", status=302, headers={"Location": f"{catcher.url}/x"}))
    with fast_client(standin.url, standin.api_key) as client:
        facts = gather(client, scenario.project_id, ["groups"], scopes=None, project=scenario.project)
    assert facts.status("groups") == "error" and "redirecting to" in facts.reason("groups")



def test_a_host_that_redirects_is_a_one_line_error(standin, scenario, catcher, tmp_path):
    """E.g. --host http://… on a PostHog that redirects to https: the audit says so instead of following."""
    from tests.test_cli import assert_one_line_error, audit_args, invoke

    standin.faults.append(Fault(r"^/api/", status=301, headers={"Location": f"{catcher.url}/api/"}, times=99))
    result = invoke(audit_args(standin, tmp_path), {"POSTHOG_PERSONAL_API_KEY": standin.api_key})
    assert_one_line_error(result, 2, f"redirecting to {catcher.url}/api/: posthog-auditor follows no redirects")
    assert catcher.seen == []


@contextmanager
def vitally_redirecting(location: str, method: str) -> Iterator[Any]:
    with running_vitally() as vitally:
        plain = vitally.handle

        def handle(m: str, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
            if m == method:
                return 307, {"Location": location}, {}
            return plain(m, path, query, body)

        vitally.handle = handle
        yield vitally


def vitally_client(vitally: Any) -> VitallyClient:
    return VitallyClient(base=vitally.url, api_key=vitally.api_key, sleep=lambda s: None)


def test_vitally_write_redirected_is_not_re_sent(catcher):
    with vitally_redirecting(f"{catcher.url}/notes", "POST") as vitally, pytest.raises(ApiError) as info:
        vitally_client(vitally).upsert_note("vit-2", {"externalId": "run-1", "note": "<p>x</p>",
                                                      "noteDate": "2026-11-01T00:00:00Z"})
    assert info.value.kind == "redirect" and f"redirecting to {catcher.url}/notes" in str(info.value)
    assert catcher.seen == [] and vitally.writes() == [("POST", "/resources/notes")]


def test_vitally_read_redirected_is_an_error(catcher):
    with vitally_redirecting(f"{catcher.url}/accounts", "GET") as vitally, pytest.raises(ApiError) as info:
        vitally_client(vitally).accounts()
    assert info.value.kind == "redirect" and catcher.seen == []


def test_vitally_sends_nothing_to_another_host(catcher):
    with running_vitally() as vitally, pytest.raises(ApiError) as info:
        vitally_client(vitally).get(f"{catcher.url}/resources/accounts")
    assert str(info.value) == f"Vitally sent a link to another host: {catcher.url}/resources/accounts"
    assert catcher.seen == [] and vitally.requests == []



@contextmanager
def vitally_answering(body: Any, path_pattern: str) -> Iterator[Any]:
    import re

    with running_vitally() as vitally:
        plain = vitally.handle

        def handle(m: str, path: str, query: dict[str, str], request_body: Any) -> tuple[int, dict[str, str], Any]:
            if re.search(path_pattern, path):
                return 200, {}, body
            return plain(m, path, query, request_body)

        vitally.handle = handle
        yield vitally


@pytest.mark.parametrize(("body", "call", "message"), [
    ({"results": None, "next": None}, lambda c: c.account_notes("vit-1"), "`results` is null"),
    ("maintenance", lambda c: c.accounts(), "expected a page"),
    ({}, lambda c: c.account_users("vit-1"), "`results` is null"),
    ({"results": [], "next": {"from": 1}}, lambda c: c.accounts(), "`next` is an object"),
    (["vit-1"], lambda c: c.account("vit-1"), "expected an account object, got a list"),
    ({"results": "x"}, lambda c: c.custom_fields(), "`results` is a string"),
])
def test_vitally_answers_of_the_wrong_shape_are_errors(body, call, message):
    with vitally_answering(body, r"^/resources/(accounts|customFields)") as vitally, \
            pytest.raises(ApiError) as info:
        call(vitally_client(vitally))
    assert info.value.kind == "bad_response" and message in str(info.value)


# ---- 3. a malformed answer never becomes a pass -----------------------------------------------------------

PID = "4242"
# Fact -> the path of the answer it relies on (the one poisoned). HogQL facts read the query endpoint.
GATHERER_PATHS = {
    "organization": "/api/organizations/{org}/",
    "members": "/api/organizations/{org}/members/",
    "cube": f"/api/projects/{PID}/query/",
    "identity": f"/api/projects/{PID}/query/",
    "replay": f"/api/projects/{PID}/query/",
    "sdk_health": f"/api/projects/{PID}/sdk_health/report/",
    "ingestion_warnings": f"/api/projects/{PID}/ingestion_warnings_v2/",
    "groups": f"/api/projects/{PID}/groups_types/",
    "billing": "/api/billing/",
    "person_properties": f"/api/projects/{PID}/property_definitions/",
    "insights": f"/api/projects/{PID}/insights/",
    "flags": f"/api/projects/{PID}/feature_flags/",
    "warehouse_sources": f"/api/projects/{PID}/external_data_sources/",
    "warehouse_schemas": f"/api/projects/{PID}/external_data_schemas/",
    "warehouse_jobs": f"/api/projects/{PID}/external_data_sources/{{source}}/jobs/",
    "saved_queries": f"/api/projects/{PID}/warehouse_saved_queries/",
    "actions": f"/api/projects/{PID}/actions/",
    "dashboards": f"/api/projects/{PID}/dashboards/",
    "cohorts": f"/api/projects/{PID}/cohorts/",
    "playlists": f"/api/projects/{PID}/session_recording_playlists/",
    "experiments": f"/api/projects/{PID}/experiments/",
    "view_links": f"/api/projects/{PID}/warehouse_view_links/",
    "symbol_sets": f"/api/projects/{PID}/error_tracking/symbol_sets/",
    "error_issues": f"/api/projects/{PID}/error_tracking/issues/",
    "surveys": f"/api/projects/{PID}/surveys/",
}
HUGE = 10**18


def test_every_gatherer_is_covered():
    from auditor.facts import GATHERERS

    assert set(GATHERERS) - {"project"} == set(GATHERER_PATHS)  # a new gatherer needs its path here


def path_of(name: str, scenario) -> str:
    source = scenario.lists["external_data_sources/"][0]["id"]
    return GATHERER_PATHS[name].format(org=scenario.organization["id"], source=source)


def huge_page(standin, path: str, count: int = HUGE) -> dict[str, Any]:
    """A first page that claims more items than any audit would read, with a `next` link to go and get them."""
    return {"count": count, "next": f"{standin.url}{path}?limit=1&offset=1", "previous": None, "results": []}


def gather_poisoned(standin, scenario, name: str, body: Any):
    """Gather one fact while its answer is `body` (a 200); returns the fact and the requests its path got."""
    path = path_of(name, scenario)
    standin.faults[:] = [Fault(f"^{path}$", status=200, body=body, times=1)]
    before = len(standin.requests)
    with fast_client(standin.url, standin.api_key, max_retries=0) as client:
        facts = gather(client, PID, [name], scopes=None, project=scenario.project)
    standin.faults.clear()
    hits = sum(1 for _, p in standin.requests[before:] if p.startswith(path.split("?")[0]))
    return facts.values[name], hits


def assert_refused(fact, name: str) -> None:
    assert fact.status == "error", (name, fact)
    assert fact.error.startswith("unexpected answer from /api/"), (name, fact.error)


MALFORMED = {
    "empty object": {},
    "results null": {"count": 3, "next": None, "previous": None, "results": None},
    "a string": "Service temporarily unavailable",
    "non-objects": [1, "two", None, [3]],
    "page of non-objects": {"count": 2, "next": None, "previous": None, "results": ["a", 2]},
}


@pytest.mark.parametrize("name", sorted(GATHERER_PATHS))
def test_a_malformed_answer_makes_the_fact_an_error(standin, scenario, name):
    for kind, body in MALFORMED.items():
        fact, _ = gather_poisoned(standin, scenario, name, body)
        assert_refused(fact, f"{name} answering {kind}")
    # A huge count: refused on the first answer, not one of the 10**18 claimed items is asked for.
    fact, hits = gather_poisoned(standin, scenario, name, huge_page(standin, path_of(name, scenario)))
    assert hits == 1
    if name == "warehouse_jobs":  # reads a source's most recent page on purpose: its count is not followed
        assert fact.status == "ok"
    else:
        assert_refused(fact, name)
        if name not in ("organization", "sdk_health", "billing", "cube", "identity", "replay"):  # not lists
            assert "more than 2000 pages" in fact.error


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
NON_OBJECTS = st.lists(JSON_SCALARS | st.lists(JSON_SCALARS, max_size=2), min_size=1, max_size=4)
# Answers of the wrong shape, each of the kinds the issue names, with whatever else the server adds around them.
MALFORMED_BODIES = st.one_of(
    st.dictionaries(st.sampled_from(["count", "next", "previous", "detail", "status"]),
                    st.none() | st.integers(0, 5), max_size=3),                       # {} and its like
    st.fixed_dictionaries({"results": st.none() | st.text(max_size=8) | st.integers() | st.booleans()},
                          optional={"count": st.integers(0, 5), "next": st.none()}),  # `results` not a list
    st.text(max_size=30),                                                              # a string
    NON_OBJECTS,                                                                       # a list of non-objects
    st.fixed_dictionaries({"results": NON_OBJECTS}, optional={"count": st.integers(0, 5)}),
    st.integers(min_value=10_000_000, max_value=10**30).map(lambda n: ("huge count", n)),
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(GATHERER_PATHS)), body=MALFORMED_BODIES)
def test_no_malformed_answer_is_ever_gathered_as_ok(standin, scenario, name, body):
    """Property: whatever wrong shape a gatherer's answer has, the fact is `error`, never an empty `ok`."""
    if isinstance(body, tuple):  # a page claiming `n` items (its next link needs the stand-in's address)
        if name == "warehouse_jobs":  # reads one page on purpose: a count is not followed there
            return
        body = huge_page(standin, path_of(name, scenario), body[1])
    fact, hits = gather_poisoned(standin, scenario, name, body)
    assert_refused(fact, name)
    assert hits == 1


def test_the_project_itself_is_checked(standin, scenario):
    from auditor.facts import fetch_project

    for body in MALFORMED.values():
        standin.faults[:] = [Fault(rf"^/api/projects/{PID}/$", status=200, body=body)]
        with fast_client(standin.url, standin.api_key) as client, \
                pytest.raises(ApiError, match=rf"^unexpected answer from /api/projects/{PID}/: "):
            fetch_project(client, PID)
    standin.faults[:] = [Fault(rf"^/api/projects/{PID}/$", status=200, body={**scenario.project, "app_urls": "x"})]
    with fast_client(standin.url, standin.api_key) as client, pytest.raises(ApiError, match="`app_urls` is a string"):
        fetch_project(client, PID)


def test_an_empty_members_list_is_an_error(standin, scenario):
    fact, _ = gather_poisoned(standin, scenario, "members", {"count": 0, "next": None, "previous": None,
                                                             "results": []})
    assert_refused(fact, "members")
    assert "always at least one" in fact.error


@pytest.mark.parametrize(("body", "message"), [
    ({"columns": ["kind"], "results": None}, "`results` of 'posthog-auditor cube' is null"),
    ({"columns": ["kind"], "results": [["totals"], "row"]}, "holds a row that is not a list"),
    ({"columns": ["kind"], "results": [{"kind": "totals"}]}, "holds a row that is not a list"),
    ({"columns": "kind", "results": []}, "`columns` of 'posthog-auditor cube' is not a list of column names"),
    ({"columns": [1], "results": []}, "not a list of column names"),
    ({"results": []}, "not a list of column names"),
    ({"columns": [], "results": [], "limit": "all"}, "`limit` of 'posthog-auditor cube' is a string"),
    ({"query_status": "done"}, "`query_status` is a string"),
])
def test_hogql_answers_of_the_wrong_shape_are_refused(standin, scenario, body, message):
    standin.faults.append(Fault(r"/query/$", status=200, body=body))
    with fast_client(standin.url, standin.api_key) as client, pytest.raises(ApiError) as info:
        client.query(PID, "SELECT 1 LIMIT 10", name="posthog-auditor cube")
    assert info.value.kind == "bad_response" and message in str(info.value)


def test_an_async_poll_of_the_wrong_shape_is_refused(standin, scenario):
    scenario.async_queries = True
    standin.faults.append(Fault(r"/query/q1/$", status=200, body=["complete"]))
    with fast_client(standin.url, standin.api_key) as client, \
            pytest.raises(ApiError, match=r"unexpected answer from .*/query/q1/: expected an object"):
        client.query(PID, "SELECT 1 LIMIT 10", name="posthog-auditor cube")


@pytest.mark.parametrize(("body", "message"), [
    ({"count": "many", "next": None, "results": []}, "`count` is a string"),
    ({"count": -1, "next": None, "results": []}, "`count` is a number, not a number of items"),
    ({"count": 3, "next": 7, "results": []}, "`next` is a number, not a URL"),
])
def test_list_pages_of_the_wrong_shape_are_refused(standin, scenario, body, message):
    standin.faults.append(Fault(r"/cohorts/$", status=200, body=body))
    with fast_client(standin.url, standin.api_key) as client, pytest.raises(ApiError) as info:
        client.project_list(PID, "cohorts/")
    assert message in str(info.value)


def test_a_later_page_of_the_wrong_shape_is_refused(standin, scenario):
    scenario.lists["cohorts/"] = [{"id": i} for i in range(5)]
    standin.faults.append(Fault(r"/cohorts/$", status=200, body={"count": 5, "next": None, "results": None},
                                times=99))
    scenario.max_limit = 2
    standin.faults[0].times = 99
    with fast_client(standin.url, standin.api_key) as client, pytest.raises(ApiError, match="`results` is null"):
        client.project_list(PID, "cohorts/", {"limit": 2})


def test_an_endless_chain_of_next_links_stops_at_max_pages(standin, scenario, monkeypatch):
    import auditor.clients.posthog_api as api

    monkeypatch.setattr(api, "MAX_PAGES", 5)
    # Every page names a fresh next page: no loop to detect, only the page limit stops it.
    standin.faults[:] = [Fault(r"/cohorts/$", status=200, body={
        "next": f"{standin.url}/api/projects/{PID}/cohorts/?cursor={i}", "results": [{"id": i}]}) for i in range(20)]
    with fast_client(standin.url, standin.api_key) as client, pytest.raises(ApiError, match="past 5 pages"):
        client.project_list(PID, "cohorts/")
    assert standin.count(r"/cohorts/$") == 6


# ---- 3, at the check level: what a malformed answer does to the verdict -----------------------------------

def audit_poisoned(standin, faults: list[Fault], only_fact: str | None = None) -> dict[str, Any]:
    from auditor.audit import audit_project
    from auditor.config import Settings
    from auditor.registry import load_registry

    registry = load_registry(plugins=False)
    checks = registry.select()
    if only_fact:  # the checks built on this fact (the scope's facts are gathered whatever runs)
        checks = [c for c in checks if only_fact in (*c.meta.requires, *c.meta.uses)]
    standin.faults[:] = faults
    with fast_client(standin.url, standin.api_key, max_retries=0) as client:
        return audit_project(client, PID, registry, checks, Settings())


def statuses(run: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in run["results"]}


@pytest.mark.parametrize("scenario", ["healthy"], indirect=True)
def test_ingestion_warnings_answering_an_empty_object_do_not_pass(standin, scenario):
    assert statuses(audit_poisoned(standin, []))["platform.ingestion-warnings"] == "pass"  # the baseline
    run = audit_poisoned(standin, [Fault(r"/ingestion_warnings_v2/$", status=200, body={})])
    result = next(r for r in run["results"] if r["id"] == "platform.ingestion-warnings")
    assert result["status"] == "error"
    assert "unexpected answer from /api/projects/4242/ingestion_warnings_v2/" in result["summary"]
    assert not run["readiness"]["ready"]


@pytest.mark.parametrize("scenario", ["healthy"], indirect=True)
def test_feature_flags_answering_results_null_do_not_pass_stale_rollouts(standin, scenario):
    assert statuses(audit_poisoned(standin, []))["feature_flags.stale-rollouts"] == "pass"  # the baseline
    run = audit_poisoned(standin, [Fault(r"/feature_flags/$", status=200, body={"count": 0, "results": None})])
    assert statuses(run)["feature_flags.stale-rollouts"] == "error"
    assert "`results` is null" in run["facts"]["flags"]["error"]


@pytest.mark.parametrize("scenario", ["healthy"], indirect=True)
def test_an_empty_members_list_does_not_leave_a_ready_project_ready(standin, tmp_path):
    from tests.test_handover import FULL_ATTESTATIONS, audit, report

    attestations = tmp_path / "attestations.toml"
    attestations.write_text(FULL_ATTESTATIONS)
    standin.faults[:] = [Fault(r"/members/$", status=200, body={"count": 0, "next": None, "results": []})]
    result = audit(standin, tmp_path / "out", "--attestations", str(attestations))
    run = report(tmp_path / "out")
    assert result.exit_code == 1 and run["readiness"]["ready"] is False
    assert statuses(run)["platform.owners-and-admins"] == "error"
    assert run["facts"]["members"]["status"] == "error"
    assert "always at least one item" in run["facts"]["members"]["error"]


@pytest.mark.parametrize("scenario", ["healthy"], indirect=True)
@pytest.mark.parametrize("fact", [*sorted(set(GATHERER_PATHS) - {"cube", "identity", "replay"}), "hogql"])
def test_no_check_built_on_a_malformed_answer_passes(standin, scenario, fact):
    """Each answer in turn answers `{}`: every check that requires that fact is `error`, none passes."""
    path = path_of("cube" if fact == "hogql" else fact, scenario)
    run = audit_poisoned(standin, [Fault(f"^{path}$", status=200, body={}, times=3)],
                         only_fact=None if fact == "hogql" else fact)
    names = ("cube", "identity", "replay") if fact == "hogql" else (fact,)
    assert all(run["facts"][n]["status"] == "error" for n in names)
    from auditor.registry import load_registry

    requiring = {c.id for c in load_registry(plugins=False).select() if set(c.meta.requires) & set(names)}
    got = statuses(run)
    assert {check_id: got[check_id] for check_id in requiring} == dict.fromkeys(requiring, "error")


# ---- names are data, not terminal control (item 5) --------------------------------------------------------

SPOOF = "Acme\rReady for handover: readiness 100/100 for Acme."
ANSI = "Org \x1b[2J\x1b[1;32mREADY\x1b[0m"
NUL = "nul\x00byte"
RLO = "flag-\u202eydaer"  # shown reversed ("ready") by a terminal or browser that obeys the override
ISOLATE = "survey \u2066hidden\u2069 \u2028next line"
C1 = "csi \x9b31m red"
# What must never reach a terminal, a Markdown note or an HTML report as a raw character.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")



def make_hostile(scenario) -> None:
    """Names from the project's REST answers (event names, from HogQL, are covered at render time below)."""
    scenario.project["name"] = SPOOF
    scenario.organization["name"] = ANSI
    scenario.members[0]["user"]["first_name"] = RLO
    scenario.lists["feature_flags/"][3]["key"] = NUL  # stale and uncalled: listed in two findings
    scenario.lists["surveys/"][0]["name"] = ISOLATE


def audit(standin, out, *extra: str):
    return CliRunner().invoke(cli, ["audit", "--host", standin.url, "--project", "4242", "--out", str(out),
                                    "--no-plugins", *extra], env={"POSTHOG_PERSONAL_API_KEY": standin.api_key},
                              catch_exceptions=False)


def test_neutralise_shows_controls_as_escapes():
    assert neutralise(SPOOF) == "Acme\\rReady for handover: readiness 100/100 for Acme."
    assert neutralise(ANSI) == "Org \\x1b[2J\\x1b[1;32mREADY\\x1b[0m"
    assert neutralise(NUL) == "nul\\x00byte"
    assert neutralise(RLO) == "flag-\\u202eydaer"
    assert neutralise(C1) == "csi \\x9b31m red"
    assert neutralise("two\nlines\tand tab") == "two\\nlines\\tand tab"
    assert neutralise("two\nlines\tand tab", keep_lines=True) == "two\nlines\tand tab"
    assert neutralise("Café — naïve 日本 😀") == "Café — naïve 日本 😀"  # ordinary text is untouched


def test_terminal_markdown_and_html_show_hostile_names_neutralised(standin, tmp_path):
    make_hostile(standin.scenario)
    out = tmp_path / "out"
    result = audit(standin, out)
    assert result.exit_code == 1, result.output
    # The terminal summary: the spoofed verdict stays on the project's line, visibly escaped.
    assert not RAW.search(result.output), repr(result.output)
    first = result.output.splitlines()[0]
    assert first.startswith("Not ready for handover:") and "Acme\\rReady for handover" in first
    # Markdown: the heading, the organization line and every summary.
    md = (out / "report.md").read_text()
    assert not RAW.search(md), repr(md)
    assert md.startswith("## PostHog audit: Acme\\rReady for handover: readiness 100/100 for Acme.")
    assert "Org \\x1b[2J" in md
    # HTML: escaped as markup already; no bidi override may reorder the title's score or the verdict either.
    html = (out / "report.html").read_text()
    assert not RAW.search(html.replace("\r\n", "\n")), [m.group() for m in RAW.finditer(html)][:5]
    assert "flag-\\u202eydaer" in html and "nul\\x00byte" in html and "survey \\u2066hidden" in html  # member, flag
    assert "<title>PostHog audit: Acme\\rReady for handover" in html
    # The JSON report keeps the names as data, unchanged (JSON escapes them itself).
    run = json.loads((out / "report.json").read_text())
    assert run["target"]["project_name"] == SPOOF and run["target"]["organization_name"] == ANSI
    assert not RAW.search((out / "report.json").read_text())


def test_rendering_to_stdout_is_neutralised(standin, tmp_path):
    make_hostile(standin.scenario)
    audit(standin, tmp_path / "out", "--format", "json")
    result = CliRunner().invoke(cli, ["render", str(tmp_path / "out" / "report.json"), "--format", "md"])
    assert result.exit_code == 0 and not RAW.search(result.output)


def test_a_server_error_text_cannot_drive_the_terminal(standin, tmp_path):
    standin.faults.append(Fault(r"^/api/projects/4242/$", status=400,
                                body={"detail": "bad\x1b[2K\rReady for handover: readiness 100/100"}, times=9))
    result = audit(standin, tmp_path / "out")
    assert result.exit_code == 2
    assert not RAW.search(result.output) and "bad\\x1b[2K\\rReady" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_vitally_note_neutralises_names():
    run = {"readiness": {"score": 50.0, "ready": False, "reasons": [f"{SPOOF}: Blocker failed"]},
           "target": {"project_name": RLO}, "categories": [], "brief": {}, "run_id": "r", "started_at": "2026-11-01",
           "mode": "handover"}
    note = note_for(run, "vit-1", None)["note"]
    assert not RAW.search(note) and "flag-\\u202eydaer" in note and "Acme\\rReady" in note


def test_batch_progress_and_portfolio_neutralise_account_names(standin, tmp_path):
    accounts = tmp_path / "accounts.toml"
    # An account name as Vitally (--from-vitally) or a colleague's file might carry it.
    accounts.write_text(f'[[accounts]]\nname = "Evil\\u001b[2J\\u202eCo"\nhost = "{standin.url}"\nprojects = [4242]\n')
    result = CliRunner().invoke(cli, ["batch", str(accounts), "--out", str(tmp_path / "p"), "--no-history",
                                      "--no-plugins"], env={"POSTHOG_PERSONAL_API_KEY": standin.api_key})
    assert result.exit_code == 1, result.output
    assert not RAW.search(result.output) and "Evil\\x1b[2J\\u202eCo" in result.output
    assert not RAW.search((tmp_path / "p" / "index.html").read_text())


def test_event_names_in_findings_are_neutralised_in_markdown_and_html(tmp_path):
    """Event names (and any value from the HogQL answers) reach the reports through summaries, evidence tables
    and recommendations: planted there, they come out neutralised."""
    out = tmp_path / "demo"
    assert CliRunner().invoke(cli, ["audit", "--demo", "--format", "json", "--out", str(out), "-q"]).exit_code == 1
    run = json.loads((out / "report.json").read_text())
    failing = next(r for r in run["results"] if r["status"] == "fail" and r["category"] != "handover")
    failing["summary"] = f"{C1} and {NUL} are most of the events"
    failing["evidence"]["table"] = {"columns": ["event", "events"], "rows": [[C1, 5], [SPOOF, 4]], "total_rows": 2}
    run["brief"]["top_recommendations"][0]["summary"] = f"Rename {C1}"
    for text in (render_markdown(run), render_html(run)):
        assert not RAW.search(text.replace("\r\n", "\n"))
        assert "csi \\x9b31m red" in text and "nul\\x00byte" in text
    assert "Acme\\rReady for handover" in render_html(run)  # the evidence table row


@pytest.mark.parametrize("fault", [Fault(r"^/api/projects/4242/$", status=503, times=99),
                                   Fault(r"^/api/projects/4242/$", truncate=True, times=99)],
                         ids=["5xx", "truncated"])
def test_a_project_that_never_answers_usably_is_exit_3_not_a_usage_error(standin, tmp_path, fault):
    """Every retry of what the whole audit needs failed on PostHog's side: nothing the user can change (3), said in
    one line, and no report that could be read as a verdict."""
    standin.faults.append(fault)
    result = audit(standin, tmp_path / "out")
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posthog-auditor: error: the PostHog API gave no usable answer")
    assert not (tmp_path / "out" / "report.json").exists()


def test_the_fast_path_skips_no_character_neutralise_escapes():
    """neutralise returns printable text untouched without a regex: that is only safe if every character it
    escapes is one Python deems unprintable, over the whole of Unicode."""
    import sys

    from auditor.text import _CONTROL

    assert [hex(c) for c in range(sys.maxunicode + 1) if _CONTROL.match(chr(c)) and chr(c).isprintable()] == []
