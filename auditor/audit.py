"""One audit, end to end: facts -> checks -> scope -> scores -> the RunResult dict (the public contract)."""

from __future__ import annotations

import contextvars
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from auditor import __version__
from auditor.catalogue import Catalogue
from auditor.clients.posthog_api import ApiError, PostHogClient
from auditor.config import Settings
from auditor.facts import ANY_ID, Fact, Facts, expect, fetch_project, gather, read_key_scopes
from auditor.model import SCHEMA_VERSION, Check
from auditor.registry import Registry
from auditor.result import FactStatus, Result, RunResult, Stats, Target
from auditor.runner import needed_facts, plugin_failure_result, run_checks
from auditor.savings import total as savings_total
from auditor.scoring import combine_categories, combine_readiness, decide_scope, read_failed, score_run


def gather_facts(client: PostHogClient, project_id: str, checks: list[Check], catalogue: Catalogue) -> Facts:
    # The key's scopes and the project do not depend on each other: ask for both at once.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preflight") as pool:
        scopes_future = pool.submit(contextvars.copy_context().run, read_key_scopes, client)
        project = fetch_project(client, project_id)
        scopes = scopes_future.result()
    # Besides what the checks need: the organization (the report's target), and what the catalogue reads for the
    # scope (billing, usage) and the brief.
    wanted = needed_facts(checks) | catalogue.facts | {"organization"}
    return gather(client, project_id, wanted, scopes=scopes, project=project)


def evaluate(
    facts: Facts,
    registry: Registry,
    checks: list[Check],
    settings: Settings,
    *,
    started_at: datetime | None = None,
    stats: Stats | None = None,
    attestations: dict[str, Any] | None = None,
    vitally: dict[str, Any] | None = None,
    mode: str = "handover",
) -> RunResult:
    catalogue = registry.catalogue
    started_at = started_at or datetime.now(UTC)
    clock = time.perf_counter()
    set_local_facts(facts, attestations, vitally)
    # The scope comes first: checks such as handover.paid-products-used read it.
    vitally_paid = (facts.get("vitally") or {}).get("paid_products")
    billing_error = facts.reason("billing") if read_failed(facts.status("billing"), facts.reason("billing")) \
        else None
    scope = decide_scope(catalogue, catalogue.paid_from_billing(facts.get("billing")), settings.paying_for,
                         catalogue.used(facts), vitally_paid, billing_error)
    facts.values["scope"] = Fact("ok", scope.to_dict())
    results = run_checks(checks, facts, settings)
    results += [plugin_failure_result(f) for f in registry.failures]
    selected = {c.id for c in checks}
    subset = f"{len(selected)} of {len(registry.checks)}" if selected < set(registry.checks) else None
    categories, readiness = score_run(results, scope, settings.weights, settings.gate, catalogue, mode=mode,
                                      subset=subset)
    result_dicts = [r.to_dict() for r in results]
    scope_dict = scope.to_dict()
    finished_at = datetime.now(UTC)
    run_stats: Stats = {"http_requests": 0, "hogql_queries": 0}
    run_stats.update(stats or {})
    run_stats["wall_seconds"] = round(run_stats.get("wall_seconds", 0.0) + time.perf_counter() - clock, 3)
    target = facts_target(facts)
    run: RunResult = {
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "run_id": f"{started_at:%Y%m%dT%H%M%SZ}-{target.get('project_id') or 'project'}-{secrets.token_hex(3)}",
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "facts_as_of": facts.as_of.isoformat(),
        "mode": mode,
        "target": target,
        "scope": scope_dict,
        "facts": {name: fact_status(fact) for name, fact in sorted(facts.values.items())},
        "results": result_dicts,
        "categories": [c.to_dict() for c in categories],
        "readiness": readiness.to_dict(),
        "gate": dict(settings.gate),
        "brief": catalogue.brief(facts, result_dicts, scope_dict) if catalogue.brief else {},
        # What the findings cost each month, added up from the impacts the checks stated.
        "savings": savings_total(result_dicts),
        "stats": run_stats,
    }
    if subset:  # only with --check/--category: which checks ran, out of how many (the reports say "no verdict")
        run["selection"] = {"checks": sorted(selected), "of": len(registry.checks)}
    return run


def facts_target(facts: Facts) -> Target:
    known = facts.target
    target: Target = {"host": known.get("host"), "project_id": known.get("project_id"),
                      "project_name": known.get("project_name"), "organization_id": known.get("organization_id"),
                      "organization_name": known.get("organization_name")}
    return target


def fact_status(fact: Fact) -> FactStatus:
    status: FactStatus = {"status": fact.status, "error": fact.error}
    # A HogQL fact says how many days its query covered: a query re-run over a shorter window says so in the report.
    if fact.status == "ok" and isinstance(fact.value, dict) and "window_days" in fact.value:
        status["window_days"] = int(fact.value["window_days"])
    return status


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
    save_facts: Callable[[Facts], None] | None = None,
    vitally_lookup: Callable[[Facts], dict[str, Any]] | None = None,
    **evaluate_options: Any,
) -> RunResult:
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    # One client may audit several projects at once: count only this project's requests.
    with client.tally() as tally:
        facts = gather_facts(client, project_id, checks, registry.catalogue)
    gather_seconds = time.perf_counter() - clock
    if vitally_lookup:
        try:
            evaluate_options["vitally"] = vitally_lookup(facts)
        except ApiError as exc:  # Vitally is a help, not a precondition: the audit goes on without it
            facts.values["vitally"] = Fact("error", error=f"Vitally: {exc}")
    if save_facts:
        save_facts(facts)
    stats: Stats = {
        "http_requests": tally.http_requests,
        "hogql_queries": tally.hogql_queries,
        "retries": tally.retries,
        "request_depth": tally.max_depth,
        "gather_seconds": round(gather_seconds, 3),
        "wall_seconds": time.perf_counter() - clock,
    }
    return evaluate(facts, registry, checks, settings, started_at=started_at, stats=stats, **evaluate_options)


