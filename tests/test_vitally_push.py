"""Pushing to Vitally (issue 13, item 15): a dry run works without reaching Vitally and says what it could not
resolve; a push that cannot reach Vitally exits 3; --report-url takes only http(s) URLs."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from tests.vitally_standin import running_vitally

KEY = {"VITALLY_API_KEY": "vitally_test_key"}


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    monkeypatch.setattr("auditor.clients.vitally_api.default_sleep", lambda seconds: None)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert CliRunner().invoke(cli, ["audit", "--demo", "--format", "json", "--out", str(out), "-q"]).exit_code == 1
    return out / "report.json"


@pytest.fixture
def unreachable(tmp_path) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "auditor.toml"
    config.write_text(f'[vitally]\nregion = "http://127.0.0.1:{port}/resources"\n')
    return str(config)


def push(report, config: str, *extra: str, env: dict[str, str] | None = None, account: str = "org-1"):
    return CliRunner().invoke(cli, ["vitally", "push", str(report), "--account", account, "--config", config, *extra],
                              env=env or KEY, catch_exceptions=False)


def test_dry_run_shows_the_payloads_without_reaching_vitally(report, unreachable):
    result = push(report, unreachable, "--dry-run", "--report-url", "https://reports.example.com/a.html")
    assert result.exit_code == 0, result.output
    payloads = json.loads(result.stdout)  # stdout is the payloads alone
    assert [(p["method"], p["path"]) for p in payloads] == [("PUT", "/accounts/org-1"), ("POST", "/notes")]
    assert payloads[0]["body"]["traits"]["vitally.custom.posthogAuditReportUrl"] == "https://reports.example.com/a.html"
    assert payloads[1]["body"]["accountId"] == "org-1" and payloads[1]["body"]["subject"].startswith("PostHog audit")
    unresolved = result.stderr.strip().splitlines()
    assert len(unresolved) == 2 and all(u.startswith("posthog-auditor: dry run: could not resolve") for u in unresolved)
    assert "the Vitally account 'org-1'" in unresolved[0] and "could not reach Vitally" in unresolved[0]
    assert "whether this run's note already exists" in unresolved[1] and "shown as a new note" in unresolved[1]


def test_dry_run_against_a_reachable_vitally_resolves_everything(report, tmp_path):
    with running_vitally() as v:
        config = tmp_path / "auditor.toml"
        config.write_text(f'[vitally]\nregion = "{v.url}"\n')
        result = push(report, str(config), "--dry-run", env={"VITALLY_API_KEY": v.api_key},
                      account="0191b5c1-7a2e-0000-8c2d-4f0b3d1e9a77")
        assert result.exit_code == 0 and result.stderr == ""
        assert [p["path"] for p in json.loads(result.stdout)] == ["/accounts/vit-1", "/notes"]
        assert v.writes() == []


def test_a_push_that_cannot_reach_vitally_exits_3(report, unreachable):
    result = push(report, unreachable)
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posthog-auditor: error: could not reach Vitally at http://127.0.0.1")


def test_audit_push_that_cannot_reach_vitally_exits_3_and_keeps_the_reports(tmp_path, unreachable):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["audit", "--demo", "--out", str(out), "-q", "--config", unreachable,
                                      "--vitally-account", "vit-1", "--push-vitally"], env=KEY)
    assert result.exit_code == 3, result.output
    assert (out / "report.json").exists() and "Traceback" not in result.output


def test_audit_push_that_fails_still_prints_the_verdict_first(tmp_path, unreachable):
    """The audit stands: its verdict and reports are printed, then the push's failure is the last line."""
    result = CliRunner().invoke(cli, ["audit", "--demo", "--out", str(tmp_path / "out"), "--config", unreachable,
                                      "--vitally-account", "vit-1", "--push-vitally"], env=KEY)
    assert result.exit_code == 3
    assert result.stdout.startswith("Not ready for handover: readiness") and "Reports: " in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("posthog-auditor: error: could not reach Vitally")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "reports.example.com/a.html",
                                 "https://", "ftp://reports.example.com/a", "https://a.example/x y"])
def test_report_url_must_be_http(report, unreachable, url):
    result = push(report, unreachable, "--dry-run", "--report-url", url)
    assert result.exit_code == 2 and "must be an http(s) URL" in result.output
    audit = CliRunner().invoke(cli, ["audit", "--demo", "--report-url", url])
    assert audit.exit_code == 2 and "must be an http(s) URL" in audit.output
