"""Papercuts a user meets on the command line (issue 13): pipes, help text, option checks, report wording."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.config import Settings
from auditor.outputs.render import render_html, render_markdown
from auditor.outputs.vitally import note_for, own_traits
from tests.conftest import ROOT


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def test_output_into_a_closed_pipe_exits_quietly():
    """`posthog-auditor checks | head`: the reader is gone before anything is written (its end of the pipe is
    closed first, so the outcome never depends on timing)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "auditor.cli", "checks", "--no-plugins"], stdout=write_end,
                              stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
    finally:
        os.close(write_end)
    assert proc.stderr.decode() == ""  # no "error: Broken pipe", no "Exception ignored"
    assert proc.returncode == 141  # 128 + SIGPIPE, what `set -o pipefail` sees from any tool cut off by head


def test_concurrency_default_has_one_source():
    default = Settings().concurrency
    help_text = " ".join(invoke(["audit", "--help"]).output.split())
    assert f"Parallel requests [default: {default}," in help_text
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"`--concurrency N` bounds requests in flight \(default {default};", readme)
    assert f"concurrency = {default}" in (ROOT / "auditor" / "config.py").read_text()  # the documented example


def test_unknown_category_names_the_valid_ones():
    result = invoke(["audit", "--demo", "--category", "nope"])
    assert result.exit_code == 2
    assert result.output.strip() == ("posthog-auditor: error: unknown category 'nope' (choose from platform, "
                                     "product_analytics, session_replay, feature_flags, surveys, data_warehouse, "
                                     "error_tracking, handover)")


def test_markdown_puts_each_regression_on_its_own_line(demo_run):
    run = {**demo_run, "changes": {"previous_started_at": "2026-10-01T00:00:00+00:00", "previous_readiness": 80.0,
                                   "readiness_delta": -9.0, "category_deltas": {},
                                   "regressions": ["Reverse proxy (platform.reverse-proxy) went from pass to fail",
                                                   "Session replay fell 20 points (80 → 60)"]}}
    lines = render_markdown(run).splitlines()
    since = next(i for i, ln in enumerate(lines) if ln.startswith("**Since the last audit on 2026-10-01**"))
    assert lines[since].endswith("readiness 80 → 71")
    assert lines[since + 1] == ""
    assert lines[since + 2] == "- ↓ Reverse proxy (platform.reverse-proxy) went from pass to fail"
    assert lines[since + 3] == "- ↓ Session replay fell 20 points (80 → 60)"
    assert lines[since + 4] == ""
    quiet = {**run, "changes": {**run["changes"], "regressions": []}}
    assert "readiness 80 → 71. No regressions." in render_markdown(quiet)


def test_the_handover_category_reads_the_same_in_html_markdown_and_vitally(demo_run):
    handover = next(c for c in demo_run["categories"] if c["id"] == "handover")
    shown = f"{handover['score']:.0f}"
    html = render_html(demo_run)
    table = re.search(r"<td>Handover \(gate only\)</td><td class=\"num\">([^<]+)</td>", html)
    assert table and table.group(1) == shown
    assert re.search(rf">Handover \(gate only\)</text>.*?>{shown}</text>", html, re.S)  # the bar chart's row
    assert f"| Handover (gate only) | {shown} | yes |" in render_markdown(demo_run)
    note = note_for(demo_run, "vit-1", None)["note"]
    assert f"Handover (gate only): {shown}" in note
    assert f"{own_traits(demo_run, None)['vitally.custom.posthogAuditHandoverScore']:.0f}" == shown


