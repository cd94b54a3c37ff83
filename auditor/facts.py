"""Named gatherers -> Facts. Each fact is gathered once, concurrently; a failure is kept as a value.

A fact is `ok` (with its value), `unavailable` (this PostHog version or key cannot serve it: a check may
skip or say so) or `error` (it should have been readable and was not: the checks needing it are `error`).
"""

from __future__ import annotations

import contextvars
import itertools
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from auditor import queries
from auditor.clients.posthog_api import LARGEST_PAGE, ApiError, Once, PostHogClient, kind_of, shown, unexpected

FACTS_FORMAT = "posthog-auditor-facts/3"  # 2: `insights` is {count, items, complete}; 3: the last event in `identity`
# Lists ask for big pages; a server that caps `limit` says so in its `next` links and the client follows them.
PAGE = LARGEST_PAGE
# Person properties: the first custom names settle the judgement (and fill the capped evidence table), so they
# are read in pages near that size rather than 1,000 at a time.
PERSON_PROPERTIES_WANTED = 50
PERSON_PROPERTIES_PAGE = 100
# Insights: the most recently viewed page and the list's count (see _insights).
INSIGHTS_PAGE = 100
# Facts that do not come from the PostHog API: set by the engine (scope) or from other sources (files, Vitally).
LOCAL_FACTS = frozenset({"scope", "attestations", "vitally"})


@dataclass
class Fact:
    status: str  # ok | error | unavailable
    value: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "value": self.value, "error": self.error}


class Unavailable(Exception):
    """A gatherer's way to say its fact cannot be trusted for this audit (it becomes `unavailable`, with why)."""


class FactNotAvailable(Exception):
    """Raised by Facts.require when a check reads a fact that could not be gathered."""

    def __init__(self, name: str, fact: Fact | None):
        reason = fact.error if fact and fact.error else "not gathered"
        super().__init__(f"fact '{name}' {'is unavailable' if fact and fact.status == 'unavailable' else 'failed'}: "
                         f"{reason}")
        self.name = name
        self.fact = fact


class UndeclaredFact(Exception):
    """A check read a fact it does not declare (in `requires` or `uses`): a bug in the check, never a verdict."""


@dataclass
class Facts:
    values: dict[str, Fact]
    as_of: datetime
    target: dict[str, Any] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)
    declared: frozenset[str] | None = None  # a check's view: only these may be read (None: everything)

    def only(self, names: Iterable[str]) -> Facts:
        """What one check may read: the facts it declares, nothing else (the same values and shared memo)."""
        return Facts(self.values, self.as_of, self.target, self._memo, frozenset(names))

    def _check(self, name: str) -> None:
        if self.declared is not None and name not in self.declared:
            raise UndeclaredFact(f"the check read fact '{name}' without declaring it in requires or uses")

    def status(self, name: str) -> str:
        self._check(name)
        fact = self.values.get(name)
        return fact.status if fact else "missing"

    def ok(self, name: str) -> bool:
        return self.status(name) == "ok"

    def require(self, name: str) -> Any:
        self._check(name)
        fact = self.values.get(name)
        if fact is None or fact.status != "ok":
            raise FactNotAvailable(name, fact)
        return fact.value

    def get(self, name: str, default: Any = None) -> Any:
        return self.values[name].value if self.ok(name) else default

    def reason(self, name: str) -> str:
        self._check(name)
        fact = self.values.get(name)
        return (fact.error or fact.status) if fact else "not gathered"

    def memo(self, key: str, build: Callable[[], Any]) -> Any:
        """Derived data shared by several checks (e.g. the cube as a polars frame), built once per run."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FACTS_FORMAT,
            "as_of": self.as_of.isoformat(),
            "target": self.target,
            "facts": {name: fact.to_dict() for name, fact in sorted(self.values.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> Facts:
        found = data.get("format") if isinstance(data, dict) else None
        if isinstance(found, str) and found.startswith("posthog-auditor-facts/") and found != FACTS_FORMAT:
            raise ValueError(f"the facts file is format {shown(found)}, from another version of "
                             f"posthog-auditor (this one reads {FACTS_FORMAT!r}): gather the facts again")
        if found != FACTS_FORMAT:
            raise ValueError(f"not a facts file (expected format {FACTS_FORMAT!r})")
        try:
            values = {
                name: Fact(status=f["status"], value=f.get("value"), error=f.get("error"))
                for name, f in data["facts"].items()
            }
            as_of = datetime.fromisoformat(data["as_of"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the facts file is malformed ({exc})") from None
        return cls(values=values, as_of=as_of, target=dict(data.get("target") or {}))


@dataclass
class GatherContext:
    client: PostHogClient
    project_id: str
    project: dict[str, Any]
    scopes: frozenset[str] | None  # None: the key's scopes could not be read, so do not pre-judge
    wanted: frozenset[str] = frozenset()  # the facts this audit gathers
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def shared(self, key: str, fetch: Callable[[], Any]) -> Any:
        """One request for data two gatherers need (e.g. the warehouse sources and their jobs)."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = Once(fetch)
            once = self._shared[key]
        return once.get()

    @property
    def organization_id(self) -> str:
        org = self.project.get("organization")
        if isinstance(org, dict):
            org = org.get("id")
        if not org:
            raise ApiError("bad_response", "the project payload names no organization")
        return str(org)


