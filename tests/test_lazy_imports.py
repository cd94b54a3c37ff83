"""Heavy libraries are imported where they are used: `--help` and `checks` answer at once, and a batch or an
audit sends its first request before polars (~250 ms) or jinja2 (~70 ms) has loaded. The timed figures live
in benchmarks/; this only guards the imports, in a fresh interpreter (this one has imported everything)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("polars", "jinja2", "requests", "posthog")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_modules_a_batch_or_an_audit_starts_with_import_no_heavy_library():
    assert loaded_after("import auditor.cli, auditor.batch, auditor.account, auditor.outputs.history") == set()


def test_listing_the_checks_imports_no_heavy_library():
    code = ("from click.testing import CliRunner\nfrom auditor.cli import cli\n"
            "assert CliRunner().invoke(cli, ['checks']).exit_code == 0")
    assert loaded_after(code) == set()
