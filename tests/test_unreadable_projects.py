"""--all-projects when the key cannot read every project (issue 13, item 8): the readable projects are audited,
an unreadable one is an errored section with the reason, and the account stays not ready."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from tests.standin import Fault
from tests.test_cli import assert_one_line_error
from tests.test_handover import FULL_ATTESTATIONS

# What PostHog answers for a key scoped to other projects (posthog/permissions.py, scoped_teams).
SCOPED_AWAY = {"type": "authentication_error", "code": "permission_denied",
               "detail": "API key does not have access to the requested project: ID 4243."}


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    """Retries do not really wait (each test gets fresh per-key limiters: tests/conftest.py)."""
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)


def add_sibling(scenario, pid: str = "4243", name: str = "Hedgebox (marketing site)") -> None:
    sibling = copy.deepcopy(scenario)
    sibling.siblings = {}
    sibling.project_id = pid
    sibling.project.update(id=int(pid), name=name)
    scenario.siblings[pid] = sibling


def refuse(standin, pid: str = "4243", body=None) -> None:
    standin.faults.append(Fault(rf"^/api/(projects|environments)/{pid}/", status=403, body=body or SCOPED_AWAY,
                                times=99))


def audit_all(standin, out: Path, *extra: str):
    args = ["audit", "--host", standin.url, "--all-projects", "--out", str(out), "--no-plugins", *extra]
    return CliRunner().invoke(cli, args, env={"POSTHOG_PERSONAL_API_KEY": standin.api_key}, catch_exceptions=False)


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_a_403_project_is_an_errored_section_not_an_exit_2(standin, scenario, tmp_path):
    add_sibling(scenario)
    refuse(standin)
    result = audit_all(standin, tmp_path)
    assert result.exit_code == 1, result.output  # not ready; not a usage error
    run = report(tmp_path)
    assert [p["project_id"] for p in run["target"]["projects"]] == ["4242", "4243"]
    readable, unreadable = run["projects"]
    # The readable project is audited in full; the other is a section saying why it is missing.
    assert readable["results"] and not readable.get("error")
    assert {r["project_id"] for r in run["results"]} == {"4242"}
    assert unreadable["target"]["project_name"] == "Hedgebox (marketing site)"
    assert "API key does not have access to the requested project: ID 4243." in unreadable["error"]
    assert unreadable["readiness"]["ready"] is False and unreadable["readiness"]["score"] is None
    assert run["readiness"]["ready"] is False and run["readiness"]["score"] is None
    assert any(r.startswith("Hedgebox (marketing site): Project 4243 could not be audited: access to "
                            "/api/projects/4243/ was refused (403)") for r in run["readiness"]["reasons"])
    assert run["facts"]["project"]["status"] == "error"
    # The account is named after the project that could be read.
    assert run["target"]["organization_name"] == scenario.organization["name"]
    html = (tmp_path / "report.html").read_text()
    assert "Project 4243 could not be audited" in html
    assert "Project 4243 could not be audited" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("scenario", ["healthy"], indirect=True)
def test_an_unreadable_project_keeps_a_ready_account_not_ready(standin, scenario, tmp_path):
    add_sibling(scenario)
    attestations = tmp_path / "attestations.toml"
    attestations.write_text(FULL_ATTESTATIONS)
    assert audit_all(standin, tmp_path / "all", "--attestations", str(attestations)).exit_code == 0  # baseline
    refuse(standin)
    result = audit_all(standin, tmp_path / "one-refused", "--attestations", str(attestations))
    assert result.exit_code == 1
    assert "Not ready for handover" in result.output
    reasons = report(tmp_path / "one-refused")["readiness"]["reasons"]
    assert reasons == [r for r in reasons if "could not be audited" in r]  # the only thing in the way


def test_health_mode_band_is_unknown_with_an_unreadable_project(standin, scenario, tmp_path):
    add_sibling(scenario)
    refuse(standin)
    result = audit_all(standin, tmp_path, "--mode", "health")
    assert result.exit_code == 1
    assert report(tmp_path)["readiness"]["band"] == "Unknown"


def test_when_no_project_can_be_read_it_is_a_one_line_error(standin, scenario, tmp_path):
    add_sibling(scenario)
    refuse(standin, "4242")
    refuse(standin, "4243")
    assert_one_line_error(audit_all(standin, tmp_path), 2, "access to /api/projects/4242/ was refused (403)")
    assert not (tmp_path / "report.json").exists()


def test_a_refused_key_still_stops_the_account(standin, scenario, tmp_path):
    add_sibling(scenario)
    standin.faults.append(Fault(r"^/api/projects/4243/$", status=401, body={"detail": "Invalid personal API key."},
                                times=99))
    assert_one_line_error(audit_all(standin, tmp_path), 2, "the PostHog API key was refused (401)")


def test_explicit_projects_still_fail_on_a_project_that_cannot_be_read(standin, scenario, tmp_path):
    """A project named on the command line that cannot be read is the user's mistake to hear about (exit 2)."""
    add_sibling(scenario)
    refuse(standin)
    args = ["audit", "--host", standin.url, "--project", "4242", "--project", "4243", "--out", str(tmp_path),
            "--no-plugins"]
    result = CliRunner().invoke(cli, args, env={"POSTHOG_PERSONAL_API_KEY": standin.api_key})
    assert_one_line_error(result, 2, "access to /api/projects/4243/ was refused (403)")


def test_batch_with_all_projects_audits_what_it_can(standin, scenario, tmp_path, monkeypatch):
    add_sibling(scenario)
    refuse(standin)
    monkeypatch.setenv("BOOK_KEY", standin.api_key)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(f'[defaults]\nhost = "{standin.url}"\napi_key_env = "BOOK_KEY"\n\n'
                        f'[[accounts]]\nname = "Hedgebox"\nall_projects = true\n\n'
                        f'[[accounts]]\nname = "Hedgebox by org"\norganization = "{scenario.organization["id"]}"\n')
    out = tmp_path / "book"
    result = CliRunner().invoke(cli, ["batch", str(accounts), "--out", str(out), "--no-plugins"],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    for slug in ("hedgebox", "hedgebox-by-org"):
        run = json.loads((out / slug / "report.json").read_text())
        assert [p.get("error") is not None for p in run["projects"]] == [False, True]
        assert run["readiness"]["ready"] is False
