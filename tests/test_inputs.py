"""Input that used to be accepted but wrong (issue 13): accounts files, thresholds, attestations."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from auditor.batch import load_accounts
from auditor.cli import cli


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def one_line_error(result, text: str) -> None:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and text in lines[0], result.output
    assert "Traceback" not in result.output


# ---- accounts.toml -------------------------------------------------------------------------------

ACCOUNT = '[[accounts]]\nname = "A"\nhost = "eu"\n'


@pytest.mark.parametrize(("content", "message"), [
    (ACCOUNT + 'projects = "4242"\n', "projects must be a list of numeric ids"),
    (ACCOUNT + "projects = 4242\n", "projects must be a list of numeric ids"),
    (ACCOUNT + 'projects = [4242]\norganization = "0191b5c1"\n', "give projects or organization, not both"),
    (ACCOUNT + "organization = 42\n", "organization must be the organization id"),
    ('[defaults]\nhost = "eu"\napi_key = "phx_x"\n' + ACCOUNT + "projects = [1]\n",
     "unknown key 'api_key' under [defaults] (known: api_key_env, host)"),
    ('[defaults]\nparallel = 4\n' + ACCOUNT + "projects = [1]\n", "unknown key 'parallel' under [defaults]"),
    ('[default]\nhost = "eu"\n' + ACCOUNT + "projects = [1]\n", "unknown section [default]"),
    ('defaults = "eu"\n' + ACCOUNT + "projects = [1]\n", "[defaults] must be a table"),
])
def test_accounts_file_mistakes_are_one_line_errors(tmp_path, content, message):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(content)
    one_line_error(invoke(["batch", str(accounts), "--out", str(tmp_path / "o")]), message)
    assert not (tmp_path / "o").exists()


def test_accounts_file_still_reads_what_it_should(tmp_path):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[defaults]\nhost = "eu"\napi_key_env = "K"\n'
                        '[[accounts]]\nname = "A"\nprojects = [4242, "4243"]\n'
                        '[[accounts]]\nname = "B"\norganization = "0191b5c1"\n')
    a, b = load_accounts(str(accounts))
    assert a.projects == ["4242", "4243"] and a.api_key_env == "K" and a.host == "https://eu.posthog.com"
    assert b.organization == "0191b5c1" and b.all_projects and b.projects == []


# ---- auditor.toml thresholds ---------------------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    ('[checks."product_analytics.autocapture-tuned"]\nmax_share = -5\n',
     "product_analytics.autocapture-tuned.max_share is a share: it must be between 0 and 1"),
    ('[checks."platform.reverse-proxy"]\npass_share = 90\n', "pass_share is a share: it must be between 0 and 1"),
    ('[checks."surveys.response-rate"]\npass_rate = 1.5\n', "pass_rate is a share"),
    ('[checks."platform.ingestion-warnings"]\nfail_count = -1\n', "fail_count must be 0 or more, got -1"),
    ('[checks."handover.account-plan"]\nmax_age_days = -30\n', "max_age_days must be 0 or more"),
    ("[weights]\nsurveys = -2\n", "weights.surveys must be 0 or more, got -2"),
    ("[vitally]\nmin_arr = -1\n", "vitally.min_arr must be 0 or more"),
    ("[gate]\nmin_readiness = 180\n", "gate.min_readiness must be between 0 and 100, got 180"),
])
def test_thresholds_are_range_checked_with_clear_messages(tmp_path, content, message):
    config = tmp_path / "auditor.toml"
    config.write_text(content)
    result = invoke(["audit", "--demo", "--config", str(config), "--out", str(tmp_path / "o")])
    one_line_error(result, message)
    assert "None" not in result.output


def test_thresholds_at_their_bounds_are_accepted(tmp_path):
    config = tmp_path / "auditor.toml"
    config.write_text('[checks."product_analytics.autocapture-tuned"]\nmax_share = 1\n'
                      '[checks."platform.ingestion-warnings"]\nwarn_count = 0\n')
    assert invoke(["audit", "--demo", "--config", str(config), "--out", str(tmp_path / "o"), "-q"]).exit_code == 1


# ---- attestations --------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    ('[support_channels]\nanswer = "yes"\nby = "x"\ndate = 2999-01-01\n',
     "[support_channels] date 2999-01-01 is in the future"),
    ('[account_plan]\nanswer = "yes"\nby = "x"\ndate = 2026-01-01\n', '[account_plan] answer = "yes" needs the link'),
])
def test_attestation_mistakes_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "a.toml"
    path.write_text(content)
    one_line_error(invoke(["audit", "--demo", "--out", str(tmp_path / "o"), "--attestations", str(path)]), message)


def test_attestation_dates_up_to_today_and_plans_with_links_are_accepted(tmp_path):
    from datetime import date

    from auditor.attestations import load_attestations
    from checks.handover import ATTESTATION_ITEMS

    path = tmp_path / "a.toml"
    path.write_text(f'[account_plan]\nanswer = "yes"\nlink = "https://docs.example.com/p"\nby = "x"\n'
                    f'date = {date.today().isoformat()}\n[invoices_paid]\nanswer = "no"\nby = "x"\ndate = 2026-01-01\n')
    items = load_attestations(str(path), ATTESTATION_ITEMS)["items"]
    assert items["account_plan"]["link"] == "https://docs.example.com/p" and items["invoices_paid"]["answer"] == "no"


@pytest.mark.parametrize("account", [
    'Acme"\n[support_channels]\nanswer = "yes"\nby = "mallory"\ndate = 2026-01-01\n#',
    "Acme\r\n[account_plan]\nlink = \"https://evil.example\"\nby = \"m\"\ndate = 2026-01-01",
    "Acme ''' \"\"\" \\ \x1b[2J \x00 \u202e\u2028",
])
def test_attest_init_with_a_hostile_account_name_writes_a_valid_unanswered_template(tmp_path, account):
    from auditor.attestations import load_attestations
    from checks.handover import ATTESTATION_ITEMS

    path = tmp_path / "a.toml"
    result = invoke(["attest", "--init", "--out", str(path), "--account", account])
    assert result.exit_code == 0, result.output
    assert load_attestations(str(path), ATTESTATION_ITEMS)["items"] == {}  # valid TOML, nothing answered
    assert path.read_text().startswith("# Handover attestations for Acme")
