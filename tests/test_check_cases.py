"""Every check against the cases in tests/check_cases/<check id>.yml, with no HTTP.

A case file:

    check: platform.reverse-proxy
    cases:
      - name: all web traffic proxied
        facts:                        # fact name -> value (status ok), or {$status: error|unavailable, $error: …}
          cube: [{event: $pageview, lib: web, events: 100, proxied: 100}]   # HogQL facts: rows as mappings
        thresholds: {pass_share: 0.9} # optional overrides
        expect: pass                  # the status
        summary_contains: "100%"      # optional
        severity: info                # optional: the effective severity
        impact:                       # optional: the finding's cost (null: it has none); numbers to 0.01
          units_per_month: 400
          unit: event
          usd_per_month: 0.02         # null: not priced
          basis_contains: "× $0.00005"
        links_contain: ["/project/4242/settings/project-autocapture#autocapture"]   # optional: URL parts
        target: {host: https://eu.posthog.com, project_id: "7"}   # optional: the audited project
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditor.config import Settings
from auditor.facts import Fact, Facts
from auditor.queries import CUBE_COLUMNS, IDENTITY_COLUMNS, REPLAY_COLUMNS
from auditor.registry import load_registry
from auditor.runner import run_check

CASES_DIR = Path(__file__).parent / "check_cases"
AS_OF = "2026-11-01T12:00:00+00:00"
TARGET = {"host": "https://us.posthog.com", "project_id": "4242"}  # where links point, unless a case says
REGISTRY = load_registry(plugins=False)
QUERY_COLUMNS = {"cube": CUBE_COLUMNS, "identity": IDENTITY_COLUMNS, "replay": REPLAY_COLUMNS}


def build_facts(spec: dict[str, Any], as_of: str = AS_OF, target: dict[str, Any] | None = None) -> Facts:
    values: dict[str, Fact] = {}
    for name, value in (spec or {}).items():
        if isinstance(value, dict) and "$status" in value:
            values[name] = Fact(value["$status"], None, value.get("$error", "injected"))
            continue
        if name in QUERY_COLUMNS and isinstance(value, list):
            columns = QUERY_COLUMNS[name]
            value = {"columns": list(columns), "rows": [[row.get(c) for c in columns] for row in value],
                     "truncated": False, "limit": 50000}
        values[name] = Fact("ok", value)
    facts = Facts(values=values, as_of=datetime.fromisoformat(as_of),
                  target=dict(TARGET if target is None else target))
    scope = facts.get("scope")
    if isinstance(scope, dict):  # as the engine does: what is used, and every product's title, from the catalogue
        catalogue = REGISTRY.catalogue
        scope.setdefault("used", catalogue.used(facts))
        scope.setdefault("products", {p: catalogue.title(p) for p in catalogue.payable})
    return facts


def load_cases() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in doc["cases"]:
            params.append(pytest.param(doc["check"], case, id=f"{doc['check']}::{case['name']}"))
    return params


@pytest.mark.parametrize(("check_id", "case"), load_cases())
def test_case(check_id: str, case: dict[str, Any]) -> None:
    check = REGISTRY.checks[check_id]
    settings = Settings()
    if case.get("thresholds"):
        settings.check_overrides[check_id] = case["thresholds"]
    facts = build_facts(case.get("facts") or {}, case.get("as_of", AS_OF), case.get("target"))
    result = run_check(check, facts, settings)
    assert str(result.status) == case["expect"], f"{result.status}: {result.summary}"
    if "summary_contains" in case:
        assert case["summary_contains"] in result.summary
    if "severity" in case:
        assert str(result.severity) == case["severity"]
    if result.status in ("warn", "fail"):
        assert result.remediation, "a warning or failure must say how to fix it"
    if "table_rows" in case:
        assert result.evidence["table"] is not None
        assert result.evidence["table"]["total_rows"] == case["table_rows"]
    if "impact" in case:
        check_impact(result.impact, case["impact"])
    for part in case.get("links_contain") or []:
        urls = [link["url"] for link in result.links]
        assert any(part in url for url in urls), f"no link contains {part!r}: {urls}"


def check_impact(impact: dict[str, Any] | None, expected: dict[str, Any] | None) -> None:
    if expected is None:
        assert impact is None, f"expected no impact, got {impact}"
        return
    assert impact is not None, "expected an impact"
    for key, value in expected.items():
        if key == "basis_contains":
            for part in [value] if isinstance(value, str) else value:
                assert part in impact["basis"], f"{part!r} not in basis {impact['basis']!r}"
        elif isinstance(value, int | float) and not isinstance(value, bool):
            assert impact[key] == pytest.approx(value, rel=1e-3, abs=0.01), f"{key}: {impact[key]} != {value}"
        else:
            assert impact[key] == value, f"{key}: {impact[key]!r} != {value!r}"


def test_every_check_has_case_file_with_pass_and_fail() -> None:
    covered: dict[str, set[str]] = {}
    for path in CASES_DIR.glob("*.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert path.stem == doc["check"], f"{path.name} should be named after its check"
        covered[doc["check"]] = {c["expect"] for c in doc["cases"]}
    for check_id, check in REGISTRY.checks.items():
        statuses = covered.get(check_id)
        assert statuses, f"{check_id} has no case file"
        if check.meta.severity != "info":
            assert {"pass", "fail"} <= statuses or {"pass", "warn"} <= statuses, \
                f"{check_id} needs at least a passing and a failing case, has {sorted(statuses)}"
        assert "error" in statuses or check.meta.requires == (), f"{check_id} needs a case whose fact failed"


@pytest.mark.parametrize(("check_id", "case"), load_cases())
def test_every_judged_case_links_to_where_it_is_fixed(check_id: str, case: dict[str, Any]) -> None:
    """Each case's finding, once judged, links to the places checks/links.py names for its check, in the audited
    project; a finding that did not apply or could not be judged links nowhere."""
    from checks.links import FIX_LINKS, absolute

    settings = Settings()
    if case.get("thresholds"):
        settings.check_overrides[check_id] = case["thresholds"]
    target = case.get("target") or TARGET
    result = run_check(REGISTRY.checks[check_id], build_facts(case.get("facts") or {}, case.get("as_of", AS_OF),
                                                              case.get("target")), settings)
    urls = [link["url"] for link in result.links]
    if result.status in ("skip", "error"):
        assert urls == []
        return
    for _, path in FIX_LINKS.get(check_id, ()):
        assert absolute(target["host"], target["project_id"], path) in urls
    assert all(url.startswith(target["host"]) for url in urls)
