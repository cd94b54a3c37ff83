"""Gatherers and the whole CLI replayed from vcrpy cassettes (record mode none: no network at all).

Re-record against the loopback stand-in:   pytest tests/test_cassettes.py --record-mode=rewrite
Re-record against a real project:          see README, "Cassettes".
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from auditor.audit import default_hooks, gather_facts
from auditor.cli import cli
from auditor.facts import GATHERERS
from auditor.registry import load_registry
from tests.conftest import ROOT, SECRET_PATTERN, fast_client


@pytest.mark.vcr
def test_every_gatherer_replays_from_cassette(recording_target):
    url, key, project = recording_target
    registry = load_registry(plugins=False)
    with fast_client(url, key, concurrency=1) as client:  # vcrpy cannot record concurrent requests
        facts = gather_facts(client, project, list(registry.checks.values()), default_hooks())
        hogql = client.stats.hogql_queries
    assert set(GATHERERS) <= set(facts.values), "every gatherer must be exercised by the cassette"
    not_ok = {name: f.error for name, f in facts.values.items() if f.status != "ok"}
    assert not not_ok
    assert hogql == 2  # the cube and the identity query; the budget is 3 per audit
    cube = facts.require("cube")
    assert cube["columns"][:4] == ["event", "lib", "lib_version", "events"] and cube["rows"]
    assert "api_token" not in facts.require("project")
    assert facts.target["organization_name"]


@pytest.mark.vcr
def test_cli_audit_end_to_end_on_cassette(recording_target, tmp_path, monkeypatch):
    url, key, project = recording_target
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", key)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["audit", "--host", url, "--project", project, "--out", "out", "--no-plugins",
                                       "--concurrency", "1"])
    assert result.exit_code == 1, result.output  # the demo customer is not ready (and has no Account Plan)
    run = json.loads((tmp_path / "out" / "report.json").read_text())
    for key_name in ("schema_version", "tool_version", "run_id", "started_at", "finished_at", "target", "scope",
                     "facts", "results", "categories", "readiness", "brief", "stats"):
        assert key_name in run
    assert set(run["target"]) >= {"host", "project_id", "project_name", "organization_id", "organization_name"}
    assert run["target"]["host"] == url.rstrip("/")
    assert run["scope"]["source"] == "billing"
    for r in run["results"]:
        assert set(r) >= {"id", "category", "severity", "status", "score", "title", "summary", "evidence",
                          "remediation", "docs_url", "error"}
        assert r["status"] in ("pass", "warn", "fail", "error", "skip", "manual", "info")
    assert {c["id"] for c in run["categories"]} == {"platform", "product_analytics"}
    assert run["readiness"]["ready"] is False and run["readiness"]["reasons"]
    assert run["stats"]["hogql_queries"] <= 3
    assert (tmp_path / "out" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "Not ready for handover" in result.output


def test_cassettes_hold_no_secrets():
    files = list((ROOT / "cassettes").rglob("*.yaml"))
    assert files, "cassettes are missing: record them (see README)"
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not SECRET_PATTERN.search(text), f"{path} contains a secret"
        assert not re.search(r"127\.0\.0\.1|localhost:\d+", text), f"{path} still names the loopback host"
        assert "api_token" not in text or '"api_token": "REDACTED"' in text
