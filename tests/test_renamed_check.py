"""A renamed check keeps its past (issue 14, item 5): its former id, in `aliases`, still names it in the history,
in the settings file and on the command line."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from auditor.config import ConfigError, load_settings
from auditor.model import Check
from auditor.outputs import history
from auditor.registry import Registry, builtin_registry

OLD, NEW = "platform.reverse-proxy", "platform.proxy-in-front"


@pytest.fixture(scope="module")
def renamed() -> Registry:
    """The built-in checks, with the reverse-proxy check renamed (as a later release might)."""
    base = builtin_registry()
    registry = Registry(catalogue=base.catalogue.copy())
    registry.catalogue.required = ()
    for c in base.checks.values():
        registry.add(Check(replace(c.meta, id=NEW, aliases=(OLD,)), c.fn) if c.id == OLD else c)
    return registry


def test_the_former_id_selects_and_configures_the_check(renamed, tmp_path):
    assert [c.id for c in renamed.select([OLD])] == [NEW]
    config = tmp_path / "auditor.toml"
    config.write_text(f'[checks."{OLD}"]\npass_share = 0.5\n')
    settings = load_settings(str(config), renamed.checks, renamed.catalogue)
    assert settings.thresholds(renamed.checks[NEW])["pass_share"] == 0.5
    config.write_text('[checks."platform.no-such-check"]\npass_share = 0.5\n')
    with pytest.raises(ConfigError, match="no such check"):
        load_settings(str(config), renamed.checks, renamed.catalogue)


def test_no_two_checks_may_claim_the_same_id(renamed):
    taken = next(iter(renamed.checks.values()))
    with pytest.raises(ValueError, match="already registered"):
        renamed.add(Check(replace(taken.meta, id="platform.another", aliases=(OLD,)), taken.fn))


def run(run_id: str, started_at: str, check_id: str, status: str) -> dict:
    return {"run_id": run_id, "started_at": started_at, "mode": "handover",
            "target": {"organization_id": "org-1", "project_id": "4242"},
            "readiness": {"score": 80.0, "ready": False, "reasons": []}, "categories": [],
            "results": [{"id": check_id, "category": "platform", "severity": "major", "status": status,
                         "title": "Reverse proxy in front of PostHog"}]}


def test_history_recorded_under_the_former_id_carries_on(renamed, tmp_path):
    history.record(tmp_path, run("r1", "2026-11-01T10:00:00+00:00", OLD, "pass"))
    later = run("r2", "2026-11-08T10:00:00+00:00", NEW, "fail")
    assert history.changes(tmp_path, copy.deepcopy(later))["regressions"] == []  # without the renames: unseen
    regressions = history.changes(tmp_path, later, renamed=renamed.renamed())["regressions"]
    assert regressions == [f"Reverse proxy in front of PostHog ({NEW}) went from pass to fail"]
