"""The RunResult: the JSON an audit produces, and the only thing renderers, history, Vitally and telemetry read.
It is a public contract (`schema_version`), so its shape is written down here as types and pinned by a golden
file (tests/data/golden_demo_run.json). New keys may be added; existing ones keep their meaning."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Target(TypedDict):
    host: str | None
    project_id: str | None  # several projects: their ids joined with ","
    project_name: str | None
    organization_id: str | None
    organization_name: str | None
    projects: NotRequired[list[dict[str, str | None]]]  # an account of several projects


class ScopeResult(TypedDict):
    paid_products: list[str]
    source: str  # billing | vitally | flag | usage
    note: str
    used: dict[str, bool]  # product -> used in 30 days (left out: unknown)
    products: dict[str, str]  # every product one can pay for -> its title


class FactStatus(TypedDict):
    status: str  # ok | unavailable | error | missing
    error: str | None
    window_days: NotRequired[int]  # a HogQL fact: the days its query covered


class Evidence(TypedDict):
    metrics: dict[str, Any]
    table: dict[str, Any] | None  # {columns, rows (at most 50), total_rows}


class ImpactResult(TypedDict):
    """What a finding costs each month (model.Impact)."""

    units_per_month: float
    unit: str
    usd_per_month: float | None  # None: not priced (unpriced_reason says why)
    share_of_bill: float | None
    basis: str
    meter: str | None
    key: str | None  # what is wasted: two findings with the same key count once in a total
    unpriced_reason: str | None


class LinkResult(TypedDict):
    label: str
    url: str
    kind: str  # fix | query


class Savings(TypedDict):
    """The findings' monthly costs added up, each waste once (auditor/savings.py)."""

    usd_per_month: float | None
    share_of_bill: float | None
    findings: int
    priced: int
    unpriced: int
    unpriced_units: list[dict[str, Any]]  # [{unit, units_per_month}]
    unpriced_reasons: list[str]


class Result(TypedDict):
    id: str
    category: str
    severity: str  # blocker | major | minor | info
    status: str  # pass | warn | fail | error | skip | manual | info
    score: float | None
    title: str
    description: str
    summary: str
    evidence: Evidence
    remediation: str
    docs_url: str
    error: str | None
    impact: ImpactResult | None  # what it costs each month, when it wastes billed units
    links: list[LinkResult]  # where in the customer's PostHog it is fixed, and its query
    audience: str  # all | internal (left out of the customer's report)
    private_evidence: bool  # its evidence names people: the customer's report leaves it out
    project_id: NotRequired[str | None]  # in an account of several projects
    project_name: NotRequired[str]


class Category(TypedDict):
    id: str
    title: str
    in_scope: bool
    weight: float
    score: float | None  # None: unknown, or nothing to score
    state: str  # scored | unknown | not_applicable
    reason: str
    counts: dict[str, int]


class ReadinessResult(TypedDict):
    score: float | None
    ready: bool  # handover mode: ready for handover; health mode: healthy
    reasons: list[str]
    band: NotRequired[str]  # health mode: Healthy | Concerning | Poor | Unknown


class Stats(TypedDict, total=False):
    http_requests: int
    hogql_queries: int
    retries: int
    request_depth: int
    gather_seconds: float
    wall_seconds: float


class RunResult(TypedDict):
    schema_version: int
    tool_version: str
    run_id: str
    started_at: str
    finished_at: str
    facts_as_of: str
    mode: str  # handover | health
    target: Target
    scope: ScopeResult
    facts: dict[str, FactStatus]
    results: list[Result]
    categories: list[Category]
    readiness: ReadinessResult
    gate: dict[str, float]
    brief: dict[str, Any]  # the new owner's brief, as the checks package writes it
    savings: Savings
    stats: Stats
    selection: NotRequired[dict[str, Any]]  # --check/--category: which checks ran, of how many
    projects: NotRequired[list[RunResult]]  # an account of several projects: each one's own result
    error: NotRequired[str]  # a project that could not be audited at all
    account: NotRequired[str]  # a batch: the account's name
    changes: NotRequired[dict[str, Any] | None]  # with a history: what changed since the last audit
    trend: NotRequired[list[dict[str, Any]]]  # with a history: readiness over the recorded runs
    audience: NotRequired[str]  # "customer": the customer's report (auditor/outputs/audience.py); else the owner's
