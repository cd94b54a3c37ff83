"""A loopback PostHog stand-in: serves a Scenario over real HTTP, enforces the key and its scopes like PostHog
does, counts requests, and injects faults (status codes, Retry-After, slow or truncated bodies, looping
`next` links). Reusable by every test that needs a PostHog on the other end of a socket."""

from __future__ import annotations

import contextlib
import math
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from auditor.demo import Scenario, posthog_json
from tests import clickhouse

# Scope PostHog requires per path (posthog/permissions.py + each viewset's scope_object).
PATH_SCOPES = [
    (r"^/api/personal_api_keys/", None),
    (r"^/api/billing/", "billing:read"),
    (r"^/api/users/", "user:read"),
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
    (r"^/api/(projects|environments)/[^/]+/external_data_(sources|schemas)/", "external_data_source:read"),
    (r"^/api/(projects|environments)/[^/]+/(warehouse_saved_queries|warehouse_view_links)/", "warehouse_view:read"),
    (r"^/api/(projects|environments)/[^/]+/error_tracking/", "error_tracking:read"),
    (r"^/api/(projects|environments)/[^/]+/surveys/", "survey:read"),
    (r"^/api/(projects|environments)/[^/]+/feature_flags/", "feature_flag:read"),
    (r"^/api/(projects|environments)/[^/]+/experiments/", "experiment:read"),
    (r"^/api/(projects|environments)/[^/]+/session_recording_playlists/", "session_recording_playlist:read"),
    (r"^/api/(projects|environments)/[^/]+/", "project:read"),
]


# The throttles a request counts against (posthog/rate_limit.py): a HogQL query only the query throttle (120/hour);
# insights, session recordings and playlists the ClickHouse ones (240/minute, 1,200/hour) instead of the defaults
# (480/minute, 4,800/hour) that every other endpoint has. "rest" is every request but a HogQL query.
CLICKHOUSE_THROTTLED = re.compile(r"^/api/(projects|environments)/[^/]+/(insights|session_recordings|"
                                  r"session_recording_playlists)/")


def throttles_for(method: str, path: str) -> tuple[str, ...]:
    if method == "POST" and path.endswith("/query/"):
        return ("hogql",)
    if CLICKHOUSE_THROTTLED.search(path):
        return ("rest", "clickhouse_burst", "clickhouse_sustained")
    return ("rest", "burst", "sustained")


def retry_after(wait: float, time_scale: float = 1.0) -> str:
    """PostHog's Retry-After: whole seconds, at least 1; in a time-scaled run, those seconds scaled."""
    seconds = max(1, math.ceil(wait * time_scale))
    return str(seconds) if time_scale == 1.0 else f"{seconds / time_scale:.4f}"


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
    reset: bool = False  # close the connection without answering
    times: int = 1


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: an audit opening 20 connections at once had the kernel drop SYNs and
    # retry them ~200 ms later, a wait PostHog's servers do not make (it made gathering look slow).
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections the tests reset on purpose end here; the client's behaviour is what gets checked."""


