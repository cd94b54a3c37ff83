"""The handover gate end to end: attestations, the ready case, health mode, multi-project accounts, billing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.attestations import AttestationError, load_attestations
from auditor.cli import cli
from auditor.registry import load_registry
from checks.billing import group_analytics_paid, monthly_amount
from checks.handover import ATTESTATION_ITEMS
from tests.test_cli import assert_one_line_error

paid_products = load_registry(plugins=False).catalogue.paid_from_billing


def _attest(item: str) -> str:
    first = 'link = "https://docs.example.com/plan"' if item == "account_plan" else 'answer = "yes"'
    return f'[{item}]\n{first}\nby = "jane@posthog.com"\ndate = 2026-10-20\n'


FULL_ATTESTATIONS = "\n".join(_attest(item) for item in ATTESTATION_ITEMS)


@pytest.fixture(autouse=True)
def no_backoff_waits(monkeypatch):
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)


def invoke(args, env=None):
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def audit(standin, out: Path, *extra: str):
    args = ["audit", "--host", standin.url, "--out", str(out), "--no-plugins", *extra]
    if "--all-projects" not in extra and "--project" not in extra:
        args += ["--project", standin.scenario.project_id]
    return invoke(args, {"POSTHOG_PERSONAL_API_KEY": standin.api_key})


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


@pytest.fixture
def attestation_file(tmp_path) -> Path:
    path = tmp_path / "attestations.toml"
    path.write_text(FULL_ATTESTATIONS)
    return path


@pytest.mark.parametrize("scenario", ["healthy"], indirect=True)
def test_a_healthy_attested_customer_is_ready(standin, tmp_path, attestation_file):
    result = audit(standin, tmp_path, "--attestations", str(attestation_file))
    run = report(tmp_path)
    assert result.exit_code == 0, run["readiness"]["reasons"]
    assert "Ready for handover" in result.output
    assert run["readiness"] == {"score": 100.0, "ready": True, "reasons": []}
    statuses = {r["id"]: r["status"] for r in run["results"] if r["category"] == "handover"}
    assert set(statuses.values()) == {"pass"}


@pytest.mark.parametrize("scenario", ["healthy"], indirect=True)
def test_without_attestations_the_gate_names_what_is_missing(standin, tmp_path):
    result = audit(standin, tmp_path)
    assert result.exit_code == 1
    reasons = report(tmp_path)["readiness"]["reasons"]
    assert any("handover.account-plan" in r for r in reasons)
    assert any("invoices are paid" in r for r in reasons)
    assert any("support_channels, finance_contact" in r for r in reasons)
    assert len(reasons) == 3  # nothing else stands in the way


def test_health_mode_bands_and_exit_code(standin, tmp_path):
    result = audit(standin, tmp_path, "--mode", "health")
    run = report(tmp_path)
    assert run["mode"] == "health"
    assert run["readiness"]["band"] == "Concerning"
    assert result.output.startswith("Health: Concerning (")
    assert result.exit_code == 1
    assert not any("Account Plan" in r or "Needs a person" in r for r in run["readiness"]["reasons"])


@pytest.mark.parametrize("scenario", ["healthy"], indirect=True)
def test_health_mode_healthy_exits_0_without_attestations(standin, tmp_path):
    result = audit(standin, tmp_path, "--mode", "health")
    assert result.exit_code == 0, report(tmp_path)["readiness"]
    assert report(tmp_path)["readiness"]["band"] == "Healthy"


@pytest.mark.parametrize("scenario", ["with_sibling"], indirect=True)
def test_multi_project_account_is_as_ready_as_its_weakest_project(standin, tmp_path):
    result = audit(standin, tmp_path, "--project", "4242", "--project", "4243")
    assert result.exit_code == 1
    run = report(tmp_path)
    assert [p["target"]["project_id"] for p in run["projects"]] == ["4242", "4243"]
    assert run["target"]["project_name"] == "Hedgebox (production) + Hedgebox (marketing site)"
    assert run["readiness"]["score"] == min(p["readiness"]["score"] for p in run["projects"])
    # The privacy blocker fails in the marketing site only, and is named with its project.
    assert any(r.startswith("Hedgebox (marketing site): Blocker failed") and "privacy-masking" in r
               for r in run["readiness"]["reasons"])
    # Org-wide reasons are said once, not per project.
    assert sum("handover.account-plan" in r for r in run["readiness"]["reasons"]) == 1
    masking = [r for r in run["results"] if r["id"] == "session_replay.privacy-masking"]
    assert {(r["project_id"], r["status"]) for r in masking} == {("4242", "pass"), ("4243", "fail")}
    replay = next(c for c in run["categories"] if c["id"] == "session_replay")
    assert replay["score"] == min(next(c["score"] for c in p["categories"] if c["id"] == "session_replay")
                                  for p in run["projects"])
    html = (tmp_path / "report.html").read_text()
    assert "Hedgebox (marketing site)" in html
    assert run["stats"]["hogql_queries"] == 2  # one per project
    # What the projects share is asked once; each project's requests are its own, however they interleave.
    assert standin.count(r"^/api/organizations/[^/]+/$") == 1
    assert standin.count(r"^/api/organizations/[^/]+/members/$") == 1
    assert sum(p["stats"]["http_requests"] for p in run["projects"]) == run["stats"]["http_requests"] \
        == standin.count()


@pytest.mark.parametrize("scenario", ["with_sibling"], indirect=True)
def test_all_projects_audits_every_project_of_the_organization(standin, tmp_path):
    result = audit(standin, tmp_path, "--all-projects")
    assert result.exit_code == 1
    assert [p["project_id"] for p in report(tmp_path)["target"]["projects"]] == ["4242", "4243"]


def test_attest_init_writes_a_template_that_loads(tmp_path):
    path = tmp_path / "a.toml"
    result = invoke(["attest", "--init", "--out", str(path), "--account", "Hedgebox"])
    assert result.exit_code == 0
    text = path.read_text()
    assert "Hedgebox" in text and all(f"# [{item}]" in text for item in ATTESTATION_ITEMS)
    assert load_attestations(str(path), ATTESTATION_ITEMS)["items"] == {}  # nothing answered yet
    assert_one_line_error(invoke(["attest", "--init", "--out", str(path)]), 2, "already exists")


@pytest.mark.parametrize(("content", "message"), [
    ("[account_plan\n", "not valid TOML"),
    ('[cofee]\nanswer = "yes"\nby = "x"\ndate = 2026-01-01\n', "unknown item [cofee]"),
    ('[invoices_paid]\nanswer = "maybe"\nby = "x"\ndate = 2026-01-01\n', "answer must be one of"),
    ('[invoices_paid]\nanswer = "yes"\ndate = 2026-01-01\n', "needs 'by'"),
    ('[invoices_paid]\nanswer = "yes"\nby = "x"\ndate = "last week"\n', "needs 'date'"),
    ('[account_plan]\nlink = "notes.txt"\nby = "x"\ndate = 2026-01-01\n', "link must be"),
    ('[invoices_paid]\nanswer = "yes"\nby = "x"\ndate = 2026-01-01\nwho = "y"\n', "unknown key 'who'"),
])
def test_bad_attestation_file_is_one_line(tmp_path, content, message):
    path = tmp_path / "a.toml"
    path.write_text(content)
    with pytest.raises(AttestationError, match=r"a\.toml"):
        load_attestations(str(path), ATTESTATION_ITEMS)
    result = invoke(["audit", "--demo", "--out", str(tmp_path / "out"), "--attestations", str(path)])
    assert_one_line_error(result, 2, message)
    assert not (tmp_path / "out").exists()


def test_missing_attestation_file(tmp_path):
    result = invoke(["audit", "--demo", "--attestations", str(tmp_path / "none.toml")])
    assert_one_line_error(result, 2, "attestation file not found")


REALISTIC_BILLING = {
    "customer_id": "cus_1", "has_active_subscription": True, "deactivated": False,
    "available_features": ["group_analytics", "saml"], "current_total_amount_usd": "1234.56",
    "products": [
        {"type": "product_analytics", "subscribed": True, "current_amount_usd": "800.00", "usage_key": "events",
         "tiers": [{"flat_amount_usd": "0", "unit_amount_usd": "0.00005", "up_to": 1000000}],
         "addons": [{"type": "group_analytics", "subscribed": False}, {"type": "data_pipelines", "subscribed": True}]},
        {"type": "session_replay", "subscribed": True, "current_amount_usd": "434.56"},
        {"type": "feature_flags", "subscribed": False, "current_amount_usd": None},
        {"type": "integrations", "subscribed": True},  # not a primary product
        {"type": "error_tracking"},  # subscribed missing: not paid
        "garbage",
    ],
}


def test_billing_parsing():
    assert paid_products(REALISTIC_BILLING) == ["product_analytics", "session_replay"]
    assert group_analytics_paid(REALISTIC_BILLING) is False
    assert monthly_amount(REALISTIC_BILLING, "session_replay") == "$434.56"
    assert monthly_amount(REALISTIC_BILLING, "feature_flags") is None
    assert paid_products({"detail": "not an owner"}) is None
    assert group_analytics_paid(None) is None
