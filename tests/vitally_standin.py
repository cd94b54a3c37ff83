"""A loopback Vitally stand-in shaped by shared/reference/vitally_api.md: Basic auth, cursor pagination,
accounts readable by id or externalId, users, notes, custom fields, trait merges, and 429s with RateLimit-Reset.
POSTing a note twice creates two notes here, so only the client's own lookup keeps pushes idempotent."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CUSTOM_FIELDS = [
    {"label": f"Paying for {name}", "path": f"vitally.custom.payingFor{name.replace(' ', '')}", "type": "boolean"}
    for name in ("Product Analytics", "Session Replay", "Feature Flags", "Surveys", "Data Warehouse", "Error Tracking")
] + [
    {"label": "New Owner", "path": "vitally.custom.newOwner", "type": "string",
     "options": ["US TAM", "US CSM", "EU TAM", "EU CSM", "Singapore TAM"]},
    {"label": "Invoices Paid", "path": "vitally.custom.invoicesPaid", "type": "boolean"},
]


def account(i: int, name: str, org_id: str, mrr: float, paying: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    traits = {f"vitally.custom.payingFor{p.replace(' ', '')}": True for p in paying}
    traits.update({"vitally.custom.onboardingPipeline": "4. Onboarding", **extra.pop("traits", {})})
    return {"id": f"vit-{i}", "externalId": org_id, "name": name, "mrr": mrr, "traits": traits,
            "accountOwnerId": extra.pop("accountOwnerId", "admin-tae-1"), "csmId": extra.pop("csmId", None),
            "healthScore": 6.4, "lastInboundMessageTimestamp": extra.pop("inbound", "2026-10-28T09:00:00Z"),
            "lastOutboundMessageTimestamp": extra.pop("outbound", "2026-10-30T15:00:00Z"), "usersCount": 3, **extra}


def user(email: str, country: str | None = None, timezone: str | None = None) -> dict[str, Any]:
    traits = {k: v for k, v in (("country", country), ("timezone", timezone)) if v}
    return {"id": f"u-{email}", "externalId": email, "email": email, "traits": traits,
            "lastSeenTimestamp": "2026-10-30T10:00:00Z", "deactivatedAt": None}


def portfolio() -> dict[str, Any]:
    """Accounts of a book of business: Hedgebox (the demo organization) and four others."""
    accounts = [
        account(1, "Hedgebox Inc.", "0191b5c1-7a2e-0000-8c2d-4f0b3d1e9a77", 2_184.5,
                ("Product Analytics", "Session Replay", "Feature Flags"),
                traits={"vitally.custom.invoicesPaid": True}),
        account(2, "Acme Analytics", "org-acme", 2_500, ("Product Analytics",)),
        account(3, "Tokyo Robotics", "org-tokyo", 4_000, ("Product Analytics", "Session Replay", "Feature Flags",
                                                          "Error Tracking")),
        account(4, "Small Co", "org-small", 300, ("Product Analytics",)),
        account(5, "Owned GmbH", "org-owned", 5_000, ("Product Analytics", "Surveys"),
                traits={"vitally.custom.newOwner": "EU TAM"}),
    ]
    users = {
        "vit-1": [user("alice@hedgebox.net", "GB"), user("ben@hedgebox.net", "DE"), user("dev@hedgebox.net", "US")],
        "vit-2": [user("a@acme.io", "US"), user("b@acme.io", timezone="America/Chicago"), user("c@acme.io", "FR")],
        "vit-3": [user("k@tokyo.jp", "JP", "Asia/Tokyo"), user("m@tokyo.jp", "JP", "Asia/Tokyo")],
        "vit-4": [user("s@small.co", "GB")],
        "vit-5": [user("o@owned.de", "DE")],
    }
    notes = [{"id": "note-1", "accountId": "vit-1", "externalId": None, "subject": "Hedgebox — Account Plan FY27",
              "note": "<p>Goals…</p>", "noteDate": "2026-09-20T10:00:00Z", "createdAt": "2026-09-20T10:00:00Z",
              "archived": False},
             # A deleted note stays listed as archived unless the request filters with archived=false.
             {"id": "note-archived", "accountId": "vit-2", "externalId": None, "subject": "Acme — Account Plan (draft)",
              "note": "<p>Old</p>", "noteDate": "2026-10-20T10:00:00Z", "createdAt": "2026-10-20T10:00:00Z",
              "archived": True}]
    return {"accounts": accounts, "users": users, "notes": notes}


class VitallyStandIn:
    def __init__(self, api_key: str = "vitally_test_key_not_real"):
        self.api_key = api_key
        self.data = portfolio()
        self.requests: list[tuple[str, str]] = []
        self.rate_limit_next: dict[str, int] = {}  # path regex -> how many 429s to give
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/resources"

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m in ("POST", "PUT", "DELETE", "PATCH")]

    def _account(self, key: str) -> dict[str, Any] | None:
        return next((a for a in self.data["accounts"] if key in (a["id"], a["externalId"])), None)

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        for pattern, count in list(self.rate_limit_next.items()):
            if count and re.search(pattern, path):
                self.rate_limit_next[pattern] = count - 1
                return 429, {"RateLimit-Limit": "1000", "RateLimit-Remaining": "0", "RateLimit-Reset": "3"}, \
                    {"error": "rate limited"}
        path = path.removeprefix("/resources")
        if path == "/customFields" and method == "GET":
            return 200, {}, {"results": CUSTOM_FIELDS if query.get("model") == "accounts" else []}
        if path == "/accounts" and method == "GET":
            return 200, {}, self._page(self.data["accounts"], query)
        m = re.match(r"^/accounts/([^/]+)(/users|/notes)?$", path)
        if m:
            acc = self._account(m.group(1))
            if acc is None:
                return 404, {}, {"error": "Not found"}
            if m.group(2) == "/users" and method == "GET":
                return 200, {}, self._page(self.data["users"].get(acc["id"], []), query)
            if m.group(2) == "/notes" and method == "GET":
                return 200, {}, self._page([n for n in self.data["notes"] if n["accountId"] == acc["id"]
                                            and not (query.get("archived") == "false" and n.get("archived"))], query)
            if not m.group(2) and method == "GET":
                return 200, {}, acc
            if not m.group(2) and method == "PUT":
                acc["traits"].update((body or {}).get("traits") or {})  # merge: keys left out stay as they are
                return 200, {}, acc
        if path == "/notes" and method == "POST":
            if not body or not body.get("note") or not body.get("noteDate"):
                return 400, {}, {"error": "note and noteDate are required"}
            live = sum(1 for n in self.data["notes"] if not n.get("archived"))
            note = {**body, "id": f"note-{live + 1}", "createdAt": body["noteDate"]}
            self.data["notes"].append(note)
            return 200, {}, note
        m = re.match(r"^/notes/([^/]+)$", path)
        if m and method == "PUT":
            note = next((n for n in self.data["notes"] if n["id"] == m.group(1)), None)
            if note is None:
                return 404, {}, {"error": "Not found"}
            note.update(body or {})
            return 200, {}, note
        return 404, {}, {"error": "Not found"}

    @staticmethod
    def _page(items: list[Any], query: dict[str, str]) -> dict[str, Any]:
        limit = min(int(query.get("limit") or 100), 100)
        start = int(query.get("from") or 0)
        end = start + limit
        return {"results": items[start:end], "next": str(end) if end < len(items) else None}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self
        expected = "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                with standin._lock:
                    standin.requests.append((method, parts.path))
                    if self.headers.get("Authorization") != expected:
                        status, headers, payload = 401, {}, {"error": "Unauthorized"}
                    else:
                        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                        status, headers, payload = standin.handle(method, parts.path, query,
                                                                  json.loads(raw) if raw else None)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler


@contextmanager
def running_vitally() -> Iterator[VitallyStandIn]:
    standin = VitallyStandIn()
    thread = threading.Thread(target=standin.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        standin.server.shutdown()
        standin.server.server_close()
