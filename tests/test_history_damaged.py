"""A damaged history (issue 13, item 7): one unreadable parquet file under history/ stops neither `history`,
`audit --history` nor `batch`; it is skipped with one warning naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def demo_audits(history: Path, out: Path, times: int) -> None:
    for _ in range(times):
        assert invoke(["audit", "--demo", "--out", str(out), "--history", str(history), "-q"]).exit_code == 1


def damage(history: Path, table: str, how: str) -> Path:
    victim = sorted((history / table).glob("date=*/*.parquet"))[0]
    if how == "garbage":
        victim.write_bytes(b"not a parquet file")
    elif how == "truncated":
        victim.write_bytes(victim.read_bytes()[:40])
    else:
        victim.write_bytes(b"")
    return victim


def warnings_about(output: str, path: Path) -> list[str]:
    return [ln for ln in output.splitlines() if "warning" in ln and str(path) in ln]


@pytest.mark.parametrize(("table", "how"), [("runs", "garbage"), ("categories", "truncated"), ("checks", "empty")])
def test_audit_and_history_skip_a_damaged_file_with_one_warning(tmp_path, table, how):
    history, out = tmp_path / "history", tmp_path / "out"
    demo_audits(history, out, 3)
    victim = damage(history, table, how)
    result = invoke(["audit", "--demo", "--out", str(out), "--history", str(history), "-q"])
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert len(warnings_about(result.output, victim)) == 1, result.output
    run = json.loads((out / "report.json").read_text())
    assert run["changes"] is not None  # compared with the runs that could be read
    listed = invoke(["history", "--dir", str(history)])
    assert listed.exit_code == 0 and "4242" in listed.output
    account = listed.output.splitlines()[-1]
    trend = invoke(["history", "--dir", str(history), "--account", account])
    assert trend.exit_code == 0, trend.output
    assert len([ln for ln in trend.output.splitlines() if "warning" not in ln]) >= 3


def test_batch_goes_on_past_a_damaged_history(standin, tmp_path, monkeypatch):
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(f'[[accounts]]\nname = "Hedgebox"\nhost = "{standin.url}"\nprojects = [4242]\n')
    args = ["batch", str(accounts), "--out", str(tmp_path / "p"), "--history", str(tmp_path / "h"), "--no-plugins"]
    env = {"POSTHOG_PERSONAL_API_KEY": standin.api_key}
    assert invoke(args, env).exit_code == 1
    victim = damage(tmp_path / "h", "runs", "garbage")
    result = invoke(args, env)
    assert result.exit_code == 1 and "1 accounts: 0 healthy, 1 not, 0 failed" in result.output, result.output
    assert len(warnings_about(result.output, victim)) == 1