def test_a_subset_run_gives_no_readiness_verdict(tmp_path):
    out = tmp_path / "out"
    result = invoke(["audit", "--demo", "--check", "platform.reverse-proxy", "--out", str(out)])
    assert result.exit_code == 1  # never "ready" on a subset
    assert result.output.startswith("Subset of checks (1 of 49): no readiness verdict for Hedgebox (production).")
    assert "0/100" not in result.output
    run = json.loads((out / "report.json").read_text())
    assert run["selection"] == {"checks": ["platform.reverse-proxy"], "of": 49}
    assert run["readiness"]["score"] is None and run["readiness"]["ready"] is False
    assert [r["status"] for r in run["results"]] == ["fail"]  # the check itself still reports what it found
    md = (out / "report.md").read_text()
    assert md.startswith("## PostHog audit: Hedgebox (production) — subset of checks (1 of 49), no verdict")
    assert "0/100" not in md
    assert "Subset of checks (1 of 49): no readiness verdict</h2>" in (out / "report.html").read_text()
    refused = invoke(["vitally", "push", str(out / "report.json"), "--account", "x", "--dry-run"],
                     {"VITALLY_API_KEY": "k"})
    assert refused.exit_code == 2 and "covers a subset of checks" in refused.output
    pushed = invoke(["audit", "--demo", "--category", "platform", "--vitally-account", "x", "--push-vitally"])
    assert pushed.exit_code == 2 and "--push-vitally needs a full audit" in pushed.output


def test_a_full_run_still_has_its_verdict(demo_run):
    assert "selection" not in demo_run and demo_run["readiness"]["score"] is not None


def audit_standin(standin, out, *extra: str):
    return invoke(["audit", "--host", standin.url, "--project", "4242", "--out", str(out), "--no-plugins", *extra],
                  {"POSTHOG_PERSONAL_API_KEY": standin.api_key})


@pytest.fixture
def no_backoff_waits(monkeypatch):
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)


def test_a_billing_500_is_an_error_not_no_billing_access(standin, tmp_path, no_backoff_waits):
    from tests.standin import Fault

    standin.faults.append(Fault(r"^/api/billing/", status=500, times=99))
    assert audit_standin(standin, tmp_path).exit_code == 1
    run = json.loads((tmp_path / "report.json").read_text())
    assert run["facts"]["billing"]["status"] == "error"
    used = next(r for r in run["results"] if r["id"] == "handover.paid-products-used")
    assert used["status"] == "error" and "Billing could not be read (PostHog answered 500" in used["summary"]
    assert run["scope"]["note"].startswith("Billing could not be read (PostHog answered 500")
    assert "no billing access" not in json.dumps(run).lower()
    assert any("paid-products-used" in r or "Billing could not be read" in r for r in run["readiness"]["reasons"])


def test_a_key_without_billing_access_still_says_so(standin, tmp_path, no_backoff_waits):
    standin.scenario.key_scopes = [s for s in standin.scenario.key_scopes if s != "billing:read"] \
        if "*" not in standin.scenario.key_scopes else ["project:read", "query:read", "organization:read",
                                                        "organization_member:read"]
    assert audit_standin(standin, tmp_path).exit_code == 1
    run = json.loads((tmp_path / "report.json").read_text())
    used = next(r for r in run["results"] if r["id"] == "handover.paid-products-used")
    assert used["status"] == "manual" and "no billing access" in used["summary"]
    assert run["scope"]["note"].startswith("No billing access")


def test_after_the_7_day_fallback_summaries_say_7_days(standin, tmp_path, no_backoff_waits):
    standin.scenario.timeout_windows = {30}  # the cube and identity queries over 30 days are too slow
    assert audit_standin(standin, tmp_path).exit_code == 1
    run = json.loads((tmp_path / "report.json").read_text())
    assert run["facts"]["cube"]["window_days"] == 7
    hogql_based = [r for r in run["results"] if r["status"] != "error"
                   and any(name in ("cube", "identity") for name in _reads(r["id"]))]
    assert hogql_based
    for r in hogql_based:
        assert "30 days" not in r["summary"] and "30 d " not in r["summary"], (r["id"], r["summary"])
    flowing = next(r for r in run["results"] if r["id"] == "platform.events-flowing")
    assert "in 7 days)" in flowing["summary"], flowing["summary"]
    assert "Event mix, last 7 days" in (tmp_path / "report.html").read_text()
    # Checks over facts that kept their window are untouched (recordings: 90 days, judged over 30).
    replay = next(r for r in run["results"] if r["id"] == "session_replay.short-recordings")
    assert run["facts"]["replay"]["window_days"] == 90 and "7 days" not in replay["summary"]


