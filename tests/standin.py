"""A loopback PostHog stand-in: serves a Scenario over real HTTP, enforces the key and its scopes like PostHog
does, counts requests, and injects faults (status codes, Retry-After, slow or truncated bodies, looping
`next` links). Reusable by every test that needs a PostHog on the other end of a socket."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from auditor.demo import Scenario

# Scope PostHog requires per path (posthog/permissions.py + each viewset's scope_object).
PATH_SCOPES = [
    (r"^/api/personal_api_keys/", None),
    (r"^/api/billing/", "billing:read"),
    (r"^/api/organizations/[^/]+/members/", "organization_member:read"),
    (r"^/api/organizations/", "organization:read"),
    (r"^/api/(projects|environments)/[^/]+/query/", "query:read"),
    (r"^/api/(projects|environments)/[^/]+/actions/", "action:read"),
    (r"^/api/(projects|environments)/[^/]+/cohorts/", "cohort:read"),
    (r"^/api/(projects|environments)/[^/]+/insights/", "insight:read"),
    (r"^/api/(projects|environments)/[^/]+/dashboards/", "dashboard:read"),
    (r"^/api/(projects|environments)/[^/]+/property_definitions/", "property_definition:read"),
    (r"^/api/(projects|environments)/[^/]+/groups_types/", "group:read"),
    (r"^/api/(projects|environments)/[^/]+/ingestion_warnings_v2/", "ingestion_warning:read"),
    (r"^/api/(projects|environments)/[^/]+/", "project:read"),
]


@dataclass
class Fault:
    """One injected misbehaviour for requests whose path matches `path` (a regex); used `times` times."""

    path: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    truncate: bool = False
    loop_next: bool = False
    times: int = 1


class StandIn:
    def __init__(self, scenario: Scenario, api_key: str = "phx_test_key_for_standin_only"):
        self.scenario = scenario
        self.api_key = api_key
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.timeline: list[tuple[float, str, str]] = []  # (monotonic time received, method, path)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, pattern: str = ".*", method: str | None = None) -> int:
        return sum(1 for m, p in self.requests if re.search(pattern, p) and (method is None or m == method))

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and re.search(fault.path, path):
                    fault.times -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split("?", 1)[0]
                with standin._lock:
                    standin.requests.append((method, path))
                    standin.timeline.append((time.monotonic(), method, path))
                fault = standin._take_fault(path)
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if self.headers.get("Authorization") != f"Bearer {standin.api_key}":
                    return self._send(401, {"type": "authentication_error", "code": "authentication_failed",
                                            "detail": "Invalid personal API key."})
                needed = next((scope for pattern, scope in PATH_SCOPES if re.search(pattern, path)), None)
                scopes = standin.scenario.key_scopes
                if needed and "*" not in scopes and needed not in scopes \
                        and needed.replace(":read", ":write") not in scopes:
                    return self._send(403, {"type": "authentication_error", "code": "permission_denied",
                                            "detail": f"API key missing required scope '{needed}'"})
                if fault and fault.status:
                    return self._send(fault.status, fault.body or {"detail": "injected fault"}, fault.headers)
                status, headers, payload = standin.scenario.respond(method, f"{standin.url}{self.path}", body)
                if fault and fault.loop_next and isinstance(payload, dict):
                    payload = {**payload, "count": None, "next": f"{standin.url}{self.path}"}
                self._send(status, payload, headers, truncate=bool(fault and fault.truncate))

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                      truncate: bool = False) -> None:
                data = json.dumps(payload).encode()
                if truncate:
                    data = data[: max(1, len(data) // 2)]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def start(self) -> StandIn:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def running(scenario: Scenario, **kwargs: Any) -> Iterator[StandIn]:
    standin = StandIn(scenario, **kwargs).start()
    try:
        yield standin
    finally:
        standin.stop()