@dataclass(frozen=True)
class Gatherer:
    name: str
    scope: str  # the personal API key scope PostHog requires for it (checked before any request)
    fn: Callable[[GatherContext], Any]
    description: str
    also: tuple[str, ...] = ()  # scopes it reads with when the key has them (a fallback covers their absence)


GATHERERS: dict[str, Gatherer] = {}


def gatherer(name: str, scope: str, description: str,
             also: tuple[str, ...] = ()) -> Callable[[Callable[[GatherContext], Any]], Any]:
    def wrap(fn: Callable[[GatherContext], Any]) -> Callable[[GatherContext], Any]:
        GATHERERS[name] = Gatherer(name=name, scope=scope, fn=fn, description=description, also=also)
        return fn

    return wrap


def has_scope(scopes: frozenset[str] | None, needed: str) -> bool:
    if scopes is None or not scopes or "*" in scopes:  # a legacy key without scopes may read everything
        return True
    obj = needed.split(":", 1)[0]
    return needed in scopes or f"{obj}:write" in scopes


def _query_fact(columns: list[str], rows: list[list[Any]], truncated: bool, limit: int | None,
                window_days: int, ran_as: str) -> dict[str, Any]:
    return {"columns": columns, "rows": rows, "truncated": truncated, "limit": limit, "window_days": window_days,
            "query": ran_as}


SHORT_WINDOW_DAYS = queries.SHORT_WINDOW_DAYS
# The HogQL facts: their query alone and its window. One combined query serves all three.
HOGQL_FACTS = queries.PART_QUERIES


def _hogql(ctx: GatherContext, name: str) -> dict[str, Any]:
    """One HogQL fact, from the audit's single combined query (see queries.combined_sql)."""
    outcome = ctx.shared("hogql", lambda: _run_hogql(ctx))[name]
    if isinstance(outcome, Exception):
        raise outcome
    return dict(outcome)


def combined_query() -> tuple[str, str, int]:
    """The one HogQL query of an audit: its text, its name and its row limit (a batch sends it ahead, too)."""
    return queries.combined_sql(), "posthog-auditor", queries.ROW_LIMIT


def sends_hogql(wanted: Iterable[str], scopes: frozenset[str] | None) -> bool:
    """Whether an audit that wants these facts, with a key of these scopes, sends the combined query."""
    return bool(set(wanted) & set(queries.PARTS)) and has_scope(scopes, GATHERERS["cube"].scope)


