"""A built-in demo: a fake PostHog API serving a realistic project, so `audit --demo` works with no key and
no network. The same scenario router backs the loopback stand-in the tests record cassettes against.

Payload shapes follow PostHog's serializers and the fixtures in shared/reference (project settings, members,
HogQL responses, the SDK health report, ingestion warnings v2, billing with add-ons). Dates are relative to
`now`, so the demo never ages.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import requests
from requests.adapters import BaseAdapter

from auditor.demo.events import NEW_WEB, NODE, OLD_WEB, EventData, demo_events

DEMO_HOST = "https://us.posthog.com"
DEMO_PROJECT_ID = "4242"
DEMO_KEY = "demo-key-not-a-secret"
ORG_ID = "0191b5c1-7a2e-0000-8c2d-4f0b3d1e9a77"


HogQLAnswer = Callable[["Scenario", str], dict[str, Any]]


def posthog_json(payload: Any) -> bytes:
    """JSON as PostHog's API writes it: DRF's JSONRenderer (PostHog's SafeJSONRenderer, posthog/renderers.py,
    subclasses it) is compact, leaves non-ASCII text as UTF-8 and escapes U+2028 and U+2029."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


class QueryRefused(Exception):
    """PostHog refused or failed a HogQL query: it answers 400 with this message."""