PROJECTS_AT_ONCE = 4  # an organization's projects audited side by side
FACT_STATUS_ORDER = {"ok": 0, "unavailable": 1, "missing": 2, "error": 3}


def combine_account(runs: list[RunResult], catalogue: Catalogue) -> RunResult:
    """One verdict for an account of several projects: it is as ready as its weakest project, and a blocker
    failing in any in-scope project blocks. Each project's full result stays under `projects`."""
    if len(runs) == 1:
        return runs[0]
    # An unreadable project (an errored section) names no organization and has no scope: take a readable one's.
    readable = [run for run in runs if not run.get("error")] or runs
    first = readable[0]

    def name(run: RunResult) -> str:
        return str(run["target"].get("project_name") or run["target"].get("project_id"))

    results: list[Result] = [{**r, "project_id": run["target"].get("project_id"), "project_name": name(run)}
                             for run in runs for r in run["results"]]
    categories = combine_categories([(name(run), run["categories"]) for run in runs])
    readiness = combine_readiness([(name(run), run["readiness"], not run.get("error")) for run in runs])
    facts: dict[str, FactStatus] = {}
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
        for rec in (catalogue.recommend(results, first["scope"]) if catalogue.recommend else [])
    ]
    for key in ("products_used", "products_not_used", "paid_but_unused"):
        brief[key] = list(dict.fromkeys(p for run in runs for p in run["brief"].get(key) or []))
    brief["products_not_used"] = [p for p in brief["products_not_used"] if p not in brief["products_used"]]
    target: Target = {
        "host": first["target"].get("host"),
        "project_id": ",".join(str(run["target"].get("project_id")) for run in runs),
        "project_name": " + ".join(name(run) for run in runs),
        "organization_id": first["target"].get("organization_id"),
        "organization_name": first["target"].get("organization_name"),
        "projects": [{"project_id": run["target"].get("project_id"), "project_name": name(run)} for run in runs],
    }
    stats: Stats = {
        "http_requests": sum(run["stats"].get("http_requests", 0) for run in runs),
        "hogql_queries": sum(run["stats"].get("hogql_queries", 0) for run in runs),
        "wall_seconds": round(sum(run["stats"].get("wall_seconds", 0.0) for run in runs), 3),
    }
    account: RunResult = {
        "schema_version": first["schema_version"], "tool_version": first["tool_version"],
        "started_at": first["started_at"], "facts_as_of": first["facts_as_of"], "mode": first["mode"],
        "gate": first["gate"],
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
    }
    if "selection" in first:
        account["selection"] = first["selection"]
    return account


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
                       registry: Registry, settings: Settings, mode: str = "handover") -> RunResult:
    """A project of the account the key cannot read (e.g. 403 for a key scoped to other projects): a section of
    its own that says why, judged nothing, scored unknown, never ready, so the account is not ready either."""
    reason = f"Project {project_id} could not be audited: {error}"
    target = {"host": client.host, "project_id": str(project_id), "project_name": name, "organization_id": None,
              "organization_name": None}
    facts = Facts(values={"project": Fact("error", error=str(error))}, as_of=datetime.now(UTC), target=target)
    run = evaluate(facts, registry, [], settings, mode=mode)  # a RunResult every renderer reads
    run["readiness"] = {"score": None, "ready": False, "reasons": [reason]}
    if mode == "health":
        run["readiness"]["band"] = "Unknown"
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
    save_facts: Callable[[Facts], None] | None = None,
    **options: Any,
) -> RunResult:
    """Audit one account (one or more projects) through an open client. ApiError propagates; the error's
    `url`/message names the project that failed.

    With all_projects (or an organization) the projects come from the organization's list, and one the key
    cannot read becomes an errored section of the account instead of stopping it (projects named one by one
    still stop it: a typo is the user's to hear about). Nothing readable at all still raises."""
    names: dict[str, str | None] = {}
    whole_organization = all_projects or organization is not None
    if whole_organization:
        names = organization_projects(client, project_ids[0] if project_ids else None, organization)
        project_ids = list(names)
    def one(pid: str) -> RunResult | ApiError:
        try:
            return audit_project(client, pid, registry, checks, settings,
                                 save_facts=save_facts if len(project_ids) == 1 else None, **options)
        except ApiError as exc:
            return exc

    # The projects side by side (the client bounds the requests in flight, the key's limiter their rate); what
    # they share (the organization, its members, what depends on the key) is asked once.
    at_once = 1 if client.concurrency == 1 else min(len(project_ids), PROJECTS_AT_ONCE)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=max(1, at_once), thread_name_prefix="project") as pool:
        outcomes = list(pool.map(lambda pid: context.copy().run(one, str(pid)), project_ids))
    runs, first_error = [], None
    for pid, outcome in zip(project_ids, outcomes, strict=True):
        if not isinstance(outcome, ApiError):
            runs.append(outcome)
            continue
        if not whole_organization or outcome.kind in ACCOUNT_WIDE_ERRORS:
            raise outcome  # the first failed project, in the order given
        first_error = first_error or outcome
        runs.append(unreadable_project(client, str(pid), names.get(str(pid)), outcome, registry, settings,
                                       options.get("mode", "handover")))
    if first_error is not None and all(run.get("error") for run in runs):
        raise first_error
    return combine_account(runs, registry.catalogue)
