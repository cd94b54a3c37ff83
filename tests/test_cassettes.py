"""Gatherers and the whole CLI replayed from vcrpy cassettes (record mode none: no network at all).

Re-record against the loopback stand-in:   pytest tests/test_cassettes.py --record-mode=rewrite
Re-record against a real project:          see README, "Cassettes".
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from auditor.audit import evaluate, gather_facts
from auditor.cli import cli
from auditor.config import Settings
from auditor.facts import GATHERERS
from auditor.registry import load_registry
from tests.conftest import FIXED_NOW, ROOT, SECRET_PATTERN, fast_client
from tests.scenarios import THROWAWAY_IDS, WEB_EXCEPTIONS


@pytest.mark.vcr
def test_every_gatherer_replays_from_cassette(recording_target):
    url, key, project = recording_target
    registry = load_registry(plugins=False)
    with fast_client(url, key, concurrency=1) as client:  # vcrpy cannot record concurrent requests
        facts = gather_facts(client, project, list(registry.checks.values()), registry.catalogue)
        hogql = client.stats.hogql_queries
    assert set(GATHERERS) <= set(facts.values), "every gatherer must be exercised by the cassette"
    not_ok = {name: f.error for name, f in facts.values.items() if f.status != "ok"}
    assert not not_ok
    assert hogql == 1  # the cube, the identity and the replay parts in one query: the whole budget
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
    assert {c["id"] for c in run["categories"]} >= {"platform", "product_analytics", "session_replay", "feature_flags"}
    assert run["readiness"]["ready"] is False and run["readiness"]["reasons"]
    assert run["stats"]["hogql_queries"] == 1
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


def audit_recorded(recording_target) -> dict:
    """Gather through the real client (cassette on replay), then judge as of the day the scenario was made."""
    url, key, project = recording_target
    registry = load_registry(plugins=False)
    checks = list(registry.checks.values())
    with fast_client(url, key, concurrency=1) as client:
        facts = gather_facts(client, project, checks, registry.catalogue)
    facts.as_of = FIXED_NOW
    run = evaluate(facts, registry, checks, Settings())
    return {r["id"]: r for r in run["results"]} | {"_run": run}


@pytest.mark.vcr
@pytest.mark.parametrize("scenario", ["privacy_risky_replay"], indirect=True)
def test_privacy_risky_replay_project(recording_target, scenario):
    results = audit_recorded(recording_target)
    masking = results["session_replay.privacy-masking"]
    assert masking["status"] == "fail" and "Input masking is turned off" in masking["summary"]
    assert results["session_replay.authorized-domains"]["status"] == "fail"
    assert results["session_replay.minimum-duration"]["status"] == "fail"
    assert results["session_replay.recording-controls"]["status"] == "warn"
    assert results["session_replay.short-recordings"]["status"] == "fail"
    assert results["session_replay.recording-active"]["status"] == "pass"
    run = results["_run"]
    assert any("privacy-masking" in reason for reason in run["readiness"]["reasons"])  # a blocker


@pytest.mark.vcr
@pytest.mark.parametrize("scenario", ["flag_heavy_throwaway_ids"], indirect=True)
def test_flag_heavy_project_with_throwaway_ids(recording_target, scenario):
    results = audit_recorded(recording_target)
    volume = results["feature_flags.call-volume"]
    assert volume["status"] == "fail" and "throwaway ids" in volume["summary"]
    assert volume["evidence"]["metrics"]["ids_seen_only_in_flag_calls"] == THROWAWAY_IDS
    assert results["feature_flags.server-local-evaluation"]["status"] == "fail"
    stale = results["feature_flags.stale-rollouts"]
    assert stale["status"] == "warn"
    assert {row[0] for row in stale["evidence"]["table"]["rows"]} == {"storage-quota-v2", "dark-mode"}
    calls = {row[0]: row[3] for row in stale["evidence"]["table"]["rows"]}
    assert calls == {"storage-quota-v2": 24_000, "dark-mode": 0}  # still called on every request
    assert {row[0] for row in results["feature_flags.uncalled-flags"]["evidence"]["table"]["rows"]} == \
        {"dark-mode", "legacy-export"}
    assert results["feature_flags.experiments"]["status"] == "warn"


@pytest.mark.vcr
@pytest.mark.parametrize("scenario", ["warehouse_trouble"], indirect=True)
def test_warehouse_with_large_full_refresh_and_failed_schema(recording_target, scenario):
    results = audit_recorded(recording_target)
    healthy = results["data_warehouse.sources-healthy"]
    assert healthy["status"] == "fail"
    # Invoice errors, Customer hit the billing limit, app_events (hourly) last synced 3 h ago is late.
    assert {row[1] for row in healthy["evidence"]["table"]["rows"]} == {"Error", "Billing limits",
                                                                        "late (syncs every 1hour)"}
    full = results["data_warehouse.full-refresh-on-large-tables"]
    assert full["status"] == "fail"
    rows = {row[0]: row for row in full["evidence"]["table"]["rows"]}
    assert rows["Stripe · app_events"][1:4] == [30_000_000, "1hour", 30_000_000 * 720]
    assert rows["Stripe · app_events"][4] == "none found"
    assert rows["Stripe · Charge"][4] == "created"  # the incremental field to switch to
    assert results["data_warehouse.sync-frequency"]["status"] == "warn"


@pytest.mark.vcr
@pytest.mark.parametrize("scenario", ["minified_exceptions"], indirect=True)
def test_web_app_with_minified_unresolved_exceptions(recording_target, scenario):
    results = audit_recorded(recording_target)
    assert results["error_tracking.exceptions-captured"]["status"] == "pass"
    maps = results["error_tracking.source-maps"]
    assert maps["status"] == "fail" and f"{WEB_EXCEPTIONS} web exceptions" in maps["summary"]
    assert results["error_tracking.issues-triaged"]["status"] == "fail"


@pytest.mark.vcr
def test_every_vitally_call_replays_from_cassette(vitally_target, tmp_path):
    from auditor.clients.vitally_api import VitallyClient
    from auditor.outputs.vitally import VitallySettings, push_run, read_account

    base, key = vitally_target
    client = VitallyClient(base, key, sleep=lambda s: None)
    accounts = client.accounts("active")
    assert len(accounts) == 5
    info = read_account(client, "0191b5c1-7a2e-0000-8c2d-4f0b3d1e9a77", VitallySettings(),
                        load_registry(plugins=False).catalogue)
    assert info["paid_products"] == ["product_analytics", "session_replay", "feature_flags"]
    run = json.loads((ROOT / "tests" / "data" / "run_for_vitally.json").read_text())
    push_run(client, run, "vit-1", "https://reports.example.com/r.html")
    push_run(client, run, "vit-1", "https://reports.example.com/r.html")  # an update, not a second note
    assert [w["method"] + " " + w["path"] for w in client.writes] == [
        "PUT /accounts/vit-1", "POST /notes", "PUT /accounts/vit-1", "PUT /notes/note-2"]