def _run_hogql(ctx: GatherContext) -> dict[str, Any]:
    """Every HogQL fact from one query (PostHog allows about 120 an hour per key). Only when PostHog stops it for
    time, or refuses it, does each wanted part run on its own, so one part's trouble cannot take the others down
    and each can fall back to a shorter window. Returns {fact: value or the exception it ended in}."""
    text, name, limit = combined_query()
    try:
        result = ctx.client.query(ctx.project_id, text, name=name, limit=limit)
    except ApiError as exc:
        if exc.kind in ("auth", "network", "rate_limited") or (exc.kind != "client" and not exc.timed_out):
            raise
        why = "timed out" if exc.timed_out else f"was refused ({exc})"
    else:
        try:
            parts = queries.split_combined(result.columns, result.rows)
        except ValueError as exc:
            raise unexpected(f"/api/projects/{ctx.project_id}/query/", str(exc)) from None
        # The cube's rows come last, so a full answer cut short only the cube (or, if they alone filled it, the
        # identity rows).
        cut = {"cube": result.truncated, "identity": result.truncated and not parts["cube"][1], "replay": False}
        return {name: _query_fact(*parts[name], cut[name], result.limit, HOGQL_FACTS[name][1], "one query for cube, "
                                  "identity and replay") for name in queries.PARTS}
    wanted = [name for name in queries.PARTS if name in ctx.wanted]

    def alone(name: str) -> Any:
        try:
            return _alone(ctx, name, f"on its own: the combined query {why}")
        except ApiError as exc:
            return exc

    return dict(zip(wanted, ctx.client.map(alone, wanted), strict=True))


def _alone(ctx: GatherContext, name: str, ran_as: str) -> dict[str, Any]:
    """One HogQL fact on its own query; if PostHog stops it for running too long, once more over a shorter window
    (the fact says so, and so does the evidence of every check built on it)."""
    build, window_days = HOGQL_FACTS[name]
    label = f"posthog-auditor {name}"
    try:
        result = ctx.client.query(ctx.project_id, build(window_days), name=label, limit=queries.ROW_LIMIT)
        return _query_fact(result.columns, result.rows, result.truncated, result.limit, window_days, ran_as)
    except ApiError as exc:
        if not exc.timed_out or window_days <= SHORT_WINDOW_DAYS:
            raise
    result = ctx.client.query(ctx.project_id, build(SHORT_WINDOW_DAYS), name=label, limit=queries.ROW_LIMIT)
    return _query_fact(result.columns, result.rows, result.truncated, result.limit, SHORT_WINDOW_DAYS,
                       f"{ran_as}; over {SHORT_WINDOW_DAYS} days, as the full window timed out")


# ---- the shapes the checks rely on ----------------------------------------------------------------

Fields = dict[str, type | tuple[type, ...]]
NONE = type(None)  # among a field's types: the field may be null or absent
ANY_ID: Fields = {"id": (int, str)}  # every PostHog object has an id: an item without one is not what was asked
# Project fields the checks read, with the serializer's types (posthog/api/team.py, posthog/api/project.py).
PROJECT_FIELDS: Fields = {
    "id": int, "organization": (str, dict), "name": (str, NONE), "app_urls": (list, NONE),
    "recording_domains": (list, NONE), "session_recording_opt_in": (bool, NONE), "autocapture_opt_out": (bool, NONE),
    "autocapture_exceptions_opt_in": (bool, NONE), "session_recording_minimum_duration_milliseconds": (int, NONE),
}


def expect(value: Any, path: str, shape: type, fields: Fields | None = None, *, nonempty: bool = False) -> Any:
    """Fail closed on a 200 of the wrong shape: `value` must be what the checks rely on — an object (shape dict),
    or a list of objects (shape list: a bare list, or a page whose `results` is one) — whose `fields` have the
    given types. Anything else raises, so the fact is `error` ("unexpected answer from <path>: …"): an empty or
    odd answer read as "nothing there" could pass a check. Returns the object or the list."""
    if shape is list and isinstance(value, dict) and "results" in value:
        value = value["results"]
        if not isinstance(value, list):
            raise unexpected(path, f"`results` is {kind_of(value)}, not a list")
    if not isinstance(value, shape):
        raise unexpected(path, f"expected {'a list of objects' if shape is list else 'an object'}, "
                         f"got {kind_of(value)}")
    items: list[Any] = value if isinstance(value, list) else [value]
    if nonempty and not items:
        raise unexpected(path, "an empty list, where there is always at least one item")
    # Each field's types, and whether a bool may stand for them (True is an int to isinstance), worked out once:
    # a page of thousands of objects is checked item by item.
    wanted = [(name, types if isinstance(types, tuple) else (types,)) for name, types in (fields or {}).items()]
    rules = [(name, types, bool in types) for name, types in wanted]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise unexpected(path, f"item {i} is {kind_of(item)}, not an object")
        for name, types, bool_allowed in rules:
            field_value = item.get(name)
            if not isinstance(field_value, types) or (field_value.__class__ is bool and not bool_allowed):
                found = "missing" if name not in item else kind_of(field_value)
                raise unexpected(path, f"{f'item {i}: ' if shape is list else ''}`{name}` is {found}")
    return value


