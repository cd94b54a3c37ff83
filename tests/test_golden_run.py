"""The RunResult is the public contract every renderer, history, Vitally and telemetry read: a golden file holds
the JSON the demo audit produces, so any change to its shape or its findings shows as a diff to review.

    python -m tests.test_golden_run        # rewrites tests/data/golden_demo_run.json after an intended change

What changes from run to run (when it ran, the days the demo's dates fall on, how long it took, the run id) is
masked; everything else must match.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from auditor.account import Outputs, assess
from auditor.config import Settings
from auditor.outputs.render import render_json
from auditor.registry import builtin_registry

GOLDEN = Path(__file__).parent / "data" / "golden_demo_run.json"
# The demo project is built relative to now: its moments and days move with the clock, its counts do not.
ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
ISO_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
VARIES = ("run_id", "stats")  # besides moments: the id holds one, stats are timings and request counts


def demo_run() -> dict[str, Any]:
    from auditor.cli import _demo_account

    registry = builtin_registry()
    run = assess(_demo_account(), registry, list(registry.checks.values()), Settings(), Outputs())
    return json.loads(render_json(run))  # exactly what report.json holds


def masked(run: Any) -> Any:
    if isinstance(run, dict):
        return {k: "<varies>" if k in VARIES else masked(v) for k, v in run.items()}
    if isinstance(run, list):
        return [masked(v) for v in run]
    if isinstance(run, str):
        return ISO_DAY.sub("<day>", ISO_MOMENT.sub("<moment>", run))
    return run


def test_the_demo_run_result_matches_the_golden_file():
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    actual = masked(demo_run())
    assert actual == expected, "the RunResult changed: review, then `python -m tests.test_golden_run` to accept it"


def test_masking_keeps_everything_but_moments_and_timings():
    run = {"run_id": "20261123T172009Z-4242-78c267", "stats": {"wall_seconds": 0.1},
           "results": [{"summary": "Last event at 2026-11-23T17:20:08.405946+00:00, 3 days ago.", "score": 40,
                        "rows": [["2026-11-20", 7]]}]}
    assert masked(run) == {"run_id": "<varies>", "stats": "<varies>",
                           "results": [{"summary": "Last event at <moment>, 3 days ago.", "score": 40,
                                        "rows": [["<day>", 7]]}]}


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(masked(demo_run()), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
