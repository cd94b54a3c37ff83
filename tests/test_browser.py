"""The HTML report in a real browser (Debian's headless Chromium): it renders, and customer-controlled names
carrying HTML/JS are shown as text and never run. Screenshots land in test-artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from tests.conftest import ROOT
from tests.scenarios import PAYLOADS

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is required in CI (.ci/run installs Debian's chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def browse(page: Path, tmp_path: Path, screenshot: str) -> str:
    """Load the page in headless Chromium; return the DOM after scripts would have run, and save a screenshot."""
    binary = chromium()
    profile = tmp_path / "profile"
    common = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=2000"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    ARTIFACTS.mkdir(exist_ok=True)
    subprocess.run([*common, "--window-size=1200,3000", f"--screenshot={ARTIFACTS / screenshot}", page.as_uri()],
                   capture_output=True, timeout=60, check=True)
    assert (ARTIFACTS / screenshot).stat().st_size > 10_000
    return dom


class DomAudit(HTMLParser):
    """What a payload would leave behind if it had become markup or had run."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts = 0
        self.handlers: list[tuple[str, str]] = []
        self.js_links: list[str] = []
        self.body_attrs: dict[str, str | None] = {}
        self.text: list[str] = []
        self.svgs = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.svgs += tag == "svg"
        if tag == "body":
            self.body_attrs = dict(attrs)
        self._in_title = tag == "title" and not self.title
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name))
            if name in ("href", "src") and (value or "").strip().lower().startswith("javascript:"):
                self.js_links.append(value or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False


def audit_dom(dom: str) -> DomAudit:
    parsed = DomAudit()
    parsed.feed(dom)
    return parsed


def test_demo_report_renders_in_chromium(tmp_path):
    result = CliRunner().invoke(cli, ["audit", "--demo", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    dom = audit_dom(browse(tmp_path / "out" / "report.html", tmp_path, "demo-report.png"))
    text = " ".join(dom.text)
    assert "Not ready for handover" in text and "Hedgebox (production)" in text
    assert "Brief for the new owner" in text and "Top recommendations" in text
    assert dom.svgs >= 4  # gauge, event mix, SDK versions, categories
    assert dom.scripts == 0 and not dom.handlers


@pytest.mark.parametrize("scenario", ["hostile"], indirect=True)
def test_hostile_names_are_shown_as_text_and_never_run(standin, tmp_path, monkeypatch):
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["audit", "--host", standin.url, "--project", "4242", "--out", str(out),
                                      "--no-plugins"], env={"POSTHOG_PERSONAL_API_KEY": standin.api_key})
    assert result.exit_code == 1, result.output
    dom = audit_dom(browse(out / "report.html", tmp_path, "hostile-report.png"))
    assert "data-pwned" not in dom.body_attrs, f"a payload ran: {dom.body_attrs}"
    assert dom.scripts == 0, "a <script> from a payload became markup"
    assert dom.handlers == [], f"event handlers from payloads became markup: {dom.handlers}"
    assert dom.js_links == [], "a javascript: link became markup"
    text = "".join(dom.text)
    for payload in PAYLOADS:
        assert payload in text, f"payload not shown as text: {payload}"
    assert dom.title.startswith("PostHog audit: Acme <script>")
    # The JSON carries the names as data, unchanged.
    run = json.loads((out / "report.json").read_text())
    assert run["target"]["project_name"] == f"Acme {PAYLOADS[0]}"
