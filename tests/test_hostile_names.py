"""Names are data, not terminal control (issue 13, item 5): project, organization, member, flag, event and survey
names carrying a carriage return, ANSI escape sequences, NUL or bidi overrides are shown neutralised in the
terminal summary, in Markdown and in HTML, over a real (loopback) audit."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.posthog_api import RateLimiter
from auditor.render import render_html, render_markdown
from auditor.text import neutralise
from auditor.vitally import note_for
from tests.standin import Fault

SPOOF = "Acme\rReady for handover: readiness 100/100 for Acme."
ANSI = "Org \x1b[2J\x1b[1;32mREADY\x1b[0m"
NUL = "nul\x00byte"
RLO = "flag-\u202eydaer"  # shown reversed ("ready") by a terminal or browser that obeys the override
ISOLATE = "survey \u2066hidden\u2069 \u2028next line"
C1 = "csi \x9b31m red"
# What must never reach a terminal, a Markdown note or an HTML report as a raw character.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


@pytest.fixture(autouse=True)
def fresh_limiters(monkeypatch):
    """Tests share the stand-in's and the demo's keys: each gets its own rate-limit budget, so none waits."""
    monkeypatch.setattr(RateLimiter, "_shared", {})


@pytest.fixture(autouse=True)
def no_backoff_waits(monkeypatch):
    monkeypatch.setattr("auditor.posthog_api.default_sleep", lambda seconds: None)


def make_hostile(scenario) -> None:
    """Names from the project's REST answers (event names, from HogQL, are covered at render time below)."""
    scenario.project["name"] = SPOOF
    scenario.organization["name"] = ANSI
    scenario.members[0]["user"]["first_name"] = RLO
    scenario.lists["feature_flags/"][3]["key"] = NUL  # stale and uncalled: listed in two findings
    scenario.lists["surveys/"][0]["name"] = ISOLATE


def audit(standin, out, *extra: str):
    return CliRunner().invoke(cli, ["audit", "--host", standin.url, "--project", "4242", "--out", str(out),
                                    "--no-plugins", *extra], env={"POSTHOG_PERSONAL_API_KEY": standin.api_key},
                              catch_exceptions=False)


def test_neutralise_shows_controls_as_escapes():
    assert neutralise(SPOOF) == "Acme\\rReady for handover: readiness 100/100 for Acme."
    assert neutralise(ANSI) == "Org \\x1b[2J\\x1b[1;32mREADY\\x1b[0m"
    assert neutralise(NUL) == "nul\\x00byte"
    assert neutralise(RLO) == "flag-\\u202eydaer"
    assert neutralise(C1) == "csi \\x9b31m red"
    assert neutralise("two\nlines\tand tab") == "two\\nlines\\tand tab"
    assert neutralise("two\nlines\tand tab", keep_lines=True) == "two\nlines\tand tab"
    assert neutralise("Café — naïve 日本 😀") == "Café — naïve 日本 😀"  # ordinary text is untouched


def test_terminal_markdown_and_html_show_hostile_names_neutralised(standin, tmp_path):
    make_hostile(standin.scenario)
    out = tmp_path / "out"
    result = audit(standin, out)
    assert result.exit_code == 1, result.output
    # The terminal summary: the spoofed verdict stays on the project's line, visibly escaped.
    assert not RAW.search(result.output), repr(result.output)
    first = result.output.splitlines()[0]
    assert first.startswith("Not ready for handover:") and "Acme\\rReady for handover" in first
    # Markdown: the heading, the organization line and every summary.
    md = (out / "report.md").read_text()
    assert not RAW.search(md), repr(md)
    assert md.startswith("## PostHog audit: Acme\\rReady for handover: readiness 100/100 for Acme.")
    assert "Org \\x1b[2J" in md
    # HTML: escaped as markup already; no bidi override may reorder the title's score or the verdict either.
    html = (out / "report.html").read_text()
    assert not RAW.search(html.replace("\r\n", "\n")), [m.group() for m in RAW.finditer(html)][:5]
    assert "flag-\\u202eydaer" in html and "nul\\x00byte" in html and "survey \\u2066hidden" in html  # member, flag
    assert "<title>PostHog audit: Acme\\rReady for handover" in html
    # The JSON report keeps the names as data, unchanged (JSON escapes them itself).
    run = json.loads((out / "report.json").read_text())
    assert run["target"]["project_name"] == SPOOF and run["target"]["organization_name"] == ANSI
    assert not RAW.search((out / "report.json").read_text())


