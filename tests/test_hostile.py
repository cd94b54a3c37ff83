"""Hostile servers, over loopback only: the key never leaves the configured host, no redirect is followed, and a
malformed answer never becomes a pass (issue 13, items 1–3)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from auditor.facts import gather
from auditor.posthog_api import ApiError, same_origin
from auditor.vitally_api import VitallyClient
from tests.conftest import fast_client
from tests.standin import Fault
from tests.vitally_standin import running_vitally


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
