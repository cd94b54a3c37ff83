"""The check-writing kit: a check's cases, written as YAML, run the way the built-in checks' are. Plugin authors use
it as the built-in checks do (tests/test_check_cases.py); it needs PyYAML (`pip install posthog-auditor[test]`).

A case file, named after its check (`<check id>.yml`):

    check: platform.reverse-proxy
    cases:
      - name: all web traffic proxied
        facts:                        # fact name -> value (status ok), or {$status: error|unavailable, $error: …}
          cube: [{event: $pageview, lib: web, events: 100, proxied: 100}]   # HogQL facts: rows as mappings
        thresholds: {pass_share: 0.9} # optional overrides
        expect: pass                  # the status
        summary_contains: "100%"      # optional
        severity: info                # optional: the effective severity
        table_rows: 3                 # optional: the evidence table's rows
        impact:                       # optional: the finding's cost (null: it has none); numbers to 0.01
          units_per_month: 400
          unit: event
          usd_per_month: 0.02         # null: not priced
          basis_contains: "× $0.00005"
        links_contain: ["/project/4242/settings/project-autocapture#autocapture"]   # optional: URL parts
        target: {host: https://eu.posthog.com, project_id: "7"}   # optional: the audited project
        as_of: "2026-11-01T12:00:00+00:00"                         # optional: the audit's clock

With pytest:

    from auditor.registry import load_registry
    from auditor.testing import load_cases, verify

    @pytest.mark.parametrize("case", load_cases(Path(__file__).parent / "cases"), ids=str)
    def test_case(case):
        verify(case, load_registry())
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from auditor.catalogue import Catalogue
from auditor.config import Settings
from auditor.facts import Fact, Facts
from auditor.model import CheckResult
from auditor.queries import CUBE_COLUMNS, IDENTITY_COLUMNS, REPLAY_COLUMNS
from auditor.registry import Registry
from auditor.runner import run_check

AS_OF = "2026-11-01T12:00:00+00:00"  # the clock of a case that does not set its own
TARGET = {"host": "https://us.posthog.com", "project_id": "4242"}  # where links point, unless a case says
QUERY_COLUMNS = {"cube": CUBE_COLUMNS, "identity": IDENTITY_COLUMNS, "replay": REPLAY_COLUMNS}


@dataclass(frozen=True)
class Case:
    check: str  # the check's id
    name: str
    spec: Mapping[str, Any]  # what the YAML says: facts, thresholds, expect, …
    source: Path | None = None

    def __str__(self) -> str:  # a pytest id
        return f"{self.check}::{self.name}"


class CaseFailed(AssertionError):
    """A case's check did not give what the case expects."""