# ---- the gatherers -----------------------------------------------------------------------------

@gatherer("project", "project:read", "project settings")
def _project(ctx: GatherContext) -> Any:
    return ctx.project


def _organization_of(ctx: GatherContext) -> Any:
    """The organization, asked once per account however many of its projects are audited (the billing gatherer
    reads its customer id too)."""
    path = f"/api/organizations/{ctx.organization_id}/"
    return ctx.client.once(path, lambda: expect(ctx.client.get(path), path, dict, {"id": str, "name": str}))


@gatherer("organization", "organization:read", "organization")
def _organization(ctx: GatherContext) -> Any:
    return _organization_of(ctx)


@gatherer("members", "organization_member:read", "organization members")
def _members(ctx: GatherContext) -> Any:
    path = f"/api/organizations/{ctx.organization_id}/members/"
    # Never empty: the key's own user is a member (posthog/api/organization_member.py lists active users only,
    # and the key's user is one). Level: OrganizationMembership.Level (1, 8, 15). Asked once per account.
    return ctx.client.once(path, lambda: expect(ctx.client.get_list(path, {"limit": PAGE}), path, list,
                                                {"level": int, "user": dict}, nonempty=True))


@gatherer("cube", "query:read", "30-day event aggregate (HogQL)")
def _cube(ctx: GatherContext) -> Any:
    return _hogql(ctx, "cube")


@gatherer("identity", "query:read", "identity and flag-call aggregate (HogQL)")
def _identity(ctx: GatherContext) -> Any:
    return _hogql(ctx, "identity")


@gatherer("sdk_health", "project:read", "PostHog's SDK health report")
def _sdk_health(ctx: GatherContext) -> Any:
    path = f"/api/projects/{ctx.project_id}/sdk_health/report/"
    report = expect(ctx.client.get(path), path, dict, {"sdks": list})  # posthog/api/sdk_health.py
    expect(report["sdks"], f"{path} (sdks)", list)
    return report


@gatherer("ingestion_warnings", "ingestion_warning:read", "ingestion warnings, last 7 days")
def _ingestion_warnings(ctx: GatherContext) -> Any:
    path = f"/api/projects/{ctx.project_id}/ingestion_warnings_v2/"
    body = ctx.client.get_list(path, {"since": "-7d", "limit": 500, "samples": 20})
    # A plain list (posthog/api/ingestion_warnings_v2.py), or pages: `{}` is not "no warnings".
    return expect(body, path, list, {"type": str, "count": int})


@gatherer("groups", "group:read", "group types")
def _groups(ctx: GatherContext) -> Any:
    # A plain array, not paginated (ee/clickhouse/views/groups.py).
    return expect(ctx.client.project_list(ctx.project_id, "groups_types/"), f"/api/projects/{ctx.project_id}/"
                  "groups_types/", list, {"group_type_index": int, "group_type": str})


@gatherer("billing", "billing:read", "billing, when it is shown to be the audited organization's",
          also=("user:read",))
def _billing(ctx: GatherContext) -> Any:
    # ee/billing/billing_manager.py get_billing: every answer carries `products`, the list the checks read.
    # Billing answers for the key's user, not the project: one request per key, even in a batch of accounts.
    body = ctx.client.get_for_key("/api/billing/", lambda b: expect(b, "/api/billing/", dict, {"products": list}))
    _billing_belongs_to_audited_organization(ctx, body)
    return body


