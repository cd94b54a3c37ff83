"""`--audience customer`: one RunResult, two reports. The customer's keeps the health per product, the fixes, the
savings and the links; nothing internal (the gate and its reasons, attestations, the new owner's brief, Vitally,
member emails and last logins, "handover") reaches its HTML, Markdown or JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.attestations import load_attestations
from auditor.audit import audit_target
from auditor.cli import cli
from auditor.clients.posthog_api import PostHogClient
from auditor.config import Settings
from auditor.demo import DEMO_HOST, DEMO_KEY, demo_scenario, demo_session
from auditor.outputs.audience import customer_view, for_audience
from auditor.outputs.render import render_html, render_json, render_markdown
from auditor.registry import load_registry
from checks.handover import ATTESTATION_ITEMS
from tests.test_batch import batch, book  # noqa: F401  (book is a fixture)

MEMBERS: list[tuple[str, str]] = []  # (email, name) of the demo organization's members, once the run is made
ATTESTATION_NOTE = "Finance contact is Dana, PO 7781 pending"
VITALLY_NOTE = "Account Plan FY27 (renewal risk: champion leaving)"
# Words and phrases only the owner may read. Case-insensitive.
INTERNAL_WORDS = ("handover", "new owner", "vitally", "attest", "account plan", "jane@posthog.com",
                  ATTESTATION_NOTE, VITALLY_NOTE, "renewal risk", "last login", "last_login", "not ready",
                  "needs a person", "invoices", "engaged:", "first outreach", "min_readiness")


@pytest.fixture(scope="module")
def internal_run(tmp_path_factory) -> dict:
    """The demo audited with attestations, Vitally data and a history comparison: every kind of internal content."""
    now = datetime.now(UTC)
    path = tmp_path_factory.mktemp("attest") / "acme.toml"
    items = []
    for item in ATTESTATION_ITEMS:
        first = 'link = "https://docs.example.com/plan"' if item == "account_plan" else 'answer = "yes"'
        note = f'note = "{ATTESTATION_NOTE}"\n' if item == "invoices_paid" else ""
        items.append(f'[{item}]\n{first}\nby = "jane@posthog.com"\ndate = {now.date().isoformat()}\n{note}')
    path.write_text("\n".join(items))
    vitally = {"account_id": "v-1", "external_id": "org", "name": "Hedgebox", "mrr": 4000, "arr": 48000,
               "new_owner": "Sam (TAM, EU)", "paid_products": None, "invoices_paid": None,
               "last_inbound_message": (now - timedelta(days=3)).isoformat(), "last_outbound_message": None,
               "users": [{"email": "vip@hedgebox.net", "country": "DE"}],
               "notes": [{"subject": VITALLY_NOTE, "noteDate": (now - timedelta(days=10)).isoformat()}]}
    scenario = demo_scenario()
    registry = load_registry(plugins=False)
    settings = Settings()
    with PostHogClient(DEMO_HOST, DEMO_KEY, session=demo_session(scenario),
                       **settings.client_options()) as client:
        run = audit_target(client, [scenario.project_id], registry, list(registry.checks.values()), settings,
                           attestations=load_attestations(str(path), ATTESTATION_ITEMS), vitally=vitally)
    run["changes"] = {"previous_started_at": "2026-10-01T00:00:00+00:00", "previous_readiness": 80.0,
                      "readiness_delta": -9.0, "category_deltas": {},
                      "regressions": ["Handover fell 20 points (80 → 60)",
                                      "The handover checklist is complete (handover.attestations) went from pass to "
                                      "manual",
                                      "Web traffic is not proxied (platform.reverse-proxy) went from pass to fail"]}
    MEMBERS[:] = [(m["user"]["email"], f"{m['user']['first_name']} {m['user']['last_name']}")
                  for m in scenario.members]
    return run


def outputs(run: dict) -> dict[str, str]:
    return {"html": render_html(run), "md": render_markdown(run), "json": render_json(run)}


def found(text: str, needles) -> list[str]:
    return [n for n in needles if n.lower() in text.lower()]


def test_the_internal_report_has_what_the_customers_must_not(internal_run):
    internal = outputs(internal_run)
    emails = [email for email, _ in MEMBERS]
    # The fixture really carries every kind of internal content (else the next test would prove nothing).
    for word in ("handover", "new owner", "vitally", "attest", "jane@posthog.com", ATTESTATION_NOTE, "Account Plan",
                 "last login", "not ready", "Engaged:"):
        assert found(internal["html"] + internal["json"], [word]), word
    assert found(internal["html"], emails[:3]) and found(internal["json"], emails[:3])


def test_nothing_internal_reaches_the_customers_html_markdown_or_json(internal_run):
    customer = outputs(customer_view(internal_run))
    emails = [email for email, _ in MEMBERS]
    names = [name for _, name in MEMBERS]
    for fmt, text in customer.items():
        assert found(text, INTERNAL_WORDS) == [], f"internal wording in the customer's {fmt}"
        assert found(text, emails) == [], f"member emails in the customer's {fmt}"
        assert found(text, names) == [], f"member names in the customer's {fmt}"
        assert not re.search(r"[\w.+-]+@hedgebox\.net", text), f"an email in the customer's {fmt}"
        for reason in internal_run["readiness"]["reasons"]:
            assert reason not in text, f"a gate reason in the customer's {fmt}"


def test_the_customers_json_is_a_redacted_run_result(internal_run):
    view = json.loads(render_json(customer_view(internal_run)))
    assert view["audience"] == "customer" and view["mode"] == "health"
    assert "gate" not in view and view["readiness"]["reasons"] == []
    assert view["readiness"]["score"] == internal_run["readiness"]["score"]
    assert view["readiness"]["band"] in ("Healthy", "Concerning", "Poor")
    assert set(view["brief"]) <= {"top_recommendations", "products_used", "paid_but_unused", "event_mix",
                                  "sdk_versions"}
    assert not {"vitally", "attestations"} & set(view["facts"])
    assert all(fact["error"] is None for fact in view["facts"].values())
    assert view["scope"] == {"paid_products": internal_run["scope"]["paid_products"],  # not where that was learnt
                             "products": internal_run["scope"]["products"]}  # the products' titles, to name them
    ids = {r["id"] for r in view["results"]}
    assert not [i for i in ids if i.startswith("handover.")]
    assert "handover" not in {c["id"] for c in view["categories"]}
    owners = next(r for r in view["results"] if r["id"] == "platform.owners-and-admins")
    assert owners["evidence"]["table"] is None and owners["evidence"]["metrics"]["owners"] == 1
    assert view["changes"]["regressions"] == ["Web traffic is not proxied (platform.reverse-proxy) went from pass to "
                                              "fail"]
    # What the customer is for: health per product, fixes, savings and links.
    assert view["savings"]["usd_per_month"] == internal_run["savings"]["usd_per_month"]
    assert all(r["remediation"] for r in view["brief"]["top_recommendations"])
    assert any(link["url"].startswith("https://us.posthog.com/project/4242/") for r in view["results"]
               for link in r["links"])
    assert customer_view(view) == view  # idempotent
    assert for_audience(internal_run, "internal") is internal_run
    with pytest.raises(ValueError, match="audience"):
        for_audience(internal_run, "everyone")


def test_the_customers_html_and_markdown_say_health_savings_and_fixes(internal_run):
    customer = outputs(customer_view(internal_run))
    for text in (customer["html"], customer["md"]):
        assert "PostHog health check: Hedgebox (production)" in text
        assert "Potential savings: $" in text and "of the bill" in text
        assert "What to fix first" in text and "Open in PostHog" in text
    assert "Health per product" in customer["html"] and "Products you pay for: Product analytics" in customer["html"]
    assert "<script" not in customer["html"]


def test_an_older_report_without_audience_flags_is_redacted_from_the_registry(internal_run, tmp_path):
    old = json.loads(render_json(internal_run))
    for result in old["results"]:
        result.pop("audience"), result.pop("private_evidence")
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old))
    for fmt in ("html", "md", "json"):
        result = CliRunner().invoke(cli, ["render", str(path), "--format", fmt, "--audience", "customer"])
        assert result.exit_code == 0, result.output
        assert found(result.output, INTERNAL_WORDS) == [], fmt
        assert "alice@hedgebox.net" not in result.output
    written = CliRunner().invoke(cli, ["render", str(path), "--audience", "customer", "--format", "json,html", "--out",
                                       str(tmp_path / "c")])
    assert written.exit_code == 0
    assert json.loads((tmp_path / "c" / "report.json").read_text())["audience"] == "customer"


def test_audit_demo_for_the_customer(tmp_path):
    result = CliRunner().invoke(cli, ["audit", "--demo", "--audience", "customer", "--out", str(tmp_path)])
    assert result.exit_code == 1  # the exit code is the audit's, whoever reads the report
    assert "Reports for the customer:" in result.output
    for name in ("report.html", "report.md", "report.json"):
        text = (tmp_path / name).read_text()
        assert found(text, ("handover", "vitally", "attest", "alice@hedgebox.net")) == [], name
        assert "Potential savings: $" in text or name == "report.json"
    assert json.loads((tmp_path / "report.json").read_text())["savings"]["usd_per_month"] > 0


def test_batch_writes_each_accounts_report_for_the_customer(book, tmp_path, standin):  # noqa: F811
    out = tmp_path / "portfolio"
    batch(book, out, "--audience", "customer")
    for slug in ("hedgebox-prod", "hedgebox-marketing", "hedgebox-docs"):
        run = json.loads((out / slug / "report.json").read_text())
        assert run["audience"] == "customer"
        assert found((out / slug / "report.html").read_text(), ("handover", "attest", "@hedgebox.net")) == []
    # The history keeps the full internal run; the portfolio is the owner's overview, with its Markdown summary.
    assert (out / "portfolio.md").read_text().startswith("## PostHog health checks: 4 accounts")


def test_render_rejects_an_unknown_audience(tmp_path):
    path = Path(tmp_path / "r.json")
    path.write_text("{}")
    result = CliRunner().invoke(cli, ["render", str(path), "--audience", "public"])
    assert result.exit_code == 2 and "public" in result.output


@pytest.mark.parametrize("scenario", ["with_sibling"], indirect=True)
def test_an_account_of_several_projects_for_the_customer(standin, tmp_path, monkeypatch):
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)
    args = ["audit", "--host", standin.url, "--project", standin.scenario.project_id, "--all-projects", "--no-plugins"]
    env = {"POSTHOG_PERSONAL_API_KEY": standin.api_key}
    internal = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "i")], env=env)
    customer = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "c"), "--audience", "customer"], env=env)
    assert internal.exit_code == customer.exit_code == 1, customer.output
    run = json.loads((tmp_path / "c" / "report.json").read_text())
    assert len(run["projects"]) == 2 and all(p["audience"] == "customer" for p in run["projects"])
    for name in ("report.html", "report.md", "report.json"):
        text = (tmp_path / "c" / name).read_text()
        assert found(text, ("handover", "attest", "vitally", "new owner")) == [], name
        assert not re.search(r"[\w.+-]+@hedgebox\.net", text), name
    # Each project's waste is its own; the account's total adds them, each once.
    full = json.loads((tmp_path / "i" / "report.json").read_text())
    per_project = [p["savings"]["usd_per_month"] or 0 for p in full["projects"]]
    assert full["savings"]["usd_per_month"] == pytest.approx(sum(per_project), abs=0.011)


def test_the_customers_report_renders_in_chromium_with_no_script(tmp_path):
    from tests.test_browser import audit_dom, browse

    result = CliRunner().invoke(cli, ["audit", "--demo", "--audience", "customer", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    dom = audit_dom(browse(tmp_path / "out" / "report.html", tmp_path, "demo-customer-report.png"))
    text = " ".join(dom.text)
    assert "PostHog health check: Hedgebox (production)" in text and "Potential savings: $" in text
    assert "What to fix first" in text and "Open in PostHog" in text and "Health per product" in text
    assert found(text, ("handover", "new owner", "attest")) == []
    assert dom.scripts == 0 and not dom.handlers and not dom.js_links


def test_the_customers_report_is_not_pushed_to_vitally(tmp_path, monkeypatch):
    monkeypatch.setenv("VITALLY_API_KEY", "sk_test")
    CliRunner().invoke(cli, ["audit", "--demo", "--audience", "customer", "--format", "json", "--out", str(tmp_path)])
    result = CliRunner().invoke(cli, ["vitally", "push", str(tmp_path / "report.json"), "--account", "a",
                                      "--dry-run"])
    assert result.exit_code == 2 and "customer's report" in result.output
