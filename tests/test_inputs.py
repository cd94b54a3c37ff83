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