def _billing_belongs_to_audited_organization(ctx: GatherContext, billing: Any) -> None:
    """`GET /api/billing/` answers for the organization of the key user's *current* team, not for the audited
    project (ee/api/billing.py, param_derived_from_user_current_team), and names no organization. Trust it only
    when the user's current organization (GET /api/users/@me/) is the audited one, or when billing's customer id
    is the audited organization's; otherwise another customer's products would be blamed on this one."""
    audited = ctx.organization_id
    current, why = None, ""
    if not has_scope(ctx.scopes, "user:read"):
        why = " (the key lacks user:read, so its user's current organization is unknown)"
    else:
        try:
            me = ctx.client.get_for_key("/api/users/@me/")
            org = me.get("organization") if isinstance(me, dict) else None
            current = str(org.get("id")) if isinstance(org, dict) and org.get("id") else None
        except ApiError as exc:
            if exc.kind in ("auth", "network"):
                raise
            why = f" (the key's user could not be read: {exc})"
    if current == audited:
        return
    customer = billing.get("customer_id") if isinstance(billing, dict) else None
    try:
        own = _organization_of(ctx)
    except ApiError:
        own = None
    if customer and isinstance(own, dict) and own.get("customer_id") == customer:
        return
    whose = f"organization {current}" if current else "the key user's current organization"
    raise Unavailable(f"billing answers for {whose}, which is not shown to be the audited organization {audited}"
                      f"{why}; make it the user's current organization in PostHog, or use --paying-for")


@gatherer("person_properties", "property_definition:read", "person property definitions (the first custom ones)")
def _person_properties(ctx: GatherContext) -> Any:
    def enough(items: list[Any]) -> bool:
        custom = [i for i in items if isinstance(i, dict) and not str(i.get("name", "$")).startswith("$")]
        return len(custom) >= PERSON_PROPERTIES_WANTED

    params = {"type": "person", "limit": PERSON_PROPERTIES_PAGE}
    return expect(ctx.client.project_list(ctx.project_id, "property_definitions/", params, enough=enough),
                  f"/api/projects/{ctx.project_id}/property_definitions/", list, {"name": str})


@gatherer("insights", "insight:read", "saved insights: how many, and the most recently viewed")
def _insights(ctx: GatherContext) -> Any:
    """What dashboards-in-use judges (how many saved insights, and when one was last opened) needs one page, not
    every insight: the list ordered by last view, nulls last, and its `count`. The list's `last_viewed_at` is the
    latest view by anyone in the team; `order=-last_viewed_at` sorts on it; basic=true leaves results out
    (products/product_analytics/backend/api/insight.py: order_queryset, InsightBasicSerializer). A project of
    80,000 insights was 80 pages against PostHog's 1,200/hour insights throttle. A PostHog that cannot sort on
    the view time (older ones answer 500) or did not is read in full, as before."""
    path = f"/api/projects/{ctx.project_id}/insights/"
    params = {"saved": "true", "basic": "true", "limit": INSIGHTS_PAGE}
    try:
        items, count = ctx.client.project_page(ctx.project_id, "insights/", {**params, "order": "-last_viewed_at"})
        expect(items, path, list, ANY_ID)
        if count is not None and (count <= len(items) or most_recently_viewed_first(items)):
            return {"count": count, "items": items, "complete": count <= len(items)}
    except ApiError as exc:
        if exc.kind not in ("server", "client"):
            raise
    everything: list[Any] = expect(ctx.client.project_list(ctx.project_id, "insights/", {**params, "limit": PAGE}),
                                   path, list, ANY_ID)
    return {"count": len(everything), "items": everything, "complete": True}


def most_recently_viewed_first(items: list[dict[str, Any]]) -> bool:
    """Whether a page is sorted as asked: every item says when it was last viewed (null: never), latest first,
    the never-viewed last, and at least one was viewed (a page of nulls could be a server's nulls-first order).
    Anything else (a field missing, a time that does not parse) is not to be trusted."""
    times: list[datetime | None] = []
    for item in items:
        if "last_viewed_at" not in item:
            return False
        value = item["last_viewed_at"]
        try:
            times.append(None if value is None else datetime.fromisoformat(value))
        except (TypeError, ValueError):
            return False
    viewed = [t for t in times if t is not None]
    if not viewed:  # all never viewed, or a PostHog that sorts them first (Postgres's DESC puts NULLs first)
        return False
    try:
        return times[:len(viewed)] == viewed and all(a >= b for a, b in itertools.pairwise(viewed))
    except TypeError:  # a time without an offset beside one with
        return False


