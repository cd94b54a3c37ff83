"""Scope, category scores, readiness and the handover gate. Unknown is never ready (fail closed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from auditor.catalogue import Catalogue
from auditor.model import CheckResult, Severity, Status

if TYPE_CHECKING:  # the RunResult's types: annotations only
    from auditor.result import Category, ReadinessResult, ScopeResult


@dataclass
class Scope:
    paid_products: list[str]
    source: str  # billing | vitally | flag | usage
    note: str = ""
    always: frozenset[str] = frozenset()  # categories in scope whatever is paid for (the catalogue says which)
    used: dict[str, bool] = field(default_factory=dict)  # product -> used in 30 days (left out: unknown)
    products: dict[str, str] = field(default_factory=dict)  # every product one can pay for -> its title

    def in_scope(self, category: str) -> bool:
        return category in self.always or category in self.paid_products

    def to_dict(self) -> ScopeResult:
        return {"paid_products": self.paid_products, "source": self.source, "note": self.note,
                "used": self.used, "products": self.products}


@dataclass
class CategoryScore:
    id: str
    title: str
    in_scope: bool
    weight: float
    score: float | None  # None: unknown (an error weighs in) or nothing to score
    state: str  # scored | unknown | not_applicable
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> Category:
        return {
            "id": self.id, "title": self.title, "in_scope": self.in_scope, "weight": self.weight,
            "score": self.score, "state": self.state, "reason": self.reason, "counts": self.counts,
        }  # fmt: skip


HEALTH_BANDS = (("Healthy", 80.0), ("Concerning", 50.0), ("Poor", 0.0))


def band(score: float | None) -> str:
    """The health band of a score; unknown without one."""
    return "Unknown" if score is None else next(name for name, floor in HEALTH_BANDS if score >= floor)
BAND_ORDER = ("Healthy", "Concerning", "Poor", "Unknown")  # best to worst


@dataclass
class Readiness:
    score: float | None
    ready: bool  # handover mode: ready for handover; health mode: healthy
    reasons: list[str]
    band: str | None = None  # health mode only: Healthy, Concerning, Poor or Unknown

    def to_dict(self) -> ReadinessResult:
        data: ReadinessResult = {"score": self.score, "ready": self.ready, "reasons": self.reasons}
        if self.band:
            data["band"] = self.band
        return data


def read_failed(status: str, reason: str | None) -> bool:
    """A fact that should have been readable and was not (a 500, a timeout, a bad answer), as opposed to one
    this key may not read (a missing scope, a 403, an endpoint closed to personal keys): the first is an
    error to report, the second only "no access"."""
    text = reason or ""
    return status == "error" and "missing scope" not in text and "(403)" not in text


def decide_scope(catalogue: Catalogue, billing_paid: list[str] | None, flag_paid: list[str] | None,
                 used: dict[str, bool], vitally_paid: list[str] | None = None,
                 billing_error: str | None = None) -> Scope:
    """Paid products, in order of trust: billing, Vitally's `Paying for …` traits, then --paying-for; with no
    source, every product in use. billing_error: why billing, which the key may read, could not be read."""
    def scope(paid: list[str], source: str, note: str = "") -> Scope:
        return Scope(paid, source, note, always=catalogue.always_in_scope, used=used,
                     products={p: catalogue.title(p) for p in catalogue.payable})

    if billing_paid is not None:
        return scope(catalogue.sort(billing_paid), "billing")
    if vitally_paid is not None:
        return scope(catalogue.sort(vitally_paid), "vitally")
    if flag_paid is not None:
        return scope(catalogue.sort(flag_paid), "flag")
    in_use = [p for p in catalogue.payable if used.get(p)]
    if billing_error:  # not "no access": PostHog failed to answer, and the report must say so
        return scope(in_use, "usage", f"Billing could not be read ({billing_error}), and no Vitally traits or "
                     "--paying-for: every product with usage is in scope.")
    return scope(in_use, "usage", "No billing access, no Vitally traits and no --paying-for: every product with "
                 "usage is in scope.")


def score_category(category: str, title: str, results: list[CheckResult], in_scope: bool,
                   weight: float) -> CategoryScore:
    mine = [r for r in results if r.category == category]
    counts: dict[str, int] = {}
    for r in mine:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    weighted = [r for r in mine if r.weight > 0]
    errors = [r for r in weighted if r.status == Status.ERROR]
    if errors:
        names = ", ".join(r.id for r in errors[:3]) + (f" and {len(errors) - 3} more" if len(errors) > 3 else "")
        return CategoryScore(category, title, in_scope, weight, None, "unknown",
                             f"could not judge {names}", counts)
    if not weighted:
        return CategoryScore(category, title, in_scope, weight, None, "not_applicable",
                             "no scored check applies", counts)
    total = sum(r.weight for r in weighted)
    value = sum(r.weight * (r.score or 0.0) for r in weighted) / total * 100
    return CategoryScore(category, title, in_scope, weight, round(value, 1), "scored", "", counts)


def score_run(
    results: list[CheckResult], scope: Scope, weights: dict[str, float], gate: dict[str, float],
    catalogue: Catalogue, mode: str = "handover", subset: str | None = None,
) -> tuple[list[CategoryScore], Readiness]:
    """weights: overrides of the catalogue's weights. subset: "N of M" when only some checks ran
    (--check/--category): then there is no readiness score or verdict, only what the checks that ran found (a
    partial score would headline "readiness 0/100")."""
    categories = [
        score_category(c, catalogue.title(c), results, scope.in_scope(c), catalogue.weight(c, weights))
        for c in catalogue.order(r.category for r in results)
    ]
    if mode == "health":
        return categories, health(results, categories, scope, gate, catalogue, subset)
    return categories, readiness(results, categories, scope, gate, catalogue, subset=subset)


def readiness(
    results: list[CheckResult], categories: list[CategoryScore], scope: Scope, gate: dict[str, float],
    catalogue: Catalogue, goal: str = "a handover needs", subset: str | None = None,
) -> Readiness:
    reasons: list[str] = []
    min_readiness, min_category = gate["min_readiness"], gate["min_category"]

    for r in results:
        if r.category == "plugins" and r.status == Status.ERROR:
            reasons.append(r.summary)
    blockers = [
        r for r in results
        if r.severity == Severity.BLOCKER and scope.in_scope(r.category) and r.status in (Status.FAIL, Status.ERROR)
    ]
    for r in blockers:
        verb = "failed" if r.status == Status.FAIL else "could not be judged"
        reasons.append(f"Blocker {verb}: {r.title} ({r.id}) — {r.summary}")

    # Checks readiness needs to pass (CheckMeta.required, e.g. the Account Plan), run or not.
    by_id = {r.id: r for r in results}
    settled: set[str] = set()
    for meta in catalogue.required:
        found = by_id.get(meta.id)
        if found is None:
            if subset is None:
                reasons.append(f"{meta.failure_title}: {meta.id} was not evaluated.")
            continue
        settled.add(found.id)
        if found.status != Status.PASS and found not in blockers:
            reasons.append(f"{meta.failure_title} ({meta.id} is {found.status}): {found.summary}")
    # Every precondition (a category the catalogue marks so) must be met: a person's missing answer blocks like
    # a failure.
    for r in results:
        if catalogue.is_precondition(r.category) and r not in blockers and r.id not in settled:
            if r.status == Status.MANUAL:
                prefix = "" if r.summary.startswith("Needs a person") else "Needs a person: "
                reasons.append(prefix + r.summary)
            elif r.status in (Status.FAIL, Status.ERROR):
                reasons.append(f"Handover precondition not met — {r.title}: {r.summary}")

    if subset is not None:  # what the selected checks found stands; scores of a subset mean nothing
        return Readiness(score=None, ready=False, reasons=[
            f"Only {subset} checks were run (--check/--category): there is no verdict from a subset.", *reasons])

    scored = [c for c in categories if c.in_scope and c.weight > 0]
    for c in scored:
        if c.state == "unknown":
            reasons.append(f"{c.title} score is unknown: {c.reason}.")
        elif c.state == "scored" and c.score is not None and c.score < min_category:
            reasons.append(f"{c.title} scores {c.score:.0f}, below the {min_category:.0f} every in-scope category "
                           "needs.")
    judged = {r.category for r in results}
    for product in scope.paid_products:
        if product not in judged:
            reasons.append(f"{catalogue.title(product)} is paid for, but no check judged it, so its onboarding is "
                           "unknown.")

    known = [c for c in scored if c.state == "scored" and c.score is not None]
    unknown = [c for c in scored if c.state == "unknown"]
    score: float | None = None
    if known and not unknown:
        total = sum(c.weight for c in known)
        score = round(sum(c.weight * (c.score or 0.0) for c in known) / total, 1)
        if score < min_readiness:
            reasons.insert(0, f"Readiness {score:.0f} is below the {min_readiness:.0f} {goal}.")
    elif not known and not unknown:
        reasons.insert(0, "Nothing in scope could be scored.")
    ready = not reasons and score is not None
    return Readiness(score=score, ready=ready, reasons=reasons)


def health(
    results: list[CheckResult], categories: list[CategoryScore], scope: Scope, gate: dict[str, float],
    catalogue: Catalogue, subset: str | None = None,
) -> Readiness:
    """Periodic health: the same scores, banded; handover-only categories and checks do not count."""
    handover = {r.id for r in results if catalogue.is_handover_only(r.category)}
    product_results = [r for r in results if r.id not in handover]
    ongoing = Catalogue(products=catalogue.products,
                        required=tuple(m for m in catalogue.required if not catalogue.is_handover_only(m.category)))
    assessed = readiness(product_results, categories, scope, gate, ongoing, goal="a healthy account reaches",
                         subset=subset)
    reasons = assessed.reasons
    score = assessed.score
    health = band(score)
    return Readiness(score=score, ready=health == "Healthy" and not reasons, reasons=reasons, band=health)


# ---- an account of several projects ---------------------------------------------------------------------------

def combine_categories(projects: Sequence[tuple[str, list[Category]]]) -> list[Category]:
    """Each category of an account across its projects (name, categories): unknown if any project's is, else
    its lowest score, naming that project."""
    combined: list[Category] = []
    for cat_id in dict.fromkeys(c["id"] for _, categories in projects for c in categories):
        per = [(project, c) for project, categories in projects for c in categories if c["id"] == cat_id]
        unknown = [(project, c) for project, c in per if c["state"] == "unknown"]
        scored = [(project, c["score"]) for project, c in per if c["state"] == "scored" and c["score"] is not None]
        base: Category = {**per[0][1], "in_scope": any(c["in_scope"] for _, c in per), "counts": {}}
        if unknown:
            base["score"], base["state"] = None, "unknown"
            base["reason"] = "; ".join(f"{project}: {c['reason']}" for project, c in unknown)
        elif scored:
            worst_project, worst_score = min(scored, key=lambda ps: ps[1])
            base["score"], base["state"], base["reason"] = worst_score, "scored", f"lowest: {worst_project}"
        combined.append(base)
    return combined


def combine_readiness(projects: Sequence[tuple[str, ReadinessResult, bool]]) -> ReadinessResult:
    """An account is as ready as its weakest project, and unknown if any project's score is: `projects` are
    (name, readiness, readable). A reason every readable project gives (an organization-wide one) is said once;
    any other says whose it is, an unreadable project's first."""
    readable = [assessed for _, assessed, ok in projects if ok] or [assessed for _, assessed, _ in projects]
    reasons: list[str] = []
    for project, assessed, _ in sorted(projects, key=lambda p: p[2]):
        for reason in assessed["reasons"]:
            shared = len(readable) > 1 and all(reason in other["reasons"] for other in readable)
            text = reason if shared else f"{project}: {reason}"
            if text not in reasons:
                reasons.append(text)
    scores = [assessed["score"] for _, assessed, _ in projects]
    known = [score for score in scores if score is not None]
    combined: ReadinessResult = {
        "score": min(known) if len(known) == len(scores) else None,
        "ready": all(assessed["ready"] for _, assessed, _ in projects),
        "reasons": reasons,
    }
    bands = [band for _, assessed, _ in projects if (band := assessed.get("band"))]
    if bands:
        combined["band"] = max(bands, key=BAND_ORDER.index)
    return combined