def test_rendering_to_stdout_is_neutralised(standin, tmp_path):
    make_hostile(standin.scenario)
    audit(standin, tmp_path / "out", "--format", "json")
    result = CliRunner().invoke(cli, ["render", str(tmp_path / "out" / "report.json"), "--format", "md"])
    assert result.exit_code == 0 and not RAW.search(result.output)


def test_a_server_error_text_cannot_drive_the_terminal(standin, tmp_path):
    standin.faults.append(Fault(r"^/api/projects/4242/$", status=400,
                                body={"detail": "bad\x1b[2K\rReady for handover: readiness 100/100"}, times=9))
    result = audit(standin, tmp_path / "out")
    assert result.exit_code == 2
    assert not RAW.search(result.output) and "bad\\x1b[2K\\rReady" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_vitally_note_neutralises_names():
    run = {"readiness": {"score": 50.0, "ready": False, "reasons": [f"{SPOOF}: Blocker failed"]},
           "target": {"project_name": RLO}, "categories": [], "brief": {}, "run_id": "r", "started_at": "2026-11-01",
           "mode": "handover"}
    note = note_for(run, "vit-1", None)["note"]
    assert not RAW.search(note) and "flag-\\u202eydaer" in note and "Acme\\rReady" in note


def test_batch_progress_and_portfolio_neutralise_account_names(standin, tmp_path):
    accounts = tmp_path / "accounts.toml"
    # An account name as Vitally (--from-vitally) or a colleague's file might carry it.
    accounts.write_text(f'[[accounts]]\nname = "Evil\\u001b[2J\\u202eCo"\nhost = "{standin.url}"\nprojects = [4242]\n')
    result = CliRunner().invoke(cli, ["batch", str(accounts), "--out", str(tmp_path / "p"), "--no-history",
                                      "--no-plugins"], env={"POSTHOG_PERSONAL_API_KEY": standin.api_key})
    assert result.exit_code == 1, result.output
    assert not RAW.search(result.output) and "Evil\\x1b[2J\\u202eCo" in result.output
    assert not RAW.search((tmp_path / "p" / "index.html").read_text())


def test_event_names_in_findings_are_neutralised_in_markdown_and_html(tmp_path):
    """Event names (and any value from the HogQL answers) reach the reports through summaries, evidence tables
    and recommendations: planted there, they come out neutralised."""
    out = tmp_path / "demo"
    assert CliRunner().invoke(cli, ["audit", "--demo", "--format", "json", "--out", str(out), "-q"]).exit_code == 1
    run = json.loads((out / "report.json").read_text())
    failing = next(r for r in run["results"] if r["status"] == "fail" and r["category"] != "handover")
    failing["summary"] = f"{C1} and {NUL} are most of the events"
    failing["evidence"]["table"] = {"columns": ["event", "events"], "rows": [[C1, 5], [SPOOF, 4]], "total_rows": 2}
    run["brief"]["top_recommendations"][0]["summary"] = f"Rename {C1}"
    for text in (render_markdown(run), render_html(run)):
        assert not RAW.search(text.replace("\r\n", "\n"))
        assert "csi \\x9b31m red" in text and "nul\\x00byte" in text
    assert "Acme\\rReady for handover" in render_html(run)  # the evidence table row