def load_cases(directory: str | Path) -> list[Case]:
    """Every case of every `*.yml` file in `directory`, in file order."""
    import yaml  # a test-time dependency, not the tool's

    cases = []
    for path in sorted(Path(directory).glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for spec in doc.get("cases") or []:
            cases.append(Case(check=str(doc["check"]), name=str(spec["name"]), spec=spec, source=path))
    return cases


def build_facts(given: Mapping[str, Any] | None, catalogue: Catalogue, as_of: str = AS_OF,
                target: Mapping[str, Any] | None = None) -> Facts:
    """Facts as a case gives them: a value is an ok fact; `{$status, $error}` a failed one; the rows of a HogQL fact
    (cube, identity, replay) as mappings. A `scope` is completed as the engine completes it (what is used, and
    every product's title)."""
    values: dict[str, Fact] = {}
    for name, value in (given or {}).items():
        if isinstance(value, dict) and "$status" in value:
            values[name] = Fact(value["$status"], None, value.get("$error", "injected"))
            continue
        if name in QUERY_COLUMNS and isinstance(value, list):
            columns = QUERY_COLUMNS[name]
            value = {"columns": list(columns), "rows": [[row.get(c) for c in columns] for row in value],
                     "truncated": False, "limit": 50000}
        values[name] = Fact("ok", value)
    facts = Facts(values=values, as_of=datetime.fromisoformat(as_of), target=dict(TARGET if target is None else target))
    scope = facts.get("scope")
    if isinstance(scope, dict):
        scope.setdefault("used", catalogue.used(facts))
        scope.setdefault("products", {p: catalogue.title(p) for p in catalogue.payable})
    return facts


def run_case(case: Case, registry: Registry) -> CheckResult:
    """The case's check, on the case's facts, with its thresholds."""
    if case.check not in registry.checks:
        raise CaseFailed(f"{case}: no check {case.check} is registered")
    settings = Settings()
    if case.spec.get("thresholds"):
        settings.check_overrides[case.check] = dict(case.spec["thresholds"])
    facts = build_facts(case.spec.get("facts"), registry.catalogue, case.spec.get("as_of", AS_OF),
                        case.spec.get("target"))
    return run_check(registry.checks[case.check], facts, settings)


def verify(case: Case, registry: Registry) -> CheckResult:
    """Run the case and check what it expects; CaseFailed says what differs."""
    result = run_case(case, registry)
    spec = case.spec
    _expect(str(result.status) == spec["expect"], f"status {result.status} (expected {spec['expect']}): "
            f"{result.summary}")
    if "summary_contains" in spec:
        _expect(spec["summary_contains"] in result.summary, f"summary {result.summary!r} lacks "
                f"{spec['summary_contains']!r}")
    if "severity" in spec:
        _expect(str(result.severity) == spec["severity"], f"severity {result.severity} (expected {spec['severity']})")
    if result.status in ("warn", "fail"):
        _expect(bool(result.remediation), "a warning or failure must say how to fix it")
    if "table_rows" in spec:
        table = result.evidence["table"]
        _expect(table is not None and table["total_rows"] == spec["table_rows"],
                f"evidence table {table and table['total_rows']} rows (expected {spec['table_rows']})")
    if "impact" in spec:
        _check_impact(result.impact, spec["impact"])
    for part in spec.get("links_contain") or []:
        urls = [link["url"] for link in result.links]
        _expect(any(part in url for url in urls), f"no link contains {part!r}: {urls}")
    return result


def coverage_problems(cases: Iterable[Case], check_ids: Iterable[str], registry: Registry) -> list[str]:
    """What a check's cases leave out: every check has a case file named after it, a passing and a failing (or
    warning) case unless it only informs, and a case whose fact failed unless it needs none."""
    by_check: dict[str, set[str]] = {}
    problems = []
    for case in cases:
        by_check.setdefault(case.check, set()).add(str(case.spec.get("expect")))
        if case.source is not None and case.source.stem != case.check:
            problems.append(f"{case.source.name} should be named after its check {case.check}")
    for check_id in check_ids:
        meta = registry.checks[check_id].meta
        statuses = by_check.get(check_id)
        if not statuses:
            problems.append(f"{check_id} has no case file")
            continue
        if meta.severity != "info" and not ({"pass", "fail"} <= statuses or {"pass", "warn"} <= statuses):
            problems.append(f"{check_id} needs at least a passing and a failing case, has {sorted(statuses)}")
        if "error" not in statuses and meta.requires:
            problems.append(f"{check_id} needs a case whose fact failed")
    return sorted(set(problems))


def _check_impact(impact: Mapping[str, Any] | None, expected: Mapping[str, Any] | None) -> None:
    if expected is None:
        _expect(impact is None, f"expected no impact, got {impact}")
        return
    if impact is None:
        raise CaseFailed("expected an impact, got none")
    for key, value in expected.items():
        if key == "basis_contains":
            for part in [value] if isinstance(value, str) else value:
                _expect(part in impact["basis"], f"{part!r} not in basis {impact['basis']!r}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            _expect(impact[key] is not None and math.isclose(impact[key], value, rel_tol=1e-3, abs_tol=0.01),
                    f"impact {key}: {impact[key]} != {value}")
        else:
            _expect(impact[key] == value, f"impact {key}: {impact[key]!r} != {value!r}")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise CaseFailed(message)
