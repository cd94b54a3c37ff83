"""One audit, end to end: facts -> checks -> scope -> scores -> the RunResult dict (the public contract)."""

from __future__ import annotations

import contextvars
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auditor import __version__
from auditor.config import Settings
from auditor.facts import ANY_ID, Fact, Facts, expect, fetch_project, gather, read_key_scopes
from auditor.model import SCHEMA_VERSION, Check
from auditor.posthog_api import ApiError, PostHogClient
from auditor.registry import Registry
from auditor.runner import needed_facts, plugin_failure_result, run_checks
from auditor.savings import total as savings_total
from auditor.scoring import decide_scope, read_failed, score_run


@dataclass
class ProductHooks:
    """Product knowledge the engine calls out to (provided by the `checks` package)."""

    scope_facts: tuple[str, ...]
    paid_from_billing: Callable[[Facts], list[str] | None]
    products_used: Callable[[Facts], dict[str, bool]]
    build_brief: Callable[[Facts, list[dict[str, Any]], dict[str, Any]], dict[str, Any]]
    recommend: Callable[[list[dict[str, Any]], dict[str, Any]], list[dict[str, Any]]]
    attestation_items: dict[str, str]


def default_hooks() -> ProductHooks:
    from checks import brief, handover, scope

    return ProductHooks(scope.SCOPE_FACTS, scope.paid_from_billing, scope.products_used, brief.build_brief,
                        brief.recommendations, handover.ATTESTATION_ITEMS)


def gather_facts(client: PostHogClient, project_id: str, checks: list[Check], hooks: ProductHooks) -> Facts:
    # The key's scopes and the project do not depend on each other: ask for both at once.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preflight") as pool:
        scopes_future = pool.submit(contextvars.copy_context().run, read_key_scopes, client)
        project = fetch_project(client, project_id)
        scopes = scopes_future.result()
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
    attestations: dict[str, Any] | None = None,
    vitally: dict[str, Any] | None = None,
    mode: str = "handover",
) -> dict[str, Any]:
    hooks = hooks or default_hooks()
    started_at = started_at or datetime.now(UTC)
    clock = time.perf_counter()
    set_local_facts(facts, attestations, vitally)
    # The scope comes first: checks such as handover.paid-products-used read it.
    vitally_paid = (facts.get("vitally") or {}).get("paid_products")
    billing_error = facts.reason("billing") if read_failed(facts.status("billing"), facts.reason("billing")) \
        else None
    scope = decide_scope(hooks.paid_from_billing(facts), settings.paying_for, hooks.products_used(facts),
                         vitally_paid, billing_error)
    facts.values["scope"] = Fact("ok", scope.to_dict())
    results = run_checks(checks, facts, settings)
    results += [plugin_failure_result(f) for f in registry.failures]
    selected = {c.id for c in checks}
    subset = f"{len(selected)} of {len(registry.checks)}" if selected < set(registry.checks) else None
    categories, readiness = score_run(results, scope, settings.weights, settings.gate, mode=mode, subset=subset)
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
        "mode": mode,
        "target": target,
        "scope": scope_dict,
        "facts": {
            # window_days for the HogQL facts: a query re-run over a shorter window says so in the report.
            name: {"status": f.status, "error": f.error,
                   **({"window_days": f.value["window_days"]}
                      if f.status == "ok" and isinstance(f.value, dict) and "window_days" in f.value else {})}
            for name, f in sorted(facts.values.items())
        },
        "results": result_dicts,
        "categories": [c.to_dict() for c in categories],
        "readiness": readiness.to_dict(),
        "gate": dict(settings.gate),
        "brief": hooks.build_brief(facts, result_dicts, scope_dict),
        # What the findings cost each month, added up from the impacts the checks stated.
        "savings": savings_total(result_dicts),
        "stats": run_stats,
        # Only with --check/--category: which checks ran, out of how many (the reports say "no verdict").
        **({"selection": {"checks": sorted(selected), "of": len(registry.checks)}} if subset else {}),
    }


def set_local_facts(facts: Facts, attestations: dict[str, Any] | None, vitally: dict[str, Any] | None) -> None:
    """Facts from outside PostHog. Given ones win; saved ones (--from-facts) stay; missing ones say why."""
    if attestations is not None:
        facts.values["attestations"] = Fact("ok", attestations)
    facts.values.setdefault("attestations", Fact("unavailable", error="no attestation file (--attestations)"))
    if vitally is not None:
        facts.values["vitally"] = Fact("ok", vitally)
    facts.values.setdefault("vitally", Fact("unavailable", error="Vitally not read for this audit"))