class StandIn:
    def __init__(self, scenario: Scenario, api_key: str = "phx_test_key_for_standin_only", latency: float = 0.0,
                 limits: dict[str, tuple[int, float]] | None = None, fault_rate: float = 0.0, seed: int = 0,
                 timeout_delay: float = 1.0, cache_answers: bool = False, time_scale: float = 1.0):
        self.scenario = scenario
        for project in (scenario, *scenario.siblings.values()):
            project.hogql = project.hogql or clickhouse.answer  # every query runs on ClickHouse, by PostHog's rules
        clickhouse.warm(scenario)
        self.api_key = api_key
        self.latency = latency  # seconds added to every answer, like a far-away API
        # PostHog's throttles, enforced like PostHog: past a budget, 429 with Retry-After. Keys are the throttles
        # of throttles_for() ("rest" is one window over every request but HogQL queries).
        self.limits = limits or {}
        self._window: dict[str, list[float]] = {kind: [] for kind in self.limits}
        self.throttled = 0
        self.throttled_by: dict[str, int] = {}
        # Benchmarks shorten PostHog's windows by a factor: Retry-After (PostHog's whole seconds) shrinks with them.
        self.time_scale = time_scale
        self._encoded: dict[int, tuple[Any, bytes]] = {}
        # Benchmarks: answer a repeated GET from the bytes already encoded, so the stand-in's own CPU does not
        # pose as API latency. Off by default: tests change scenarios between requests.
        self.cache_answers = cache_answers
        self._answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        # Random faults on a share of answers (the fault soak): 500, 429, too slow, truncated, reset.
        self.fault_rate = fault_rate
        self.timeout_delay = timeout_delay
        self._rng = random.Random(seed)
        self.random_faults: dict[str, int] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.timeline: list[tuple[float, str, str]] = []  # (monotonic time received, method, path)
        self._lock = threading.Lock()
        self.server = QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _throttle(self, kinds: tuple[str, ...]) -> float | None:
        """Seconds to wait if this request is over one of its budgets, else None. Like Django REST framework, every
        throttle that lets the request through counts it, even when another one refuses it."""
        waits = []
        with self._lock:
            now = time.monotonic()
            for kind in kinds:
                if kind not in self.limits:
                    continue
                limit, window = self.limits[kind]
                stamps = self._window[kind] = [t for t in self._window[kind] if t > now - window]
                if len(stamps) >= limit:
                    waits.append(stamps[0] + window - now)
                    self.throttled_by[kind] = self.throttled_by.get(kind, 0) + 1
                else:
                    stamps.append(now)
            if waits:
                self.throttled += 1
        return max(waits) if waits else None

    def _encode(self, payload: Any) -> bytes:
        """JSON bytes of an answer; big answers the scenario keeps (HogQL results) are encoded once."""
        key = id(payload)
        with self._lock:
            hit = self._encoded.get(key)
        if hit is not None and hit[0] is payload:
            return hit[1]
        data = posthog_json(payload)
        if len(data) > 100_000:
            with self._lock:
                self._encoded[key] = (payload, data)
        return data

    def count(self, pattern: str = ".*", method: str | None = None) -> int:
        return sum(1 for m, p in self.requests if re.search(pattern, p) and (method is None or m == method))

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            if self.fault_rate and self._rng.random() < self.fault_rate:
                kind = self._rng.choice(["500", "429", "slow", "truncated", "reset"])
                self.random_faults[kind] = self.random_faults.get(kind, 0) + 1
                return {"500": Fault(path, status=500), "429": Fault(path, status=429, headers={"Retry-After": "1"}),
                        "slow": Fault(path, delay=self.timeout_delay), "truncated": Fault(path, truncate=True),
                        "reset": Fault(path, reset=True)}[kind]
            for fault in self.faults:
                if fault.times > 0 and re.search(fault.path, path):
                    fault.times -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY on every accepted socket: the headers and the body go out in two writes, and with Nagle
            # the body waited for the client's delayed ACK (~40 ms on every request of a reused connection).
            disable_nagle_algorithm = True

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
                if standin.latency:
                    time.sleep(standin.latency)
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if fault and fault.reset:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
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
                    body = fault.body if fault.body is not None else {"detail": "injected fault"}  # {} is a body too
                    return self._send(fault.status, body, fault.headers)
                wait = standin._throttle(throttles_for(method, path))
                if wait is not None:
                    return self._send(429, {"type": "throttled_error", "detail": "Request was throttled."},
                                      {"Retry-After": retry_after(wait, standin.time_scale)})
                cached = standin._answers.get(self.path) if standin.cache_answers and method == "GET" else None
                if cached and not fault:
                    return self._send_bytes(*cached)
                status, headers, payload = standin.scenario.respond(method, f"{standin.url}{self.path}", body)
                if fault and fault.loop_next and isinstance(payload, dict):
                    payload = {**payload, "count": None, "next": f"{standin.url}{self.path}"}
                if standin.cache_answers and method == "GET" and not fault and status == 200:
                    standin._answers[self.path] = (status, headers, standin._encode(payload))
                self._send(status, payload, headers, truncate=bool(fault and fault.truncate))

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                      truncate: bool = False) -> None:
                data = standin._encode(payload)
                if truncate:
                    data = data[: max(1, len(data) // 2)]
                self._send_bytes(status, headers or {}, data)

            def _send_bytes(self, status: int, headers: dict[str, str], data: bytes) -> None:
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
