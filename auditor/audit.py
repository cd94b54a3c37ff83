"""One audit, end to end: facts -> checks -> scope -> scores -> the RunResult dict (the public contract)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auditor import __version__
from auditor.config import Settings
from auditor.facts import Facts, fetch_project, gather, read_key_scopes
from auditor.model import SCHEMA_VERSION, Check
from auditor.posthog_api import PostHogClient
from auditor.registry import Registry
from auditor.runner import needed_facts, plugin_failure_result, run_checks
from auditor.scoring import decide_scope, score_run


@dataclass
class ProductHooks:
    """Product knowledge the engine calls out to (provided by the `checks` package)."""

    scope_facts: tuple[str, ...]
    paid_from_billing: Callable[[Facts], list[str] | None]
    products_used: Callable[[Facts], dict[str, bool]]
    build_brief: Callable[[Facts, list[dict[str, Any]], dict[str, Any]], dict[str, Any]]


def default_hooks() -> ProductHooks:
    from checks import brief, scope

    return ProductHooks(scope.SCOPE_FACTS, scope.paid_from_billing, scope.products_used, brief.build_brief)


def gather_facts(client: PostHogClient, project_id: str, checks: list[Check], hooks: ProductHooks) -> Facts:
    scopes = read_key_scopes(client)
    project = fetch_project(client, project_id)
    return gather(client, project_id, needed_facts(checks) | set(hooks.scope_facts), scopes=scopes, project=project)


def evaluate(
    facts: Facts,
    registry: Registry,
    checks: list[Check],
    settings: Settings,
    *,
    hooks: ProductHooks | None = None,
    started_at: datetime | None = None,
    stats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    hooks = hooks or default_hooks()
    started_at = started_at or datetime.now(UTC)
    clock = time.perf_counter()
    results = run_checks(checks, facts, settings)
    results += [plugin_failure_result(f) for f in registry.failures]
    scope = decide_scope(hooks.paid_from_billing(facts), settings.paying_for, hooks.products_used(facts))
    categories, readiness = score_run(results, scope, settings.weights, settings.gate)
    result_dicts = [r.to_dict() for r in results]
    scope_dict = scope.to_dict()
    finished_at = datetime.now(UTC)
    run_stats = dict(stats or {})
    run_stats.setdefault("http_requests", 0)
    run_stats.setdefault("hogql_queries", 0)
    run_stats["wall_seconds"] = round(run_stats.get("wall_seconds", 0.0) + time.perf_counter() - clock, 3)
    target = dict(facts.target)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "run_id": f"{started_at:%Y%m%dT%H%M%SZ}-{target.get('project_id') or 'project'}-{secrets.token_hex(3)}",
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "facts_as_of": facts.as_of.isoformat(),
        "mode": "handover",
        "target": target,
        "scope": scope_dict,
        "facts": {
            name: {"status": f.status, "error": f.error} for name, f in sorted(facts.values.items())
        },
        "results": result_dicts,
        "categories": [c.to_dict() for c in categories],
        "readiness": readiness.to_dict(),
        "gate": dict(settings.gate),
        "brief": hooks.build_brief(facts, result_dicts, scope_dict),
        "stats": run_stats,
    }


def audit_project(
    client: PostHogClient,
    project_id: str,
    registry: Registry,
    checks: list[Check],
    settings: Settings,
    *,
    hooks: ProductHooks | None = None,
    save_facts: Callable[[Facts], None] | None = None,
) -> dict[str, Any]:
    hooks = hooks or default_hooks()
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    facts = gather_facts(client, project_id, checks, hooks)
    if save_facts:
        save_facts(facts)
    stats = {
        "http_requests": client.stats.http_requests,
        "hogql_queries": client.stats.hogql_queries,
        "retries": client.stats.retries,
        "wall_seconds": time.perf_counter() - clock,
    }
    return evaluate(facts, registry, checks, settings, hooks=hooks, started_at=started_at, stats=stats)
