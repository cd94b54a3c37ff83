"""Recompute the demo's precomputed HogQL answers from its raw events, by running the audit's current queries on
embedded ClickHouse with PostHog's printing rules:

    python -m tests.demo_answers          # rewrites auditor/demo/answers.json

tests/test_queries.py fails when the committed answers differ from what the current queries compute.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from auditor.demo import DEMO_ANSWERS, DEMO_PROPERTY_TYPES, demo_scenario, query_key
from auditor.demo.events import demo_events
from auditor.queries import audit_queries
from tests.clickhouse import engine

CLOCK = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # the answers are computed as of this moment, then moved


def compute() -> dict[str, Any]:
    scenario = demo_scenario(CLOCK)
    timezone = scenario.project["timezone"]
    answers = {}
    for text in audit_queries().values():
        body = engine().hogql(text, demo_events(), timezone=timezone, now=CLOCK, property_types=DEMO_PROPERTY_TYPES)
        answers[query_key(text)] = {k: body[k] for k in ("columns", "types", "results", "is_cached", "error")}
    return {"clock": CLOCK.isoformat(), "timezone": timezone, "property_types": DEMO_PROPERTY_TYPES,
            "answers": answers}


def render(answers: dict[str, Any]) -> str:
    """One row per line: readable in a diff, small on disk."""
    lines = ["{", f'  "clock": {json.dumps(answers["clock"])},', f'  "timezone": {json.dumps(answers["timezone"])},',
             f'  "property_types": {json.dumps(answers["property_types"], sort_keys=True)},', '  "answers": {']
    items = list(answers["answers"].items())
    for n, (key, body) in enumerate(items):
        lines.append(f'    {json.dumps(key)}: {{')
        lines.append(f'      "columns": {json.dumps(body["columns"])},')
        lines.append(f'      "types": {json.dumps(body["types"])},')
        lines.append('      "is_cached": false, "error": null,')
        rows = body["results"]
        lines.append('      "results": [' + ("" if rows else "]"))
        for i, row in enumerate(rows):
            lines.append(f"        {json.dumps(row)}" + ("," if i < len(rows) - 1 else ""))
        if rows:
            lines.append("      ]")
        lines.append("    }" + ("," if n < len(items) - 1 else ""))
    lines += ["  }", "}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    DEMO_ANSWERS.write_text(render(compute()), encoding="utf-8")
    print(f"wrote {DEMO_ANSWERS}")
