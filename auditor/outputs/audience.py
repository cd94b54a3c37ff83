"""Who a report is for. The internal report (the default) is the account owner's: the handover gate and its reasons,
attestations, the new owner's brief, Vitally data, members and their last logins. The customer's report is derived
from it by one function, `customer_view`, before any renderer runs, so the HTML, the Markdown and the JSON all
leave out the same things:

- results a check declares `audience="internal"` (the handover preconditions), and the categories left with none;
- the evidence table of checks that declare `private_evidence` (people's names, emails and last logins);
- the gate, the readiness verdict and its reasons (the score stays, as a health band), the scope's source,
  the brief (only the top recommendations, products used and paid but unused, the event mix and SDK versions stay),
  the errors of the facts and the facts from outside PostHog (attestations, Vitally);
- regressions about what was left out.

What a check declares comes with each result; a report written before results carried it is read against the
registry's metadata, so an older report.json is redacted the same way.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from auditor.defaults import AUDIENCES
from auditor.savings import total as savings_total
from auditor.scoring import band

INTERNAL_FACTS = ("attestations", "vitally")  # facts from outside PostHog: the owner's
CUSTOMER_BRIEF = ("top_recommendations", "products_used", "paid_but_unused", "event_mix", "sdk_versions")
RESULT_FLAGS = ("audience", "private_evidence")
# Top-level keys the customer's report keeps as they are; anything else (the gate, and any key added later) is left
# out unless it is derived below: a new internal key cannot leak by default.
PASSED_THROUGH = ("schema_version", "tool_version", "run_id", "started_at", "finished_at", "facts_as_of", "target",
                  "stats", "account", "trend", "error")


def for_audience(run: dict[str, Any], audience: str = "internal") -> dict[str, Any]:
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r} (choose from {', '.join(AUDIENCES)})")
    return customer_view(run) if audience == "customer" else run


def _declared(result: dict[str, Any]) -> tuple[str, bool]:
    """(audience, private_evidence) of a result: as it carries them, else as its check declares them."""
    if "audience" in result:
        return str(result.get("audience") or "all"), bool(result.get("private_evidence"))
    meta = _registry_meta().get(str(result.get("id")))
    return (meta.audience, meta.private_evidence) if meta else ("all", False)


@lru_cache(maxsize=1)
def _registry_meta() -> dict[str, Any]:
    from auditor.registry import load_registry

    return {check_id: check.meta for check_id, check in load_registry(plugins=False).checks.items()}


def customer_view(run: dict[str, Any]) -> dict[str, Any]:
    """The customer's report of a run (idempotent: a customer view stays as it is)."""
    if run.get("audience") == "customer":
        return run
    return _customer_view(copy.deepcopy(run))


def _customer_view(run: dict[str, Any]) -> dict[str, Any]:
    """customer_view of a run that is already a copy of its own (its projects too: copied once, not again)."""
    kept, dropped = [], []
    for result in run.get("results") or []:
        audience, private = _declared(result)
        if audience == "internal":
            dropped.append(result)
            continue
        for flag in RESULT_FLAGS:
            result.pop(flag, None)
        if private and isinstance(result.get("evidence"), dict):
            result["evidence"] = {**result["evidence"], "table": None}
        kept.append(result)
    kept_categories = {r.get("category") for r in kept}
    gone_categories = [c for c in run.get("categories") or [] if c.get("id") not in kept_categories]
    dropped_ids = {str(r.get("id")) for r in dropped}
    gone_words = dropped_ids | {str(c.get("title")) for c in gone_categories if c.get("title")}

    readiness = run.get("readiness") or {}
    score = readiness.get("score")
    health = band(score)
    out: dict[str, Any] = {
        **{k: run[k] for k in PASSED_THROUGH if k in run},
        "audience": "customer",
        "mode": "health",
        "target": run.get("target") or {},
        # What they pay for, and every product's title (to name them); not where that was learnt.
        "scope": {"paid_products": list((run.get("scope") or {}).get("paid_products") or []),
                  "products": dict((run.get("scope") or {}).get("products") or {})},
        "facts": {name: {"status": fact.get("status"), "error": None,
                         **({"window_days": fact["window_days"]} if "window_days" in fact else {})}
                  for name, fact in (run.get("facts") or {}).items()
                  if name not in INTERNAL_FACTS and isinstance(fact, dict)},
        "results": kept,
        "categories": [c for c in run.get("categories") or [] if c.get("id") in kept_categories],
        "readiness": {"score": score, "ready": health == "Healthy", "reasons": [], "band": health},
        "brief": _brief(run.get("brief") or {}, dropped_ids),
        "savings": savings_total(kept),
    }
    if run.get("changes"):
        changes = dict(run["changes"])
        changes["regressions"] = [r for r in changes.get("regressions") or []
                                  if not any(word in str(r) for word in gone_words)]
        out["changes"] = changes
    if run.get("selection"):
        selection = dict(run["selection"])
        selection["checks"] = [c for c in selection.get("checks") or [] if c not in dropped_ids]
        out["selection"] = selection
    if run.get("projects"):
        out["projects"] = [project if project.get("audience") == "customer" else _customer_view(project)
                           for project in run["projects"]]
    return out


def _brief(brief: dict[str, Any], dropped_ids: set[str]) -> dict[str, Any]:
    out = {key: brief[key] for key in CUSTOMER_BRIEF if key in brief}
    out["top_recommendations"] = [rec for rec in brief.get("top_recommendations") or []
                                  if str(rec.get("id")) not in dropped_ids]
    return out