def _reads(check_id: str) -> tuple[str, ...]:
    from auditor.registry import load_registry

    meta = load_registry(plugins=False).checks[check_id].meta
    return meta.requires + meta.uses


def test_with_the_full_window_summaries_are_unchanged(demo_run):
    flowing = next(r for r in demo_run["results"] if r["id"] == "platform.events-flowing")
    assert "in 30 days)" in flowing["summary"] and demo_run["facts"]["cube"]["window_days"] == 30


def test_findings_put_what_blocks_the_handover_first(demo_run):
    html = render_html(demo_run)

    def at(check_id: str) -> int:
        return html.index(f'id="4242-{check_id}"')

    in_scope_failures = [r["id"] for r in demo_run["results"] if r["status"] in ("fail", "warn")
                         and r["category"] in ("platform", "product_analytics", "session_replay", "feature_flags")]
    passes = [r["id"] for r in demo_run["results"] if r["status"] == "pass"]
    out_of_scope = ["data_warehouse.sources-healthy", "error_tracking.source-maps", "surveys.response-rate"]
    plan, invoices, checklist = "handover.account-plan", "handover.invoices-paid", "handover.attestations"
    # The in-scope blocker comes first, and the "needs a person" blockers with it, not under 20 passes.
    assert at(plan) < at(invoices) < at(checklist) < min(at(i) for i in in_scope_failures)
    assert max(at(i) for i in in_scope_failures) < min(at(i) for i in out_of_scope) < min(at(i) for i in passes)
    # Within the rest: by severity, then status (a major warning before a minor failure).
    assert at("platform.sdk-versions") < at("platform.ingestion-warnings") < at("platform.reverse-proxy")
    headings = re.findall(r'<h3 style="margin-top:20px" id="4242-(\w+)">', html)
    assert headings == ["blocking", "to_fix", "out_of_scope", "pass", "info"]
    md = render_markdown(demo_run)
    order = [md.index(f"(`{i}`)") for i in (plan, invoices, "platform.sdk-versions", "platform.reverse-proxy",
                                            "data_warehouse.sources-healthy")]
    assert order == sorted(order)
    assert md.index("**Blocks the handover**") < md.index("**To fix**") < md.index("**Not paid for")


def test_finding_order_unit():
    from auditor.outputs.render import ordered_findings

    def r(check_id, status, severity):
        return {"id": check_id, "category": check_id.split(".")[0], "status": status, "severity": severity}

    run = {"mode": "handover", "categories": [{"id": "platform", "in_scope": True},
                                              {"id": "surveys", "in_scope": False},
                                              {"id": "handover", "in_scope": True}],
           "results": [r("platform.a", "fail", "minor"), r("platform.b", "error", "blocker"),
                       r("surveys.c", "fail", "blocker"), r("platform.d", "pass", "blocker"),
                       r("platform.e", "fail", "blocker"), r("handover.f", "manual", "major"),
                       r("platform.g", "warn", "major"), r("plugins.h", "error", "info")]}
    got = [(key, [x["id"] for x in items]) for key, _, items in ordered_findings(run)]
    assert got == [("blocking", ["platform.e", "platform.b", "handover.f"]),
                   ("to_fix", ["platform.g", "platform.a", "plugins.h"]),
                   ("out_of_scope", ["surveys.c"]), ("pass", ["platform.d"])]
    health = [(key, [x["id"] for x in items]) for key, _, items in ordered_findings({**run, "mode": "health"})]
    assert health[0] == ("blocking", ["platform.e", "platform.b"]) and ("manual", ["handover.f"]) in health