@gatherer("replay", "query:read", "recordings per day, last 90 days (HogQL)")
def _replay(ctx: GatherContext) -> Any:
    return _hogql(ctx, "replay")


@gatherer("flags", "feature_flag:read", "feature flags")
def _flags(ctx: GatherContext) -> Any:
    # Listing flags with a personal key counts toward the customer's local-evaluation requests: once only.
    # `key` and `active` decide every flag check (posthog/api/feature_flag.py FeatureFlagSerializer).
    flags: list[Any] = expect(ctx.client.project_list(ctx.project_id, "feature_flags/", {"limit": PAGE}),
                              f"/api/projects/{ctx.project_id}/feature_flags/", list,
                              {**ANY_ID, "key": str, "active": bool})
    return flags


def _sources(ctx: GatherContext) -> list[Any]:
    sources: list[Any] = ctx.shared("warehouse_sources", lambda: expect(ctx.client.project_list(
        ctx.project_id, "external_data_sources/", {"limit": PAGE}),
        f"/api/projects/{ctx.project_id}/external_data_sources/", list, {**ANY_ID, "schemas": (list, NONE)}))
    return sources


@gatherer("warehouse_sources", "external_data_source:read", "data warehouse sources with their schemas")
def _warehouse_sources(ctx: GatherContext) -> Any:
    return _sources(ctx)


@gatherer("warehouse_schemas", "external_data_source:read",
          "warehouse schemas in full (sync frequency, incremental field, columns)")
def _warehouse_schemas(ctx: GatherContext) -> Any:
    """The source list trims its schemas (ExternalDataSchemaListSerializer: no sync_frequency, incremental_field
    or columns); the schema list has them in full but names no source, so checks join the two on schema id."""
    path = f"/api/projects/{ctx.project_id}/external_data_schemas/"
    try:
        return expect(ctx.client.project_list(ctx.project_id, "external_data_schemas/", {"limit": PAGE}), path, list,
                      {"id": str})
    except ApiError as exc:
        if not exc.unavailable:
            raise
    # Older PostHog keeps the schema list INTERNAL; each source's detail embeds its schemas in full.
    sources = [s for s in _sources(ctx) if isinstance(s, dict) and s.get("id")]

    def detail(source: dict[str, Any]) -> list[Any]:
        suffix = f"external_data_sources/{source['id']}/"
        body = expect(ctx.client.project_get(ctx.project_id, suffix), suffix, dict, {"schemas": list})
        schemas: list[Any] = expect(body["schemas"], suffix, list, {"id": str})
        return schemas

    return [schema for schemas in ctx.client.map(detail, sources) for schema in schemas]


@gatherer("warehouse_jobs", "external_data_source:read", "recent sync jobs per warehouse source")
def _warehouse_jobs(ctx: GatherContext) -> Any:
    sources = [s for s in _sources(ctx) if isinstance(s, dict) and s.get("id")]

    def jobs(source: dict[str, Any]) -> list[Any]:
        # Only the most recent page: enough for rows per sync; a source's full job history can be long.
        path = f"external_data_sources/{source['id']}/jobs/"
        return list(expect(ctx.client.project_get(ctx.project_id, path), f"/api/projects/{ctx.project_id}/{path}",
                           list, ANY_ID))

    return dict(zip([str(s["id"]) for s in sources], ctx.client.map(jobs, sources), strict=True))


@gatherer("saved_queries", "warehouse_view:read", "saved SQL views")
def _saved_queries(ctx: GatherContext) -> Any:
    return expect(ctx.client.project_list(ctx.project_id, "warehouse_saved_queries/"),
                  f"/api/projects/{ctx.project_id}/warehouse_saved_queries/", list, ANY_ID)


