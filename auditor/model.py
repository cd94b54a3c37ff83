"""The vocabulary every part of the auditor shares: statuses, severities, checks, findings, results."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the facts module imports the API client: only its type is needed here
    from auditor.facts import Facts
    from auditor.result import Evidence, ImpactResult, LinkResult, Result

SCHEMA_VERSION = 1
EVIDENCE_ROW_CAP = 50

CHECK_ID_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z0-9]+(-[a-z0-9]+)*$")


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"  # could not be judged: a fact is missing, a scope is missing, the check raised
    SKIP = "skip"  # not applicable
    MANUAL = "manual"  # needs a person's attestation
    INFO = "info"  # shown, never scored


class Severity(StrEnum):
    BLOCKER = "blocker"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


SEVERITY_WEIGHT = {Severity.BLOCKER: 5, Severity.MAJOR: 3, Severity.MINOR: 1, Severity.INFO: 0}
STATUS_SCORE = {Status.PASS: 1.0, Status.WARN: 0.5, Status.FAIL: 0.0}


@dataclass(frozen=True)
class Table:
    """A capped evidence table; `total_rows` keeps the true size so a report can say "and N more"."""

    columns: list[str]
    rows: list[list[Any]]
    total_rows: int

    @classmethod
    def of(cls, columns: list[str], rows: Sequence[Any], cap: int = EVIDENCE_ROW_CAP,
           row: Callable[[Any], list[Any]] | None = None) -> Table:
        """A table of the first `cap` rows. With `row`, `rows` are items and only the rows shown are built (a
        project with 80,000 flags formats 50 of them, not all)."""
        shown = [list(row(item) if row else item) for item in rows[:cap]]
        return cls(columns=list(columns), rows=shown, total_rows=len(rows))

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "total_rows": self.total_rows}


@dataclass(frozen=True)
class Impact:
    """What a finding costs the customer each month, as the check that found it states it: the wasted units and
    their billing meter, and (when the check could price them from the customer's own billing) their dollars.
    The engine only carries it and adds it up; pricing is product knowledge and lives with the checks."""

    units_per_month: float
    unit: str  # what is counted, e.g. "event", "recording", "row"
    basis: str  # the figure in words, e.g. "312,000 $autocapture events/month × $0.000045 at your current tier"
    usd_per_month: float | None = None  # None: not priced (say why in unpriced_reason)
    share_of_bill: float | None = None  # usd_per_month over the monthly bill; None when either is unknown
    meter: str | None = None  # the billing meter the units are billed on (a usage key, e.g. "events")
    # What is wasted, named so that two findings about the same waste count once in a total (the larger wins).
    key: str | None = None
    unpriced_reason: str | None = None  # e.g. "billing not readable"

    def to_dict(self) -> ImpactResult:
        return {"units_per_month": self.units_per_month, "unit": self.unit, "usd_per_month": self.usd_per_month,
                "share_of_bill": self.share_of_bill, "basis": self.basis, "meter": self.meter, "key": self.key,
                "unpriced_reason": self.unpriced_reason}


@dataclass(frozen=True)
class Link:
    """A place in the customer's PostHog (where the finding is fixed, or its query, live)."""

    label: str
    url: str
    kind: str = "fix"  # "fix": where it is fixed; "query": the HogQL the finding rests on, in the SQL editor

    def to_dict(self) -> LinkResult:
        return {"label": self.label, "url": self.url, "kind": self.kind}


@dataclass(frozen=True)
class Finding:
    """What a check function returns."""

    status: Status
    summary: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    table: Table | None = None
    remediation: str = ""
    # Some checks matter more when the customer pays for the feature (e.g. group analytics).
    severity: Severity | None = None
    impact: Impact | None = None  # what the finding costs each month, when it wastes billed units
    links: tuple[Link, ...] = ()  # where in PostHog it is fixed, and its query

    def evidence(self) -> Evidence:
        return {"metrics": dict(self.metrics), "table": self.table.to_dict() if self.table else None}


Thresholds = dict[str, Any]
# A check: a pure function of the facts it declares and its thresholds (defaults, overridden by auditor.toml).
CheckFn = Callable[["Facts", Thresholds], Finding]


@dataclass(frozen=True)
class CheckMeta:
    id: str
    title: str  # the passing state
    failure_title: str  # the failing state
    description: str  # why it matters
    category: str
    severity: Severity
    docs_url: str
    requires: tuple[str, ...] = ()  # facts without which the check cannot be judged
    uses: tuple[str, ...] = ()  # facts the check reads when they are available
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    # Readiness needs this check to pass, whatever its score or severity (e.g. the Account Plan); a run that did
    # not evaluate it is not ready either.
    required: bool = False
    # Former ids of this check: history and Vitally traits recorded under them still belong to it.
    aliases: tuple[str, ...] = ()
    # Who may read the result: "all", or "internal" (PostHog's own people: left out of the customer's report).
    audience: str = "all"
    # The evidence names people (emails, last logins): the customer's report keeps the finding, not its evidence.
    private_evidence: bool = False


@dataclass(frozen=True)
class Product:
    """A category of checks, as the engine needs to know it: its title, its weight in readiness, and how to tell
    whether the customer pays for it and uses it. Built-in products are declared in checks/catalog.py; a plugin
    can declare its own beside its checks."""

    id: str
    title: str
    weight: float = 0.0  # its weight in the readiness score (0: shown and gated, not scored)
    always_in_scope: bool = False  # judged whatever the customer pays for
    billing_type: str | None = None  # the `type` of its product in GET /api/billing/
    vitally_label: str | None = None  # the Vitally trait "Paying for <label>"
    used: Callable[[Facts], bool | None] | None = None  # used in the last 30 days? (yes, no, or None: unknown)
    used_facts: tuple[str, ...] = ()  # the facts `used` reads
    preconditions: bool = False  # every check here is a handover precondition: any not passing blocks it
    handover_only: bool = False  # not part of a periodic health check
    attestations: Mapping[str, str] = field(default_factory=dict)  # items a person attests (item -> what)

    @property
    def payable(self) -> bool:
        """A product a customer can pay for, as opposed to a category judged whatever they pay for."""
        return not self.always_in_scope


@dataclass(frozen=True)
class Check:
    meta: CheckMeta
    fn: CheckFn
    source: str = "builtin"

    @property
    def id(self) -> str:
        return self.meta.id


def check(
    *,
    id: str,
    title: str,
    failure_title: str,
    description: str,
    severity: Severity,
    docs_url: str,
    requires: tuple[str, ...] = (),
    uses: tuple[str, ...] = (),
    thresholds: Mapping[str, Any] | None = None,
    required: bool = False,
    aliases: tuple[str, ...] = (),
    audience: str = "all",
    private_evidence: bool = False,
) -> Callable[[CheckFn], Check]:
    """Declare a check: metadata plus a pure function of (facts, thresholds) -> Finding."""

    def wrap(fn: CheckFn) -> Check:
        meta = CheckMeta(
            id=id,
            title=title,
            failure_title=failure_title,
            description=description,
            category=id.split(".", 1)[0],
            severity=severity,
            docs_url=docs_url,
            requires=tuple(requires),
            uses=tuple(uses),
            thresholds=dict(thresholds or {}),
            required=required,
            aliases=tuple(aliases),
            audience=audience,
            private_evidence=private_evidence,
        )
        return Check(meta=meta, fn=fn, source=fn.__module__.split(".")[0])

    return wrap


@dataclass
class CheckResult:
    id: str
    category: str
    severity: Severity
    status: Status
    title: str
    summary: str
    evidence: Evidence
    remediation: str
    docs_url: str
    error: str | None = None
    description: str = ""
    impact: ImpactResult | None = None
    links: list[LinkResult] = field(default_factory=list)
    audience: str = "all"
    private_evidence: bool = False

    @property
    def score(self) -> float | None:
        return STATUS_SCORE.get(self.status)

    @property
    def weight(self) -> int:
        """How much the result counts in its category: errors count (and make the score unknown)."""
        if self.status in (Status.SKIP, Status.MANUAL, Status.INFO):
            return 0
        return SEVERITY_WEIGHT[self.severity]

    def to_dict(self) -> Result:
        return {
            "id": self.id,
            "category": self.category,
            "severity": str(self.severity),
            "status": str(self.status),
            "score": self.score,
            "title": self.title,
            "description": self.description,
            "summary": self.summary,
            "evidence": self.evidence,
            "remediation": self.remediation,
            "docs_url": self.docs_url,
            "error": self.error,
            # Added with issue 16; a consumer that does not know them reads the rest as before.
            "impact": self.impact,
            "links": self.links,
            "audience": self.audience,
            "private_evidence": self.private_evidence,
        }