def audit_project(
    client: PostHogClient,
    project_id: str,
    registry: Registry,
    checks: list[Check],
    settings: Settings,
    *,
    hooks: ProductHooks | None = None,
    save_facts: Callable[[Facts], None] | None = None,
    vitally_lookup: Callable[[Facts], dict[str, Any]] | None = None,
    **evaluate_options: Any,
) -> dict[str, Any]:
    hooks = hooks or default_hooks()
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    # One client may audit several projects: count only this project's requests.
    before = (client.stats.http_requests, client.stats.hogql_queries, client.stats.retries)
    facts = gather_facts(client, project_id, checks, hooks)
    gather_seconds = time.perf_counter() - clock
    if vitally_lookup:
        try:
            evaluate_options["vitally"] = vitally_lookup(facts)
        except ApiError as exc:  # Vitally is a help, not a precondition: the audit goes on without it
            facts.values["vitally"] = Fact("error", error=f"Vitally: {exc}")
    if save_facts:
        save_facts(facts)
    stats = {
        "http_requests": client.stats.http_requests - before[0],
        "hogql_queries": client.stats.hogql_queries - before[1],
        "retries": client.stats.retries - before[2],
        "request_depth": client.stats.max_depth,
        "gather_seconds": round(gather_seconds, 3),
        "wall_seconds": time.perf_counter() - clock,
    }
    return evaluate(facts, registry, checks, settings, hooks=hooks, started_at=started_at, stats=stats,
                    **evaluate_options)


FACT_STATUS_ORDER = {"ok": 0, "unavailable": 1, "missing": 2, "error": 3}
BAND_ORDER = ["Healthy", "Concerning", "Poor", "Unknown"]


def combine_account(runs: list[dict[str, Any]], hooks: ProductHooks | None = None) -> dict[str, Any]:
    """One verdict for an account of several projects: it is as ready as its weakest project, and a blocker
    failing in any in-scope project blocks. Each project's full result stays under `projects`."""
    if len(runs) == 1:
        return runs[0]
    hooks = hooks or default_hooks()
    # An unreadable project (an errored section) names no organization and has no scope: take a readable one's.
    readable = [run for run in runs if not run.get("error")] or runs
    first = readable[0]

    def name(run: dict[str, Any]) -> str:
        return str(run["target"].get("project_name") or run["target"].get("project_id"))

    results = [{**r, "project_id": run["target"].get("project_id"), "project_name": name(run)}
               for run in runs for r in run["results"]]
    categories = []
    for cat_id in dict.fromkeys(c["id"] for run in runs for c in run["categories"]):
        per = [(run, c) for run in runs for c in run["categories"] if c["id"] == cat_id]
        unknown = [(run, c) for run, c in per if c["state"] == "unknown"]
        scored = [(run, c) for run, c in per if c["state"] == "scored"]
        worst = min(scored, key=lambda rc: rc[1]["score"]) if scored else None
        base = dict(per[0][1])
        base.update(in_scope=any(c["in_scope"] for _, c in per), counts={})
        if unknown:
            base.update(score=None, state="unknown", reason="; ".join(f"{name(r)}: {c['reason']}" for r, c in unknown))
        elif worst:
            base.update(score=worst[1]["score"], state="scored", reason=f"lowest: {name(worst[0])}")
        categories.append(base)
    reasons: list[str] = []
    for run in sorted(runs, key=lambda r: not r.get("error")):  # a project that could not be read is said first
        for reason in run["readiness"]["reasons"]:
            # Said once when every audited project gives it (org-wide); with one, each says whose it is.
            shared = len(readable) > 1 and all(reason in other["readiness"]["reasons"] for other in readable)
            text = reason if shared else f"{name(run)}: {reason}"
            if text not in reasons:
                reasons.append(text)
    scores = [run["readiness"]["score"] for run in runs]
    readiness: dict[str, Any] = {
        "score": None if any(s is None for s in scores) else min(scores),
        "ready": all(run["readiness"]["ready"] for run in runs),
        "reasons": reasons,
    }
    bands = [run["readiness"].get("band") for run in runs if run["readiness"].get("band")]
    if bands:
        readiness["band"] = max(bands, key=BAND_ORDER.index)
    facts: dict[str, Any] = {}
    for run in runs:
        for fact_name, fact in run["facts"].items():
            current = facts.get(fact_name)
            rank = FACT_STATUS_ORDER.get(fact["status"], 3)
            if current is None or rank > FACT_STATUS_ORDER.get(current["status"], 3):
                error = f"{name(run)}: {fact['error']}" if fact.get("error") else None
                facts[fact_name] = {"status": fact["status"], "error": error}
    brief = dict(first["brief"])
    brief["top_recommendations"] = [
        {**rec, "summary": f"{rec.get('project_name')}: {rec['summary']}"}
        for rec in hooks.recommend(results, first["scope"])
    ]
    for key in ("products_used", "products_not_used", "paid_but_unused"):
        brief[key] = list(dict.fromkeys(p for run in runs for p in run["brief"].get(key) or []))
    brief["products_not_used"] = [p for p in brief["products_not_used"] if p not in brief["products_used"]]
    target = {
        "host": first["target"].get("host"),
        "project_id": ",".join(str(run["target"].get("project_id")) for run in runs),
        "project_name": " + ".join(name(run) for run in runs),
        "organization_id": first["target"].get("organization_id"),
        "organization_name": first["target"].get("organization_name"),
        "projects": [{"project_id": run["target"].get("project_id"), "project_name": name(run)} for run in runs],
    }
    stats = {key: sum(run["stats"].get(key, 0) for run in runs) for key in ("http_requests", "hogql_queries")}
    stats["wall_seconds"] = round(sum(run["stats"].get("wall_seconds", 0) for run in runs), 3)
    return {
        **{k: first[k] for k in ("schema_version", "tool_version", "started_at", "facts_as_of", "mode", "gate")},
        "run_id": first["run_id"].replace(f"-{first['target'].get('project_id')}-", "-account-", 1),
        "finished_at": runs[-1]["finished_at"],
        "target": target,
        "scope": first["scope"],
        "facts": facts,
        "results": results,
        "categories": categories,
        "readiness": readiness,
        "brief": brief,
        "savings": savings_total(results),
        "stats": stats,
        "projects": runs,
        **({"selection": first["selection"]} if first.get("selection") else {}),
    }