# Project lists read as they are: fact -> (scope, path under /api/projects/{id}/, what it is).
PROJECT_LISTS = {
    "actions": ("action:read", "actions/", "actions"),
    "dashboards": ("dashboard:read", "dashboards/", "dashboards"),
    "cohorts": ("cohort:read", "cohorts/", "cohorts"),
    "playlists": ("session_recording_playlist:read", "session_recording_playlists/", "saved recording playlists"),
    "experiments": ("experiment:read", "experiments/", "experiments"),
    "view_links": ("warehouse_view:read", "warehouse_view_links/", "warehouse joins (view links)"),
    "symbol_sets": ("error_tracking:read", "error_tracking/symbol_sets/", "uploaded source maps (symbol sets)"),
    "error_issues": ("error_tracking:read", "error_tracking/issues/", "error tracking issues"),
    "surveys": ("survey:read", "surveys/", "surveys"),
}


def _project_list(path: str) -> Callable[[GatherContext], Any]:
    return lambda ctx: expect(ctx.client.project_list(ctx.project_id, path, {"limit": PAGE}),
                              f"/api/projects/{ctx.project_id}/{path}", list, ANY_ID)


for _name, (_scope, _path, _description) in PROJECT_LISTS.items():
    gatherer(_name, _scope, _description)(_project_list(_path))


# ---- orchestration ---------------------------------------------------------------------------

def read_key_scopes(client: PostHogClient) -> frozenset[str] | None:
    """Learn the key's scopes up front so a missing scope costs no request. 401 and network errors propagate."""
    try:
        body = client.get_for_key("/api/personal_api_keys/@current/")
    except ApiError as exc:
        if exc.kind in ("auth", "network"):
            raise
        return None
    scopes = (body or {}).get("scopes") if isinstance(body, dict) else None
    return frozenset(scopes) if isinstance(scopes, list) else None


def fetch_project(client: PostHogClient, project_id: str) -> dict[str, Any]:
    path = f"/api/projects/{project_id}/"
    project: dict[str, Any] = expect(client.project_get(project_id, ""), path, dict, PROJECT_FIELDS)
    return project


def gather(
    client: PostHogClient,
    project_id: str,
    names: Iterable[str],
    *,
    scopes: frozenset[str] | None,
    project: dict[str, Any],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Facts:
    ctx = GatherContext(client=client, project_id=str(project_id), project=project, scopes=scopes,
                        wanted=frozenset(names))
    wanted = sorted((set(names) | {"project"}) - LOCAL_FACTS)
    unknown = [n for n in wanted if n not in GATHERERS]
    values: dict[str, Fact] = {n: Fact("error", error=f"no gatherer named '{n}'") for n in unknown}

    def run(name: str) -> tuple[str, Fact]:
        g = GATHERERS[name]
        if not has_scope(scopes, g.scope):
            return name, Fact("error", error=f"API key missing scope {g.scope}")
        try:
            return name, Fact("ok", value=g.fn(ctx))
        except ApiError as exc:
            return name, Fact("unavailable" if exc.unavailable else "error", error=str(exc))
        except Unavailable as exc:
            return name, Fact("unavailable", error=str(exc))
        except Exception as exc:  # a gatherer bug must not abort the audit
            return name, Fact("error", error=f"{type(exc).__name__}: {exc}")

    todo = [n for n in wanted if n in GATHERERS]
    as_of = now()
    context = contextvars.copy_context()  # every gatherer starts at the depth reached by pre-flight and project
    # Every fact is gathered side by side; the client bounds the requests in flight (1 = one at a time).
    workers = 1 if client.concurrency == 1 else max(1, len(todo))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gather") as pool:
        for name, fact in pool.map(lambda n: context.copy().run(run, n), todo):
            values[name] = fact
    return Facts(values=values, as_of=as_of, target=target_of(project, client.host, project_id, values))


def target_of(project: dict[str, Any], host: str, project_id: str, values: dict[str, Fact]) -> dict[str, Any]:
    org = values.get("organization")
    org_value = org.value if org and org.status == "ok" and isinstance(org.value, dict) else {}
    org_id = project.get("organization")
    if isinstance(org_id, dict):
        org_id = org_id.get("id")
    return {
        "host": host,
        "project_id": str(project.get("id", project_id)),
        "project_name": project.get("name"),
        "organization_id": str(org_id) if org_id else org_value.get("id"),
        "organization_name": org_value.get("name"),
    }


def load_facts(path: str) -> Facts:
    with open(path, encoding="utf-8") as fh:
        return Facts.from_json(json.load(fh))
