"""Every check against the cases in tests/check_cases/<check id>.yml, with no HTTP, through the same kit plugin
authors use (auditor/testing.py, where the case format is written down)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.facts import Facts
from auditor.registry import load_registry
from auditor.testing import AS_OF, TARGET, Case, coverage_problems, load_cases, run_case, verify
from auditor.testing import build_facts as kit_build_facts

CASES_DIR = Path(__file__).parent / "check_cases"
REGISTRY = load_registry(plugins=False)
CASES = load_cases(CASES_DIR)


def build_facts(given: dict, as_of: str = AS_OF, target: dict | None = None) -> Facts:
    """Facts as a case gives them, completed with the built-in catalogue (other tests build facts this way)."""
    return kit_build_facts(given, REGISTRY.catalogue, as_of, target)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case: Case) -> None:
    verify(case, REGISTRY)


def test_every_check_has_case_file_with_pass_and_fail() -> None:
    assert coverage_problems(CASES, REGISTRY.checks, REGISTRY) == []


def test_the_kit_fails_a_case_that_does_not_hold() -> None:
    """A case whose expectation is wrong fails, and says why (the kit cannot pass everything)."""
    from auditor.testing import CaseFailed

    case = next(c for c in CASES if c.spec["expect"] == "pass")
    wrong = Case(case.check, case.name, {**case.spec, "expect": "fail"})
    with pytest.raises(CaseFailed, match=r"status pass \(expected fail\)"):
        verify(wrong, REGISTRY)
    assert coverage_problems([case], [case.check], REGISTRY)  # one passing case covers too little


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_judged_case_links_to_where_it_is_fixed(case: Case) -> None:
    """Each case's finding, once judged, links to the places checks/links.py names for its check, in the audited
    project; a finding that did not apply or could not be judged links nowhere."""
    from checks.links import FIX_LINKS, absolute

    target = case.spec.get("target") or TARGET
    result = run_case(case, REGISTRY)
    urls = [link["url"] for link in result.links]
    if result.status in ("skip", "error"):
        assert urls == []
        return
    for _, path in FIX_LINKS.get(case.check, ()):
        assert absolute(target["host"], target["project_id"], path) in urls
    assert all(url.startswith(target["host"]) for url in urls)
