"""Vitally: reading accounts, pushing results idempotently, dry runs, errors, and owner allocation."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.clients.posthog_api import ApiError
from auditor.clients.vitally_api import VitallyClient, base_url
from auditor.outputs.allocation import allocate, region_of_country, region_of_timezone
from auditor.outputs.vitally import VitallySettings, label_paths, push_run, read_account
from auditor.registry import load_registry
from checks.brief import engagement
from tests.vitally_standin import running_vitally

CATALOGUE = load_registry(plugins=False).catalogue

HEDGEBOX_ORG = "0191b5c1-7a2e-0000-8c2d-4f0b3d1e9a77"


@pytest.fixture
def vitally():
    with running_vitally() as v:
        yield v


def client_for(v, **kwargs) -> VitallyClient:
    return VitallyClient(v.url, v.api_key, sleep=kwargs.pop("sleep", lambda s: None), **kwargs)


def config_for(v, tmp_path) -> str:
    path = tmp_path / "auditor.toml"
    path.write_text(f'[vitally]\nregion = "{v.url}"\ninvoices_paid_label = "Invoices Paid"\n')
    return str(path)


def test_hosts():
    assert base_url("eu", None) == "https://rest.vitally-eu.io/resources"
    assert base_url("us", "posthog") == "https://posthog.rest.vitally.io/resources"
    with pytest.raises(ValueError, match="subdomain"):
        base_url("us", None)


def test_read_account_by_external_id(vitally):
    info = read_account(client_for(vitally), HEDGEBOX_ORG, VitallySettings(invoices_paid_label="Invoices Paid"),
                        CATALOGUE)
    assert info["account_id"] == "vit-1" and info["name"] == "Hedgebox Inc."
    assert info["arr"] == pytest.approx(26_214)
    assert info["paid_products"] == ["product_analytics", "session_replay", "feature_flags"]
    assert info["invoices_paid"] is True
    assert {u["country"] for u in info["users"]} == {"GB", "DE", "US"}
    assert info["notes"][0]["subject"].endswith("Account Plan FY27")
    assert "Engaged" in engagement(info)


def test_a_deleted_account_plan_note_is_not_read(vitally):
    info = read_account(client_for(vitally), "org-acme", VitallySettings(), CATALOGUE)
    assert info["notes"] == []  # its only note is archived (deleted in Vitally)


def test_cursor_pagination_reads_every_page(vitally):
    vitally.data["users"]["vit-1"] = [{"id": f"u{i}", "email": f"{i}@x.io", "traits": {}} for i in range(230)]
    users = client_for(vitally).account_users("vit-1")
    assert len(users) == 230
    assert sum(1 for m, p in vitally.requests if p.endswith("/users")) == 3


def test_a_numeric_cursor_that_comes_back_is_a_loop(vitally, monkeypatch):
    monkeypatch.setattr(type(vitally), "_page", staticmethod(lambda items, query: {"results": items[:1], "next": 7}))
    with pytest.raises(ApiError, match="loops"):
        client_for(vitally).account_users("vit-1")
    assert sum(1 for m, p in vitally.requests if p.endswith("/users")) == 2


def test_push_twice_makes_one_note_and_touches_only_own_traits(vitally, demo_run):
    run = demo_run
    client = client_for(vitally)
    before = dict(vitally.data["accounts"][0]["traits"])
    push_run(client, run, HEDGEBOX_ORG, "https://reports.example.com/hedgebox.html")
    push_run(client, run, HEDGEBOX_ORG, "https://reports.example.com/hedgebox.html")
    notes = [n for n in vitally.data["notes"] if str(n.get("externalId")).startswith("posthog-audit")]
    assert len(notes) == 1
    assert notes[0]["subject"].startswith("PostHog audit: ") and "not ready" in notes[0]["subject"]
    assert "<li>" in notes[0]["note"] and "reports.example.com" in notes[0]["note"]
    after = vitally.data["accounts"][0]["traits"]
    changed = {k for k in after if after.get(k) != before.get(k)}
    assert changed and all(k.startswith("vitally.custom.posthogAudit") for k in changed)
    assert after["vitally.custom.posthogAuditReady"] is False
    assert ("POST", "/resources/notes") in vitally.writes() and ("PUT", "/resources/notes/note-2") in vitally.writes()


def test_dry_run_sends_nothing(vitally, tmp_path, demo_run):
    run = demo_run
    report = tmp_path / "report.json"
    report.write_text(json.dumps(run))
    result = CliRunner().invoke(cli, ["vitally", "push", str(report), "--account", HEDGEBOX_ORG, "--dry-run",
                                      "--config", config_for(vitally, tmp_path)],
                                env={"VITALLY_API_KEY": vitally.api_key})
    assert result.exit_code == 0, result.output
    payloads = json.loads(result.output)
    assert [p["method"] for p in payloads] == ["PUT", "POST"]
    assert payloads[1]["body"]["externalId"].startswith("posthog-audit-vit-1-")
    assert vitally.writes() == []


def test_401_is_one_line(vitally, tmp_path, demo_run):
    report = tmp_path / "report.json"
    report.write_text(json.dumps(demo_run))
    result = CliRunner().invoke(cli, ["vitally", "push", str(report), "--account", "vit-1",
                                      "--config", config_for(vitally, tmp_path)], env={"VITALLY_API_KEY": "wrong"})
    assert result.exit_code == 2
    assert result.output.strip() == "posthog-auditor: error: Vitally: the Vitally API key was refused (401)"


def test_missing_key_is_one_line(tmp_path, demo_run):
    report = tmp_path / "report.json"
    report.write_text(json.dumps(demo_run))
    result = CliRunner().invoke(cli, ["vitally", "push", str(report), "--account", "x"], env={})
    assert result.exit_code == 2 and "no Vitally key: set VITALLY_API_KEY" in result.output


def test_429_waits_for_rate_limit_reset(vitally):
    vitally.rate_limit_next[r"/customFields"] = 2
    waits: list[float] = []
    fields = label_paths(client_for(vitally, sleep=waits.append))
    assert "New Owner" in fields
    assert waits == [3.0, 3.0]


def test_persistent_429_gives_up(vitally):
    vitally.rate_limit_next[r"/customFields"] = 99
    with pytest.raises(ApiError, match="429"):
        label_paths(client_for(vitally, max_retries=2))


@pytest.mark.parametrize(("products", "users", "owner", "review"), [
    (["product_analytics"], [{"country": "US"}, {"country": "CA"}], "US TAM", ""),
    (["product_analytics", "session_replay"], [{"country": "GB"}, {"country": "US"}, {"country": "DE"}], "EU TAM", ""),
    (["product_analytics", "session_replay", "feature_flags"], [{"country": "FR"}], "EU CSM", ""),
    (["product_analytics", "session_replay", "feature_flags", "surveys"], [{"country": "US"}], "US CSM", ""),
    (["product_analytics", "surveys"], [{"country": "SG"}, {"country": "IN"}], "Singapore TAM", ""),
    (["product_analytics", "session_replay", "feature_flags"], [{"timezone": "Asia/Kolkata"}], "EU CSM", "APAC"),
    (["product_analytics", "session_replay", "feature_flags"], [{"timezone": "Australia/Sydney"}], "US CSM",
     "APAC"),
    (["product_analytics"], [{"timezone": "America/New_York"}, {"timezone": "Europe/Paris"},
                             {"timezone": "America/Denver"}], "US TAM", ""),
    (["product_analytics"], [], None, "no user country"),
    ([], [{"country": "DE"}], "EU TAM", "no 'Paying for"),
])
def test_allocation_rules(products, users, owner, review):
    result = allocate({"account_id": "a", "name": "A", "arr": 30_000, "paid_products": products, "users": users})
    assert result.new_owner == owner
    assert (review in result.review) if review else result.review == ""
    if owner:
        assert result.handoff == f"TAE → {owner.split()[-1]}"


def test_regions():
    assert region_of_country("United Kingdom") == "EU" and region_of_country("br") == "US"
    assert region_of_country("JP") == "APAC" and region_of_country("Narnia") is None
    assert region_of_timezone("Europe/Berlin") == "EU" and region_of_timezone("UTC") is None


def test_allocate_lists_unowned_accounts_above_threshold_and_applies(vitally, tmp_path):
    out = tmp_path / "alloc.csv"
    env = {"VITALLY_API_KEY": vitally.api_key}
    args = ["allocate", "--config", config_for(vitally, tmp_path), "--out", str(out)]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    # Small Co is under $20k ARR and Owned GmbH already has a New Owner.
    assert "Small Co" not in result.output and "Owned GmbH" not in result.output
    assert "Hedgebox Inc." in result.output and "EU CSM" in result.output
    assert "Acme Analytics" in result.output and "US TAM" in result.output
    assert "Tokyo Robotics" in result.output and "review: APAC" in result.output
    assert vitally.writes() == []  # nothing written without --apply
    assert out.read_text().startswith("account_id,name,arr")
    result = CliRunner().invoke(cli, [*args, "--apply"], env=env)
    assert result.exit_code == 0
    owners = {a["name"]: a["traits"].get("vitally.custom.newOwner") for a in vitally.data["accounts"]}
    assert owners["Hedgebox Inc."] == "EU CSM" and owners["Acme Analytics"] == "US TAM"
    assert owners["Tokyo Robotics"] is None  # flagged for review: left to a person
    assert owners["Owned GmbH"] == "EU TAM"


def test_audit_reads_vitally_for_scope_account_plan_and_engagement(vitally, tmp_path, monkeypatch):
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda s: None)
    result = CliRunner().invoke(cli, ["audit", "--demo", "--out", str(tmp_path / "out"), "--vitally-account", "org",
                                      "--config", config_for(vitally, tmp_path), "--push-vitally"],
                                env={"VITALLY_API_KEY": vitally.api_key})
    assert result.exit_code == 1, result.output
    run = json.loads((tmp_path / "out" / "report.json").read_text())
    statuses = {r["id"]: r["status"] for r in run["results"]}
    assert statuses["handover.account-plan"] == "pass"  # the Vitally note
    assert statuses["handover.invoices-paid"] == "pass"  # the Vitally trait
    assert run["brief"]["engagement"].startswith("Engaged")
    assert "Vitally: 2 write(s)" in result.output
    assert len([n for n in vitally.data["notes"] if str(n.get("externalId")).startswith("posthog-audit")]) == 1


def test_an_account_of_several_projects_reads_its_vitally_account_once(standin, scenario, vitally, tmp_path):
    """The projects of an --all-projects audit are one organization and one Vitally account: it is read once
    (account, fields, users, notes), and every project's facts carry it."""
    from tests.test_unreadable_projects import add_sibling

    add_sibling(scenario)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["audit", "--host", standin.url, "--all-projects", "--out", str(out), "-q",
                                      "--no-plugins", "--vitally-account", "org",
                                      "--config", config_for(vitally, tmp_path)],
                                env={"POSTHOG_PERSONAL_API_KEY": standin.api_key, "VITALLY_API_KEY": vitally.api_key})
    assert result.exit_code == 1, result.output
    run = json.loads((out / "report.json").read_text())
    assert [p["target"]["project_id"] for p in run["projects"]] == ["4242", "4243"]
    assert all(p["facts"]["vitally"]["status"] == "ok" for p in run["projects"])
    reads = [path for method, path in vitally.requests if method == "GET"]
    assert len(reads) == len(set(reads)) == 4, reads