def organization_projects(client: PostHogClient, project_id: str | None,
                          organization: str | None = None) -> dict[str, str | None]:
    """Every project (id -> name) of `organization`, else of the organization that owns project_id, else of the
    key's current organization."""
    org = organization or "@current"
    if project_id and not organization:
        owner = fetch_project(client, project_id).get("organization")
        org = str(owner.get("id") if isinstance(owner, dict) else owner)
    path = f"/api/organizations/{org}/projects/"
    projects = expect(client.get_list(path, {"limit": 100}), path, list, ANY_ID)
    listed = {str(p["id"]): p.get("name") if isinstance(p.get("name"), str) else None for p in projects}
    if not listed:
        raise ApiError("not_found", f"organization {org} has no project this key can see")
    return listed


# Errors about the key or the API as a whole, not one project: they stop the account (exit 2 or 3).
ACCOUNT_WIDE_ERRORS = frozenset({"auth", "network", "rate_limited"})


def unreadable_project(client: PostHogClient, project_id: str, name: str | None, error: ApiError,
                       registry: Registry, settings: Settings, hooks: ProductHooks,
                       mode: str = "handover") -> dict[str, Any]:
    """A project of the account the key cannot read (e.g. 403 for a key scoped to other projects): a section of
    its own that says why, judged nothing, scored unknown, never ready, so the account is not ready either."""
    reason = f"Project {project_id} could not be audited: {error}"
    target = {"host": client.host, "project_id": str(project_id), "project_name": name, "organization_id": None,
              "organization_name": None}
    facts = Facts(values={"project": Fact("error", error=str(error))}, as_of=datetime.now(UTC), target=target)
    run = evaluate(facts, registry, [], settings, hooks=hooks, mode=mode)  # a RunResult every renderer reads
    run["readiness"] = {"score": None, "ready": False, "reasons": [reason],
                        **({"band": "Unknown"} if mode == "health" else {})}
    run["error"] = reason
    return run


def audit_target(
    client: PostHogClient,
    project_ids: list[str],
    registry: Registry,
    checks: list[Check],
    settings: Settings,
    *,
    all_projects: bool = False,
    organization: str | None = None,
    hooks: ProductHooks | None = None,
    save_facts: Callable[[Facts], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Audit one account (one or more projects) through an open client. ApiError propagates; the error's
    `url`/message names the project that failed.

    With all_projects (or an organization) the projects come from the organization's list, and one the key
    cannot read becomes an errored section of the account instead of stopping it (projects named one by one
    still stop it: a typo is the user's to hear about). Nothing readable at all still raises."""
    hooks = hooks or default_hooks()
    names: dict[str, str | None] = {}
    whole_organization = all_projects or organization is not None
    if whole_organization:
        names = organization_projects(client, project_ids[0] if project_ids else None, organization)
        project_ids = list(names)
    runs, first_error = [], None
    for pid in project_ids:
        try:
            runs.append(audit_project(client, str(pid), registry, checks, settings, hooks=hooks,
                                      save_facts=save_facts if len(project_ids) == 1 else None, **options))
        except ApiError as exc:
            if not whole_organization or exc.kind in ACCOUNT_WIDE_ERRORS:
                raise
            first_error = first_error or exc
            runs.append(unreadable_project(client, str(pid), names.get(str(pid)), exc, registry, settings, hooks,
                                           options.get("mode", "handover")))
    if first_error is not None and all(run.get("error") for run in runs):
        raise first_error
    return combine_account(runs, hooks)
