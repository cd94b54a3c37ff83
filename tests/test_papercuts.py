"""Papercuts a user meets on the command line (issue 13): pipes, help text, option checks, report wording."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from click.testing import CliRunner

from auditor.cli import cli
from auditor.config import Settings
from tests.conftest import ROOT


def invoke(args: list[str], env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, args, env=env or {}, catch_exceptions=False)


def test_output_into_a_closed_pipe_exits_quietly():
    """`posthog-auditor checks | head`: the reader is gone before anything is written (its end of the pipe is
    closed first, so the outcome never depends on timing)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "auditor.cli", "checks", "--no-plugins"], stdout=write_end,
                              stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
    finally:
        os.close(write_end)
    assert proc.stderr.decode() == ""  # no "error: Broken pipe", no "Exception ignored"
    assert proc.returncode == 141  # 128 + SIGPIPE, what `set -o pipefail` sees from any tool cut off by head


def test_concurrency_default_has_one_source():
    default = Settings().concurrency
    help_text = " ".join(invoke(["audit", "--help"]).output.split())
    assert f"Parallel requests [default: {default}," in help_text
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"`--concurrency N` bounds requests in flight \(default {default};", readme)
    assert f"concurrency = {default}" in (ROOT / "auditor" / "config.py").read_text()  # the documented example
