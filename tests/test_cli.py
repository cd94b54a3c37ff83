"""The command line over the loopback stand-in: exit codes, one-line errors, facts round trip, rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from tests.standin import Fault


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def audit_args(standin, out: Path, *extra: str) -> list[str]:
    return ["audit", "--host", standin.url, "--project", standin.scenario.project_id, "--out", str(out),
            "--no-plugins", *extra]


@pytest.fixture(autouse=True)
def no_backoff_waits(monkeypatch):
    """Retries still happen (and are counted by the stand-in); only the waits between them are skipped."""
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)


@pytest.fixture
def key_env(standin):
    return {"POSTHOG_PERSONAL_API_KEY": standin.api_key}


def assert_one_line_error(result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert text in lines[0]
    assert "Traceback" not in result.output


def test_demo_writes_three_reports_and_exits_not_ready(tmp_path):
    result = invoke(["audit", "--demo", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "Not ready for handover" in result.output
    run = json.loads((tmp_path / "report.json").read_text())
    assert run["target"]["project_name"] == "Hedgebox (production)"
    statuses = {r["id"]: r["status"] for r in run["results"]}
    # The demo's planted problems are found.
    assert statuses["product_analytics.autocapture-tuned"] == "fail"
    assert statuses["product_analytics.illegal-distinct-ids"] == "fail"
    assert statuses["platform.sdk-versions"] == "fail"
    assert statuses["platform.reverse-proxy"] == "fail"
    assert statuses["session_replay.minimum-duration"] == "fail"
    assert statuses["session_replay.authorized-domains"] == "fail"
    assert statuses["feature_flags.server-local-evaluation"] == "fail"
    assert statuses["feature_flags.stale-rollouts"] == "warn"
    assert "Hedgebox" in (tmp_path / "report.md").read_text()


def test_live_audit_against_standin(standin, key_env, tmp_path):
    result = invoke(audit_args(standin, tmp_path), key_env)
    assert result.exit_code == 1, result.output
    run = json.loads((tmp_path / "report.json").read_text())
    local = {"attestations", "vitally"}  # not from PostHog: no file, no Vitally in this test
    assert all(f["status"] == "ok" for name, f in run["facts"].items() if name not in local), run["facts"]
    assert run["stats"]["hogql_queries"] == 1  # cube, identity and replay in one query: never more
    # Only GETs, plus POSTs to the query endpoint.
    assert {m for m, p in standin.requests if not p.endswith("/query/")} == {"GET"}


def test_format_subset(standin, key_env, tmp_path):
    result = invoke(audit_args(standin, tmp_path, "--format", "json,md"), key_env)
    assert result.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_save_facts_then_reaudit_offline(standin, key_env, tmp_path):
    facts = tmp_path / "facts.json"
    invoke(audit_args(standin, tmp_path / "a", "--save-facts", str(facts)), key_env)
    assert "phc_" not in facts.read_text() and "api_token" not in facts.read_text()
    before = len(standin.requests)
    result = invoke(["audit", "--from-facts", str(facts), "--out", str(tmp_path / "b"), "--no-plugins"])
    assert result.exit_code == 1
    assert len(standin.requests) == before  # no API call
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [(r["id"], r["status"]) for r in a["results"]] == [(r["id"], r["status"]) for r in b["results"]]
    assert a["readiness"]["score"] == b["readiness"]["score"]


def test_render_reads_report_json(tmp_path):
    invoke(["audit", "--demo", "--out", str(tmp_path), "--format", "json"])
    result = invoke(["render", str(tmp_path / "report.json"), "--format", "md"])
    assert result.exit_code == 0
    assert result.output.startswith("## PostHog audit: Hedgebox")
    result = invoke(["render", str(tmp_path / "report.json"), "--out", str(tmp_path / "html")])
    assert (tmp_path / "html" / "report.html").exists()


def test_render_refuses_a_non_report(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    assert_one_line_error(invoke(["render", str(bad)]), 2, "not a posthog-auditor report")
    bad.write_text("{not json")
    assert_one_line_error(invoke(["render", str(bad)]), 2, "not valid JSON")


def test_missing_key(standin, tmp_path):
    assert_one_line_error(invoke(audit_args(standin, tmp_path)), 2, "no API key: set POSTHOG_PERSONAL_API_KEY")


def test_api_key_env_option(standin, tmp_path):
    result = invoke(audit_args(standin, tmp_path, "--api-key-env", "MY_KEY"), {"MY_KEY": standin.api_key})
    assert result.exit_code == 1


def test_refused_key_is_exit_2(standin, tmp_path):
    result = invoke(audit_args(standin, tmp_path), {"POSTHOG_PERSONAL_API_KEY": "phx_wrong_wrong_wrong"})
    assert_one_line_error(result, 2, "refused (401)")
    assert not (tmp_path / "report.json").exists()


def test_unknown_project_is_exit_2(standin, key_env, tmp_path):
    args = ["audit", "--host", standin.url, "--project", "999", "--out", str(tmp_path), "--no-plugins"]
    assert_one_line_error(invoke(args, key_env), 2, "project 999 not found")


def test_unreachable_api_is_exit_3(tmp_path):
    args = ["audit", "--host", "http://127.0.0.1:9", "--project", "1", "--out", str(tmp_path), "--no-plugins"]
    result = invoke(args, {"POSTHOG_PERSONAL_API_KEY": "phx_x"})
    assert_one_line_error(result, 3, "could not reach the PostHog API")


def test_bad_host_and_missing_project(tmp_path):
    env = {"POSTHOG_PERSONAL_API_KEY": "phx_x"}
    assert_one_line_error(invoke(["audit", "--host", "posthog", "--project", "1"], env), 2, "host must be")
    assert_one_line_error(invoke(["audit", "--host", "eu"], env), 2, "no project")
    assert_one_line_error(invoke(["audit", "--project", "1"], env), 2, "no PostHog host")
    assert_one_line_error(invoke(["audit", "--demo", "--format", "pdf"]), 2, "unknown format 'pdf'")
    assert_one_line_error(invoke(["audit", "--demo", "--check", "nope.x"]), 2, "no such check: nope.x")
    assert_one_line_error(invoke(["audit", "--demo", "--paying-for", "crm"]), 2, "unknown product 'crm'")


def test_missing_scope_makes_checks_error_without_a_request(standin, key_env, tmp_path):
    standin.scenario.key_scopes = ["project:read", "query:read", "organization:read", "organization_member:read"]
    result = invoke(audit_args(standin, tmp_path), key_env)
    assert result.exit_code == 1
    run = json.loads((tmp_path / "report.json").read_text())
    assert run["facts"]["actions"] == {"status": "error", "error": "API key missing scope action:read"}
    assert standin.count(r"/actions/") == 0  # pre-flight knew the scope was missing
    actions = next(r for r in run["results"] if r["id"] == "product_analytics.actions-defined")
    assert actions["status"] == "error" and "missing scope action:read" in actions["summary"]
    pa = next(c for c in run["categories"] if c["id"] == "product_analytics")
    assert pa["score"] is None and pa["state"] == "unknown"
    assert run["readiness"]["ready"] is False


def test_a_failing_endpoint_becomes_an_error_not_a_crash(standin, key_env, tmp_path):
    standin.faults.append(Fault(r"/dashboards/", status=500, times=99))
    result = invoke(audit_args(standin, tmp_path), key_env)
    assert result.exit_code == 1
    run = json.loads((tmp_path / "report.json").read_text())
    assert run["facts"]["dashboards"]["status"] == "error"
    dash = next(r for r in run["results"] if r["id"] == "product_analytics.dashboards-in-use")
    assert dash["status"] == "error" and "500" in dash["error"]


def test_config_overrides_a_threshold(standin, key_env, tmp_path):
    config = tmp_path / "auditor.toml"
    config.write_text('[checks."product_analytics.autocapture-tuned"]\nmax_share = 0.9\n[gate]\nmin_readiness = 10\n')
    result = invoke(audit_args(standin, tmp_path / "out", "--config", str(config)), key_env)
    run = json.loads((tmp_path / "out" / "report.json").read_text())
    statuses = {r["id"]: r["status"] for r in run["results"]}
    assert statuses["product_analytics.autocapture-tuned"] == "pass"
    assert run["gate"]["min_readiness"] == 10
    assert result.exit_code == 1  # still no Account Plan


@pytest.mark.parametrize(("content", "message"), [
    ("[checks.nope]\nx = 1\n", "no such check"),
    ('[checks."platform.reverse-proxy"]\npass_ratio = 0.9\n', "has no threshold 'pass_ratio'"),
    ('[checks."platform.reverse-proxy"]\npass_share = "high"\n', "must be a float"),
    ("[gate]\nmin_readiness = 180\n", "between"),
    ("[weights]\nmarketing = 3\n", "unknown category"),
    ("[surprise]\n", "unknown section"),
    ("[limits]\nhogql = 0\n", "limits.hogql must be between"),
    ("[limits]\nbursty = 3\n", "unknown setting limits.bursty"),
    ("[audit]\nmax_retries = 99\n", "max_retries must be an integer"),
    ("[audit]\nread_timeout = 0\n", "read_timeout must be between"),
    ("this is = = not toml", "not valid TOML"),
])
def test_bad_config_is_one_line(tmp_path, content, message):
    config = tmp_path / "auditor.toml"
    config.write_text(content)
    assert_one_line_error(invoke(["audit", "--demo", "--config", str(config), "--out", str(tmp_path)]), 2, message)


def test_missing_config_file(tmp_path):
    assert_one_line_error(invoke(["audit", "--demo", "--config", str(tmp_path / "none.toml")]), 2, "not found")


def test_reports_are_replaced_atomically(tmp_path):
    (tmp_path / "report.html").write_text("old")
    invoke(["audit", "--demo", "--out", str(tmp_path)])
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o644  # readable by whoever it is shared with


def test_checks_lists_every_check_with_its_source():
    result = invoke(["checks", "--format", "json", "--no-plugins"])
    rows = json.loads(result.output)
    assert len(rows) == 49
    assert {r["source"] for r in rows} == {"checks"}
    table = invoke(["checks", "--no-plugins"]).output
    assert "platform.reverse-proxy" in table and "minor" in table


def test_a_query_that_times_out_is_rerun_over_a_shorter_window(standin, key_env, tmp_path):
    standin.scenario.timeout_windows = {30}  # anything over 30 days is too slow: the combined query, cube, identity
    result = invoke(audit_args(standin, tmp_path), key_env)
    assert result.exit_code == 1
    run = json.loads((tmp_path / "report.json").read_text())
    assert run["facts"]["cube"]["status"] == "ok" and run["facts"]["identity"]["status"] == "ok"
    posts = [p for m, p in standin.requests if m == "POST"]
    # The combined query timed out, so each part ran alone: cube and identity timed out once (not retried as is)
    # and ran over 7 days; replay (90 days) answered.
    assert len(posts) == 6
    custom = next(r for r in run["results"] if r["id"] == "product_analytics.custom-events")
    assert "run over the last 7 days" in custom["evidence"]["metrics"]["cube_window"]
