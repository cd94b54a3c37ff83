"""A plugin can bring a whole product: tests/plugin_package holds one (LLM analytics: a catalogue entry and a check),
found through Python's own entry-point discovery, as an installed package would be. Its product is scored, scoped
and shown like a built-in one, with no engine edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.config import Settings
from auditor.registry import load_registry
from tests.test_check_cases import build_facts

PACKAGE = Path(__file__).parent / "plugin_package"


@pytest.fixture
def with_plugin(monkeypatch):
    monkeypatch.syspath_prepend(str(PACKAGE))  # where its .dist-info declares the entry point


def test_the_plugins_own_cases_run_with_the_public_kit(with_plugin):
    """A plugin author tests a check the way the built-in ones are tested: YAML cases and auditor.testing."""
    from auditor.testing import coverage_problems, load_cases, verify

    registry = load_registry()
    cases = load_cases(PACKAGE / "cases")
    assert [verify(case, registry).status for case in cases] == ["pass", "fail", "error"]
    assert coverage_problems(cases, ["llm_analytics.generations-captured"], registry) == []


def test_the_plugin_registers_its_product_and_its_check(with_plugin):
    registry = load_registry()
    assert not registry.failures
    assert registry.catalogue.title("llm_analytics") == "LLM analytics"
    assert "llm_analytics" in registry.catalogue.payable and registry.catalogue.weight("llm_analytics") == 10
    assert registry.checks["llm_analytics.generations-captured"].source == "posthog-auditor-llm"
    assert "llm_analytics" not in load_registry(plugins=False).catalogue.products


def evaluate_with(billing_products: list[dict] | None, cube: list[dict]) -> dict:
    from auditor.audit import evaluate

    registry = load_registry()
    given = {"cube": cube, "project": {"timezone": "UTC"}}
    if billing_products is not None:
        given["billing"] = {"customer_id": "c", "products": billing_products}
    facts = build_facts(given)
    return evaluate(facts, registry, list(registry.checks.values()), Settings())


def test_paid_through_billing_it_is_in_scope_scored_and_gated(with_plugin):
    paid = [{"type": "product_analytics", "subscribed": True}, {"type": "llm_analytics", "subscribed": True,
                                                                 "current_amount_usd": "120.00"}]
    run = evaluate_with(paid, [{"event": "$pageview", "lib": "web", "events": 100, "events_7d": 30}])
    assert run["scope"]["paid_products"] == ["product_analytics", "llm_analytics"]
    category = next(c for c in run["categories"] if c["id"] == "llm_analytics")
    assert category["in_scope"] and category["title"] == "LLM analytics" and category["score"] == 0
    assert any("generations-captured" in reason for reason in run["readiness"]["reasons"])  # its blocker blocks
    unused = next(r for r in run["results"] if r["id"] == "handover.paid-products-used")
    assert unused["status"] == "fail" and "LLM analytics ($120.00)" in unused["summary"]


def test_with_no_billing_its_usage_puts_it_in_scope(with_plugin):
    run = evaluate_with(None, [{"event": "$ai_generation", "lib": "posthog-python", "events": 40, "events_7d": 12}])
    assert "llm_analytics" in run["scope"]["paid_products"] and run["scope"]["source"] == "usage"
    assert next(c for c in run["categories"] if c["id"] == "llm_analytics")["score"] == 100


def test_its_category_is_shown_in_every_report_and_listed(with_plugin, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["audit", "--demo", "--out", "out", "-q"])
    run = json.loads((tmp_path / "out" / "report.json").read_text())
    assert result.exit_code == 1 and any(c["id"] == "llm_analytics" for c in run["categories"])
    assert "LLM analytics" in (tmp_path / "out" / "report.html").read_text()
    assert "LLM analytics" in (tmp_path / "out" / "report.md").read_text()
    listing = runner.invoke(cli, ["checks"]).output
    assert "llm_analytics.generations-captured" in listing and "posthog-auditor-llm" in listing
    weights = tmp_path / "auditor.toml"
    weights.write_text("[weights]\nllm_analytics = 25\n")  # its weight is configurable like a built-in's
    assert runner.invoke(cli, ["audit", "--demo", "--out", "out2", "-q", "--config", str(weights)]).exit_code == 1
    assert runner.invoke(cli, ["audit", "--demo", "--out", "out3", "-q", "--paying-for", "llm_analytics"]).exit_code \
        == 1


def test_the_quick_look_for_plugins_misses_none(tmp_path):
    """Before importing importlib.metadata (~40 ms of every start), a glance at entry_points.txt files: it finds
    the plugin's declaration, says no where nothing declares the group, and says yes for anything it cannot read
    this way (a zip on the path), so importlib.metadata then decides."""
    from auditor.registry import may_have_plugins

    other = tmp_path / "site"
    (other / "requests-2.32.dist-info").mkdir(parents=True)
    (other / "requests-2.32.dist-info" / "entry_points.txt").write_text("[console_scripts]\nx = y:z\n")
    assert may_have_plugins([str(PACKAGE)]) is True
    assert may_have_plugins([str(other), str(tmp_path / "absent")]) is False
    zipped = tmp_path / "plugins.zip"
    zipped.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    assert may_have_plugins([str(other), str(zipped)]) is True