@dataclass
class Scenario:
    """A PostHog project as data, and a router that answers API requests about it."""

    project_id: str
    project: dict[str, Any]
    organization: dict[str, Any]
    members: list[dict[str, Any]]
    events: EventData | None = None  # raw events and replay rows; None: the demo's own (built when asked for)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))  # the project's clock
    # Property definitions with a type (name -> Numeric | Boolean | DateTime); the rest are untyped (String).
    property_types: dict[str, str] = field(default_factory=dict)
    # Who answers HogQL: the demo's precomputed answers; the tests' stand-in runs each query on ClickHouse.
    hogql: HogQLAnswer | None = None
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # path suffix -> items
    plain: dict[str, Any] = field(default_factory=dict)  # path -> JSON answered as is
    missing: set[str] = field(default_factory=set)  # project path suffixes answering 404
    key_scopes: list[str] = field(default_factory=lambda: ["*"])
    async_queries: bool = False
    siblings: dict[str, Scenario] = field(default_factory=dict)  # other projects of the same organization
    max_limit: int | None = None  # like a server that caps ?limit= (its next links then say so)
    timeout_windows: set[int] = field(default_factory=set)  # HogQL over these many days times out (504)
    # The key user's current organization, which `GET /api/billing/` answers for (None: this one).
    user_organization: dict[str, Any] | None = None
    _pending: dict[str, dict[str, Any]] = field(default_factory=dict)

    def raw_events(self) -> EventData:
        return self.events if self.events is not None else demo_events()

    # ---- routing -----------------------------------------------------------------------------

    def respond(self, method: str, url: str, body: bytes | None) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if method not in ("GET", "POST"):
            return 405, {}, {"detail": f"Method \"{method}\" not allowed."}
        if path == "/api/personal_api_keys/@current/":
            return 200, {}, {"id": "key-1", "label": "auditor", "scopes": self.key_scopes,
                             "scoped_teams": None, "scoped_organizations": None}
        if path == "/api/billing/" and "/api/billing/" in self.plain:
            return 200, {}, self.plain["/api/billing/"]
        if path == "/api/users/@me/":
            return 200, {}, self._me()
        org = re.match(r"^/api/organizations/([^/]+)/(members/|projects/)?$", path)
        if org:
            if org.group(1) not in (self.organization["id"], "@current"):
                return 404, {}, {"detail": "Not found."}
            if org.group(2) == "members/":
                return 200, {}, self._page(self.members, query, base, path)
            if org.group(2) == "projects/":
                projects = [{"id": int(s.project_id), "name": s.project["name"], "organization": s.organization["id"]}
                            for s in (self, *self.siblings.values())]
                return 200, {}, self._page(projects, query, base, path)
            return 200, {}, self.organization
        proj = re.match(r"^/api/(projects|environments)/([^/]+)/(.*)$", path)
        if proj and proj.group(2) in self.siblings:
            return self.siblings[proj.group(2)].respond(method, url, body)
        if not proj or proj.group(2) != self.project_id:
            return 404, {}, {"detail": "Not found."}
        suffix = proj.group(3)
        if suffix in self.missing or (proj.group(1) == "projects" and f"projects:{suffix}" in self.missing):
            return 404, {}, {"detail": "Not found."}
        if suffix == "":
            return 200, {}, self.project
        if suffix == "query/" and method == "POST":
            return self._query(json.loads(body or b"{}"))
        pending = re.match(r"^query/([^/]+)/$", suffix)
        if pending and method == "GET":
            return self._poll(pending.group(1))
        if method != "GET":
            return 405, {}, {"detail": f"Method \"{method}\" not allowed."}
        if suffix in self.plain:
            return 200, {}, self.plain[suffix]
        warehouse = self._warehouse(suffix)
        if warehouse is not None:
            return 200, {}, self._page(warehouse, query, base, path) if isinstance(warehouse, list) else warehouse
        if suffix == "insights/" and suffix in self.lists:
            return 200, {}, self._page(insight_list(self.lists[suffix], query), query, base, path)
        if suffix in self.lists:
            return 200, {}, self._page(self.lists[suffix], query, base, path)
        return 404, {}, {"detail": "Not found."}

    def _me(self) -> dict[str, Any]:
        """GET /api/users/@me/ (posthog/api/user.py): the current organization and team, and every membership."""
        current = self.user_organization or self.organization
        own = {k: self.organization.get(k) for k in ("id", "name", "slug", "membership_level")}
        return {"uuid": "0191b5c1-0000-0000-0000-000000000000", "email": "alice@hedgebox.net", "first_name": "Alice",
                "organization": {k: v for k, v in current.items() if k != "teams"},
                "team": {"id": int(self.project_id), "organization": current.get("id"), "project_id":
                         int(self.project_id), "timezone": self.project.get("timezone")},
                "organizations": [own] + ([{k: current.get(k) for k in own}] if self.user_organization else [])}

    def _warehouse(self, suffix: str) -> Any:
        """The warehouse as PostHog's serializers give it: the source list embeds schemas trimmed to
        ExternalDataSchemaListSerializer's fields; the schema list has them in full but without their source; a
        source's detail embeds them in full (products/warehouse_sources/…/serializers.py)."""
        sources = self.lists.get("external_data_sources/")
        if sources is None:
            return None
        if suffix == "external_data_sources/":
            return [{**s, "schemas": [trimmed_schema(x) for x in s.get("schemas") or []]} for s in sources]
        if suffix == "external_data_schemas/":
            return [{**x, "source": None} for s in sources for x in s.get("schemas") or []]
        detail = re.match(r"^external_data_sources/([^/]+)/$", suffix)
        if detail:
            return next((s for s in sources if str(s.get("id")) == detail.group(1)), None)
        return None

    def _page(self, items: list[Any], query: dict[str, str], base: str, path: str) -> dict[str, Any]:
        limit = int(query.get("limit") or 100)
        if self.max_limit:
            limit = min(limit, self.max_limit)
        offset = int(query.get("offset") or 0)
        page = items[offset: offset + limit]
        def link(o: int) -> str:
            return f"{base}{path}?{urlencode({**query, 'limit': limit, 'offset': o})}"
        return {
            "count": len(items),
            "next": link(offset + limit) if offset + limit < len(items) else None,
            "previous": link(max(0, offset - limit)) if offset else None,
            "results": page,
        }

    def _query(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        sql = ((body.get("query") or {}).get("query")) or ""
        if any(f"INTERVAL {days} DAY" in sql for days in self.timeout_windows):
            return 504, {}, {"type": "server_error", "code": "query_timeout",
                             "detail": "Query has hit the max execution time before completing."}
        answer = self.hogql or precomputed_answer
        try:
            result = answer(self, sql)
        except QueryRefused as exc:  # posthog/api/query.py: a HogQL or ClickHouse error is a 400 validation error
            return 400, {}, {"type": "validation_error", "code": "query_error", "detail": str(exc), "attr": None}
        if self.async_queries:
            query_id = f"q{len(self._pending) + 1}"
            self._pending[query_id] = result
            return 202, {}, {"query_status": {"id": query_id, "complete": False, "query_async": True}}
        return 200, {}, result

    def _poll(self, query_id: str) -> tuple[int, dict[str, str], Any]:
        if query_id not in self._pending:
            return 404, {}, {"detail": "Not found."}
        return 200, {}, {"query_status": {"id": query_id, "complete": True, "results": self._pending[query_id]}}


TRIMMED_SCHEMA_FIELDS = ("id", "name", "label", "should_sync", "status", "sync_type", "last_synced_at", "latest_error")


# InsightBasicSerializer's fields (products/product_analytics/backend/api/insight.py): no `deleted`, no results.
INSIGHT_BASIC_FIELDS = ("id", "short_id", "name", "derived_name", "filters", "query", "dashboards", "dashboard_tiles",
                        "description", "last_refresh", "refreshing", "saved", "tags", "updated_at", "created_by",
                        "created_at", "last_modified_at", "favorited", "user_access_level", "last_viewed_at")


def insight_list(insights: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """GET insights/ as PostHog's InsightViewSet answers it: deleted ones left out; `saved` filters (a saved=true
    list also holds insights on a dashboard, which a scenario marks saved); `order=-last_viewed_at` puts the
    latest view first and the never viewed last (order_queryset); `basic=true` gives the basic serializer."""
    items = [i for i in insights if not i.get("deleted")]
    if "saved" in query:
        items = [i for i in items if bool(i.get("saved")) == _flag(query["saved"])]
    if query.get("order") in ("-last_viewed_at", "last_viewed_at"):
        latest_first = query["order"] == "-last_viewed_at"
        viewed = sorted((i for i in items if i.get("last_viewed_at")),
                        key=lambda i: datetime.fromisoformat(i["last_viewed_at"]), reverse=latest_first)
        never = [i for i in items if not i.get("last_viewed_at")]
        items = viewed + never if latest_first else never + viewed
    if _flag(query.get("basic", "")):
        items = [{k: v for k, v in i.items() if k in INSIGHT_BASIC_FIELDS} for i in items]
    return items


def _flag(value: str) -> bool:
    """A boolean query parameter as PostHog reads it (posthog/utils.py str_to_bool)."""
    return value.lower() in ("y", "yes", "t", "true", "on", "1")


def trimmed_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema as the source list shows it: no sync frequency, incremental field or columns."""
    table = schema.get("table")
    return {**{k: schema.get(k) for k in TRIMMED_SCHEMA_FIELDS},
            "table": {k: table.get(k) for k in ("id", "name", "row_count")} if isinstance(table, dict) else None}


class ScenarioAdapter(BaseAdapter):
    """Serves a Scenario to requests in-process: the demo's requests never leave the machine."""

    def __init__(self, scenario: Scenario):
        super().__init__()
        self.scenario = scenario

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        status, headers, payload = self.scenario.respond(request.method or "GET", request.url or "", body)
        response = requests.Response()
        response.status_code = status
        response.headers.update({"Content-Type": "application/json", **headers})
        response._content = posthog_json(payload)
        response.raw = BytesIO(response._content)
        response.url = request.url or ""
        response.request = request
        response.reason = "OK" if status < 400 else "Error"
        return response

    def close(self) -> None:
        pass


def demo_session(scenario: Scenario) -> requests.Session:
    session = requests.Session()
    session.mount("https://", ScenarioAdapter(scenario))
    session.mount("http://", ScenarioAdapter(scenario))
    return session


# ---- the demo project: Hedgebox, a mid-size B2B file-sharing SaaS ------------------------------

def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def demo_scenario(now: datetime | None = None) -> Scenario:
    now = now or datetime.now(UTC)
    def ago(**kw: float) -> str:
        return _iso(now - timedelta(**kw))

    old, new, node = OLD_WEB, NEW_WEB, NODE  # the versions the demo's events carry
    project = {
        "id": int(DEMO_PROJECT_ID), "uuid": "0191b5c1-8f00-0000-5e1c-2a6b1c0d4e21", "organization": ORG_ID,
        "name": "Hedgebox (production)", "api_token": "phc_DEMOdemoDEMOdemoDEMOdemoDEMOdemo0000000000",
        "secret_api_token": "phs_DEMOdemoDEMOdemoDEMOdemo000000000000000000",
        "app_urls": ["https://app.hedgebox.net", "https://hedgebox.net"], "timezone": "Europe/London",
        "autocapture_opt_out": False, "autocapture_exceptions_opt_in": False,
        "autocapture_web_vitals_opt_in": True, "capture_console_log_opt_in": True,
        "capture_performance_opt_in": True, "session_recording_opt_in": True,
        "session_recording_sample_rate": "1.00", "session_recording_minimum_duration_milliseconds": None,
        "session_recording_linked_flag": None, "session_recording_network_payload_capture_config": None,
        "session_recording_masking_config": None, "session_recording_url_trigger_config": [],
        "session_recording_url_blocklist_config": [], "session_recording_event_trigger_config": [],
        "session_replay_config": {"record_canvas": False}, "recording_domains": [],
        "heatmaps_opt_in": True, "surveys_opt_in": True, "anonymize_ips": False, "ingested_event": True,
        "completed_snippet_onboarding": True, "is_demo": False, "has_group_types": True,
        "test_account_filters": [{"key": "email", "value": "@hedgebox.net", "operator": "not_icontains",
                                  "type": "person"}],
    }
    organization = {
        "id": ORG_ID, "name": "Hedgebox Inc.", "slug": "hedgebox", "created_at": ago(days=540),
        "membership_level": 15, "member_count": 14, "customer_id": "cus_DemoHedgebox",
        "teams": [{"id": int(DEMO_PROJECT_ID), "name": "Hedgebox (production)",
                   "api_token": "phc_DEMOdemoDEMOdemoDEMOdemoDEMOdemo0000000000"}],
    }
    people = [
        ("Alice", "Nguyen", 15, 3), ("Ben", "Okafor", 8, 10), ("Chloe", "Martin", 8, 121),
        ("Dev", "Patel", 1, 1), ("Emma", "Schulz", 1, 6), ("Farid", "Haddad", 1, 28),
        ("Grace", "Kim", 1, 45), ("Hugo", "Silva", 1, 62), ("Ines", "Moreau", 1, 95), ("Jon", "Berg", 1, 150),
        ("Kai", "Tanaka", 1, 200), ("Lena", "Fischer", 1, None), ("Mo", "Ali", 1, 33), ("Nora", "Lind", 1, 70),
    ]
    members = [
        {"id": f"m-{i}", "level": level, "joined_at": ago(days=400 - i * 20), "is_2fa_enabled": i < 3,
         "last_login": ago(days=days, hours=2) if days is not None else None,
         "user": {"id": i + 1, "uuid": f"0191b5c1-0000-0000-0000-00000000{i:04d}", "first_name": first,
                  "last_name": last, "email": f"{first.lower()}@hedgebox.net"}}
        for i, (first, last, level, days) in enumerate(people)
    ]
    actions = [
        {"id": 1, "name": "Viewed pricing", "deleted": False, "created_at": ago(days=200),
         "steps": [{"event": "$pageview", "url": "/pricing", "url_matching": "contains"}]},
        {"id": 2, "name": "Activated", "deleted": False, "created_at": ago(days=150),
         "steps": [{"event": "signed up"}, {"event": "file uploaded"}]},
    ]
    dashboards = [
        {"id": 10 + i, "name": name, "pinned": i == 0, "deleted": False, "created_at": ago(days=300 - i * 30),
         "last_accessed_at": ago(days=viewed), "is_shared": False, "tags": []}
        for i, (name, viewed) in enumerate([("Growth weekly", 2), ("Activation funnel", 9),
                                            ("Web vitals", 40), ("Storage usage", 75)])
    ]
    insights = [
        {"id": 100 + i, "short_id": f"ins{i:03d}", "name": f"Insight {i + 1}", "saved": True, "deleted": False,
         "created_at": ago(days=250 - i * 5), "last_modified_at": ago(days=60 - i),
         "last_viewed_at": ago(days=1 + i * 4)}
        for i in range(23)
    ]
    person_properties: list[dict[str, Any]] = [
        {"id": f"pp{i}", "name": name, "is_numerical": name == "seats", "property_type": None, "tags": []}
        for i, name in enumerate(["email", "name", "plan", "company_size", "seats", "$initial_referrer",
                                  "$geoip_country_code"])
    ]
    cohorts = [
        {"id": 1, "name": "Paying customers", "is_static": False, "deleted": False, "count": 4_100,
         "filters": {"properties": {"type": "AND", "values": [{"key": "plan", "type": "person", "value": "pro"}]}}},
        {"id": 2, "name": "Uploaded in last 7 days", "is_static": False, "deleted": False, "count": 9_800,
         "filters": {"properties": {"type": "OR", "values": [{"key": "file uploaded", "type": "behavioral",
                                                               "value": "performed_event", "time_value": 7}]}}},
        {"id": 3, "name": "Beta testers", "is_static": True, "deleted": False, "count": 120},
    ]
    groups = [{"group_type": "company", "group_type_index": 0, "name_singular": "Company",
               "name_plural": "Companies", "detail_dashboard": None, "created_at": ago(days=300)}]
    sdk_health = {
        "overall_health": "needs_attention", "health": "danger", "needs_updating_count": 1, "team_sdk_count": 2,
        "sdks": [
            {"lib": "web", "latest_version": "1.449.2", "needs_updating": True, "is_outdated": True,
             "is_old": True, "severity": "danger",
             "reason": "Most web traffic runs 1.380.1, released more than six months ago.",
             "releases": [{"version": old, "count": 2_857_300, "max_timestamp": ago(minutes=4),
                           "release_date": ago(days=200), "is_outdated": True},
                          {"version": new, "count": 492_000, "max_timestamp": ago(minutes=4),
                           "release_date": ago(days=12), "is_outdated": False}],
             "outdated_traffic_alerts": [{"version": old, "threshold_percent": 20}]},
            {"lib": "posthog-node", "latest_version": "5.70.0", "needs_updating": False, "is_outdated": False,
             "is_old": False, "severity": "none", "reason": "",
             "releases": [{"version": node, "count": 315_810, "max_timestamp": ago(minutes=4),
                           "release_date": ago(days=60), "is_outdated": False}],
             "outdated_traffic_alerts": []},
        ],
    }
    warnings = [
        {"type": "cannot_merge_with_illegal_distinct_id", "category": "identity", "severity": "warning",
         "count": 212, "last_seen": ago(hours=3), "sparkline": [30, 31, 29, 33, 28, 30, 31],
         "samples": [{"timestamp": ago(hours=3), "distinct_id": "undefined",
                      "details": {"illegalDistinctId": "undefined"}}]},
        {"type": "cannot_merge_already_identified", "category": "identity", "severity": "warning", "count": 37,
         "last_seen": ago(hours=20), "sparkline": [5, 6, 4, 7, 5, 6, 4], "samples": []},
    ]
    billing = demo_billing(now)
    playlists = [
        {"id": 1, "short_id": "pl1", "name": "Checkout errors", "deleted": False, "last_modified_at": ago(days=20)},
        {"id": 2, "short_id": "pl2", "name": "New signups", "deleted": False, "last_modified_at": ago(days=64)},
    ]

    def flag(i: int, key: str, updated_days: int, groups: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": 300 + i, "key": key, "name": extra.pop("description", ""), "active": True, "deleted": False,
                "filters": {"groups": groups, "multivariate": extra.pop("multivariate", None), "payloads": {}},
                "created_at": ago(days=updated_days + 30), "updated_at": ago(days=updated_days),
                "is_simple_flag": False, "rollout_percentage": None, "ensure_experience_continuity": False,
                "status": "ACTIVE", "last_called_at": extra.pop("last_called_at", None), **extra}

    flags = [
        flag(1, "new-file-browser", 10, [{"properties": [{"key": "plan", "type": "person", "value": ["pro"],
                                                          "operator": "exact"}], "rollout_percentage": 50}],
             description="Redesigned file browser", last_called_at=ago(minutes=3)),
        flag(2, "bulk-upload", 120, [{"properties": [], "rollout_percentage": 100}],
             multivariate={"variants": [{"key": "control", "rollout_percentage": 50},
                                        {"key": "test", "rollout_percentage": 50}]},
             description="Bulk upload experiment", last_called_at=ago(minutes=9)),
        flag(3, "storage-quota-v2", 75, [{"properties": [], "rollout_percentage": 100}],
             description="New storage quota logic", last_called_at=ago(minutes=1)),
        flag(4, "dark-mode", 200, [{"properties": [], "rollout_percentage": None}], description="Dark mode"),
        flag(5, "legacy-export", 160, [{"properties": [{"key": "id", "type": "cohort", "value": 3}],
                                        "rollout_percentage": 100}], description="Old CSV export for beta testers"),
    ]
    experiments = [
        {"id": 1, "name": "Bulk upload CTA", "feature_flag_key": "bulk-upload", "start_date": ago(days=120),
         "end_date": None, "archived": False, "deleted": False, "created_at": ago(days=125), "type": "product"},
        {"id": 2, "name": "Pricing page copy", "feature_flag_key": "pricing-copy", "start_date": ago(days=210),
         "end_date": ago(days=180), "archived": False, "deleted": False, "created_at": ago(days=215),
         "type": "web", "conclusion": "won"},
    ]
    # Data warehouse: a Stripe source shaped like PostHog's own fixture; Charge is large and re-synced in full
    # every 6 hours (an incremental field exists), Invoice fails, Customer is fine.
    def schema(i: int, name: str, status: str | None, sync_type: str | None, frequency: str, rows: int | None,
               synced_hours: float | None, error: str | None = None, columns: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"id": f"0191b5c1-5c00-0000-0000-00000000000{i}", "name": name, "should_sync": status is not None,
                "status": status, "sync_type": sync_type, "incremental": sync_type == "incremental",
                "incremental_field": "created" if sync_type == "incremental" else None,
                "incremental_field_type": "integer" if sync_type == "incremental" else None,
                "sync_frequency": frequency, "sync_time_of_day": None, "latest_error": error,
                "last_synced_at": ago(hours=synced_hours) if synced_hours is not None else None,
                "table": None if rows is None else {
                    "id": f"tbl-{i}", "name": f"stripe_{name.lower()}", "row_count": rows,
                    "columns": [{"key": c, "name": c, "type": "integer" if c in ("created", "amount") else "string",
                                 "schema_valid": True} for c in ("id", *columns)]}}

    source: dict[str, Any] = {
        "id": "0191b5c1-5b00-0000-0000-0000000000aa", "created_at": ago(days=300), "created_by": "ben@hedgebox.net",
        "status": "Failed", "source_type": "Stripe", "latest_error": None, "prefix": "prod_",
        "last_run_at": ago(hours=2), "job_inputs": {"stripe_account_id": "acct_demo"},
        "schemas": [
            schema(1, "Charge", "Completed", "full_refresh", "6hour", 4_800_000, 3, columns=("amount", "created")),
            schema(2, "Customer", "Completed", "incremental", "24hour", 61_000, 10, columns=("email", "created")),
            schema(3, "Invoice", "Error", "full_refresh", "24hour", 240_000, 170,
                   error="Stripe API key is missing the permission rak_invoice_read", columns=("created",)),
            schema(4, "Account", None, None, "6hour", None, None),
        ],
    }
    warehouse_jobs = [
        {"id": f"job-{i}", "created_at": ago(hours=6 * i + 1), "finished_at": ago(hours=6 * i),
         "status": "Completed", "schema": source["schemas"][0]["id"], "rows_synced": 4_790_000 + i * 1_000,
         "latest_error": None} for i in range(4)
    ] + [{"id": "job-c", "created_at": ago(hours=11), "finished_at": ago(hours=10), "status": "Completed",
          "schema": source["schemas"][1]["id"], "rows_synced": 310, "latest_error": None}]
    saved_queries = [{"id": "sq-1", "name": "mrr_by_plan", "deleted": False, "query": {"kind": "HogQLQuery"},
                      "created_at": ago(days=90), "status": "Completed", "is_materialized": False}]
    view_links: list[dict[str, Any]] = []
    # Error tracking: web exceptions, minified (a symbol set referenced, none uploaded), issues left unassigned.
    symbol_sets = [{"id": f"ss-{i}", "ref": f"https://app.hedgebox.net/static/js/main.{h}.js",
                    "created_at": ago(days=3 * i), "last_used": ago(hours=i), "storage_ptr": None,
                    "failure_reason": None} for i, h in enumerate(("a81f3c", "77b0d2", "c19e54"))]
    error_issues = [{"id": f"0191b5c1-e000-0000-0000-{i:012d}", "status": "resolved" if i < 2 else "active",
                     "name": f"TypeError: Cannot read properties of undefined (reading 'id{i}')",
                     "assignee": {"type": "user", "id": 2} if i == 2 else None,
                     "first_seen": ago(days=40 - i)} for i in range(24)]
    surveys = [
        {"id": "0191c0de-5001-0000-0000-000000000001", "name": "NPS (in-app)", "type": "popover",
         "schedule": "once", "archived": False, "start_date": ago(days=28), "end_date": None,
         "created_at": ago(days=30), "questions": [{"type": "rating", "question": "How likely are you to "
                                                    "recommend Hedgebox?", "scale": 10}]},
        {"id": "0191c0de-5001-0000-0000-000000000002", "name": "Churn reasons", "type": "popover",
         "schedule": "once", "archived": False, "start_date": None, "end_date": None, "created_at": ago(days=5),
         "questions": [{"type": "open", "question": "Why are you leaving?"}]},
    ]
    return Scenario(
        project_id=DEMO_PROJECT_ID, project=project, organization=organization, members=members,
        now=now, property_types=dict(DEMO_PROPERTY_TYPES),
        lists={"actions/": actions, "dashboards/": dashboards, "insights/": insights,
               "property_definitions/": person_properties, "cohorts/": cohorts,
               "session_recording_playlists/": playlists, "feature_flags/": flags, "experiments/": experiments,
               "external_data_sources/": [source], "warehouse_saved_queries/": saved_queries,
               "warehouse_view_links/": view_links, "error_tracking/symbol_sets/": symbol_sets,
               "error_tracking/issues/": error_issues, "surveys/": surveys},
        plain={"groups_types/": groups, "sdk_health/report/": sdk_health, "ingestion_warnings_v2/": warnings,
               "/api/billing/": billing, f"external_data_sources/{source['id']}/jobs/": warehouse_jobs},
    )


# ---- the demo's billing: GET /api/billing/ as PostHog's billing service answers it --------------------------------
#
# Shapes from frontend/src/types.ts (BillingType, BillingProductV2Type, BillingTierType) and the fixtures
# frontend/src/mocks/fixtures/_billing.tsx and _billing_v2.json: money as decimal strings, usage as numbers, `up_to`
# the cumulative top of a tier (null: the last), each tier's current/projected usage and amount filled in.
# Rates are PostHog's published list prices of 2024-25 (posthog.com billing-products fixture) where known; the
# demo organization is billed for more than the demo project's sampled events (as a real organization with more
# traffic would be). Amounts are worked out from the tiers, so they always agree with them.

DEMO_TIERS: dict[str, list[tuple[int | None, str]]] = {
    "product_analytics": [(1_000_000, "0"), (2_000_000, "0.00005"), (15_000_000, "0.0000343"),
                          (50_000_000, "0.0000295"), (100_000_000, "0.0000218"), (250_000_000, "0.000015"),
                          (None, "0.000009")],
    "enhanced_persons": [(1_000_000, "0"), (2_000_000, "0.000198"), (15_000_000, "0.0000697"),
                         (50_000_000, "0.000036"), (100_000_000, "0.0000146"), (250_000_000, "0.0000037"),
                         (None, "0.000001")],
    "group_analytics": [(1_000_000, "0"), (2_000_000, "0.000071"), (15_000_000, "0.00003"),
                        (50_000_000, "0.0000212"), (100_000_000, "0.0000141"), (250_000_000, "0.0000071"),
                        (None, "0.0000035")],
    "session_replay": [(5_000, "0"), (15_000, "0.005"), (50_000, "0.0035"), (150_000, "0.003"),
                       (500_000, "0.002"), (None, "0.0015")],
    "feature_flags": [(1_000_000, "0"), (2_000_000, "0.0001"), (10_000_000, "0.000045"), (50_000_000, "0.000025"),
                      (None, "0.00001")],
}


def _tiers(rates: list[tuple[int | None, str]], current: int, projected: int) -> tuple[list[dict[str, Any]], str, str]:
    """Graduated tiers with each tier's share of the current and projected usage, and the two amounts."""
    tiers, totals, low = [], [Decimal(0), Decimal(0)], 0
    for up_to, rate in rates:
        width = (up_to - low) if up_to is not None else None
        used = [max(0, min(u - low, width) if width is not None else u - low) for u in (current, projected)]
        amounts = [Decimal(rate) * n for n in used]
        totals = [t + a for t, a in zip(totals, amounts, strict=True)]
        tiers.append({"flat_amount_usd": "0", "unit_amount_usd": rate, "up_to": up_to,
                      "current_amount_usd": f"{amounts[0]:.2f}", "current_usage": used[0],
                      "projected_usage": used[1], "projected_amount_usd": f"{amounts[1]:.2f}"})
        low = up_to if up_to is not None else low
    return tiers, f"{totals[0]:.2f}", f"{totals[1]:.2f}"


def _product(kind: str, name: str, usage_key: str | None, unit: str, current: int, projected: int,
             **extra: Any) -> dict[str, Any]:
    tiers, current_usd, projected_usd = _tiers(DEMO_TIERS[kind], current, projected)
    return {"type": kind, "name": name, "usage_key": usage_key, "unit": unit, "subscribed": True, "tiered": True,
            "tiers": tiers, "free_allocation": 0, "unit_amount_usd": None, "current_usage": current,
            "projected_usage": projected, "current_amount_usd": current_usd, "projected_amount_usd": projected_usd,
            "usage_limit": None, "has_exceeded_limit": False, **extra}


def _free(kind: str, name: str, usage_key: str, unit: str, free: int, current: int) -> dict[str, Any]:
    """A product on the free plan (`tiers: null`, usage capped at the free allocation)."""
    return {"type": kind, "name": name, "usage_key": usage_key, "unit": unit, "subscribed": False, "tiered": False,
            "tiers": None, "free_allocation": free, "unit_amount_usd": None, "current_usage": current,
            "projected_usage": current, "current_amount_usd": None, "projected_amount_usd": None, "addons": []}


def demo_billing(now: datetime) -> dict[str, Any]:
    """Day 12 of a 30-day period: usage so far, and billing's projection for the whole period."""
    def ago(**kw: float) -> str:
        return _iso(now - timedelta(**kw))

    persons = _product("enhanced_persons", "Person profiles", "enhanced_persons_events", "event", 2_120_000,
                       5_300_000, inclusion_only=True, subscribed=False, included_with_main_product=True)
    groups = _product("group_analytics", "Group analytics", None, "event", 4_200_000, 10_500_000)
    analytics = _product("product_analytics", "Product analytics", "events", "event", 4_200_000, 10_500_000,
                         addons=[persons, groups])
    products = [
        analytics,
        _product("session_replay", "Session replay", "recordings", "recording", 24_800, 62_000, addons=[]),
        _product("feature_flags", "Feature flags", "feature_flag_requests", "request", 2_000_000, 5_000_000,
                 addons=[]),
        _free("surveys", "Surveys", "survey_responses", "survey response", 250, 60),
        _free("data_warehouse", "Data warehouse", "rows_synced", "row", 1_000_000, 1_000_000),
        _free("error_tracking", "Error tracking", "exceptions", "exception", 100_000, 520),
    ]
    charged = [p for p in products if p["subscribed"]] + [persons, groups]

    def total(field: str) -> str:
        return f"{sum(Decimal(p[field]) for p in charged):.2f}"

    return {
        "customer_id": "cus_DemoHedgebox", "has_active_subscription": True, "deactivated": False,
        "subscription_level": "paid", "billing_plan": "paid",
        "billing_period": {"current_period_start": ago(days=12), "current_period_end": _iso(now + timedelta(days=18)),
                           "interval": "month"},
        "current_total_amount_usd": total("current_amount_usd"),
        "projected_total_amount_usd": total("projected_amount_usd"),
        "products": products,
    }


# ---- the demo's HogQL answers ------------------------------------------------------------------

DEMO_ANSWERS = Path(__file__).with_name("answers.json")
# The demo project's typed property definitions (PostHog types a property Boolean when it first sees a JSON boolean).
DEMO_PROPERTY_TYPES = {"$is_identified": "Boolean", "$process_person_profile": "Boolean",
                       "locally_evaluated": "Boolean", "$feature_flag_response": "Boolean"}


def query_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def demo_answers() -> dict[str, Any]:
    return dict(json.loads(DEMO_ANSWERS.read_text(encoding="utf-8")))


def precomputed_answer(scenario: Scenario, text: str) -> dict[str, Any]:
    """The demo's answer to one of the audit's queries, computed from its raw events by running the query on
    ClickHouse (`python -m tests.demo_answers`) and moved to the scenario's clock. Any other query, or a project
    whose rows are not the demo's own, gets no answer: nothing here guesses."""
    stored = demo_answers()
    body = stored["answers"].get(query_key(text))
    if scenario.events is not None or scenario.property_types != stored["property_types"] \
            or scenario.project.get("timezone") != stored["timezone"]:
        raise QueryRefused("the demo has precomputed answers for the demo project only")
    if body is None:
        raise QueryRefused("the demo has no precomputed answer for this query (run: python -m tests.demo_answers)")
    return moved_to(copy.deepcopy(body), datetime.fromisoformat(stored["clock"]), scenario.now, stored["timezone"])


def moved_to(body: dict[str, Any], clock: datetime, now: datetime, timezone: str) -> dict[str, Any]:
    """An answer computed at `clock` as if asked at `now`: DateTimes move by the difference, dates by whole days
    in the project's timezone (a DateTime keeps PostHog's form: its timezone's offset, `Z` for UTC)."""
    tz = ZoneInfo(timezone)
    days = (now.astimezone(tz).date() - clock.astimezone(tz).date()).days
    kinds = [str(t[1]) if isinstance(t, list | tuple) and len(t) == 2 else "" for t in body.get("types") or []]
    for row in body.get("results") or []:
        for i, kind in enumerate(kinds):
            value = row[i]
            if not isinstance(value, str):
                continue
            if "DateTime" in kind:
                moment = (datetime.fromisoformat(value) + (now - clock)).astimezone(tz)
                text = moment.isoformat()
                row[i] = text[:-6] + "Z" if text.endswith("+00:00") else text
            elif "Date" in kind:
                row[i] = (date.fromisoformat(value) + timedelta(days=days)).isoformat()
    return body
