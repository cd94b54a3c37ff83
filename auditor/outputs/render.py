"""Renderers: HTML, JSON and Markdown, each from the RunResult dict alone."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from auditor.model import SCHEMA_VERSION
from auditor.text import neutralise

if TYPE_CHECKING:
    from jinja2 import Environment, Template
    from jinja2.bccache import BytecodeCache

FILE_NAMES = {"html": "report.html", "json": "report.json", "md": "report.md"}


def template_dir() -> Path:
    """Inside the wheel the templates ship as auditor/report_templates; in a checkout they sit at the top."""
    package = Path(__file__).resolve().parent.parent  # auditor/
    for candidate in (package / "report_templates", package.parent / "report_templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("report_templates not found next to the auditor package")


def _finalize_html(value: Any) -> Any:
    # Escaping makes a name inert as markup; a bidi override in it could still reorder the text after it (the
    # score in the title, a verdict): shown as an escape instead. Newlines are only whitespace in HTML.
    if isinstance(value, str) and not isinstance(value, Markup):
        return neutralise(value, keep_lines=True)
    return value


def _finalize_markdown(value: Any) -> Any:
    # Markdown is read in terminals and chat tools: no control character, no new line from inside a name.
    return neutralise(value) if isinstance(value, str) else value


def bytecode_cache(env: Environment, flavour: str) -> BytecodeCache | None:
    """Compiled templates kept between runs: compiling them costs every process ~0.2 s, more than rendering a
    report. They live in jinja2's own per-user directory (mode 0700, refused if another user owns it). An entry
    is used only if its template's source checksum matches, and its file name carries the jinja2 version, the
    flavour and the options, so a changed template or setting compiles afresh. A cache that cannot be read or
    written is no cache, never an error."""
    import hashlib

    import jinja2
    from jinja2.bccache import Bucket

    class QuietCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket: Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # a damaged entry (marshal refuses it) or an unreadable file: compile instead
                bucket.reset()

        def dump_bytecode(self, bucket: Bucket) -> None:
            with contextlib.suppress(OSError):
                super().dump_bytecode(bucket)

    # What shapes the compiled code besides the source (jinja2's own key is the template name and source only).
    shaping = (jinja2.__version__, flavour, env.trim_blocks, env.lstrip_blocks, env.keep_trailing_newline,
               env.newline_sequence, env.block_start_string, env.variable_start_string, env.comment_start_string,
               sorted(env.extensions), env.finalize is not None, env.autoescape is not False)
    fingerprint = hashlib.sha256(repr(shaping).encode()).hexdigest()[:12]
    try:
        return QuietCache(pattern=f"posthog-auditor-{fingerprint}-%s.cache")
    except (OSError, RuntimeError):  # no safe per-user directory
        return None


@functools.cache  # one per process and flavour: each template is compiled once, not once per report
def environment(markdown: bool = False) -> Environment:
    """The template environment: HTML autoescaped; every printed value, in either, passed through `neutralise`."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(template_dir())),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the templates ship with the tool: no stat of the file before every report
        finalize=_finalize_markdown if markdown else _finalize_html,
    )
    env.bytecode_cache = bytecode_cache(env, "markdown" if markdown else "html")
    env.filters["score"] = format_score
    env.filters["cell"] = format_cell
    env.filters["arc"] = gauge_arc
    env.filters["pct"] = format_pct
    env.filters["category_label"] = category_label
    env.filters["category_score"] = category_score_text
    env.filters["usd"] = format_usd
    # Product ids as their titles, from the run's own scope (which names every product one can pay for).
    env.filters["titles"] = lambda ids, names: [(names or {}).get(i, i) for i in ids or []]
    env.filters["impact_text"] = impact_text
    env.globals["savings_headline"] = savings_headline
    env.globals["for_customer"] = lambda run: isinstance(run, dict) and run.get("audience") == "customer"
    env.globals["ordered_findings"] = ordered_findings
    env.globals["ACTION_SECTIONS"] = ACTION_SECTIONS
    return env


def gauge_arc(score: Any) -> str:
    """The SVG path of a semicircular gauge filled to score/100 (centre 75,80; radius 60)."""
    fraction = max(0.0, min(float(score), 100.0)) / 100
    angle = math.pi * (1 - fraction)
    x, y = 75 + 60 * math.cos(angle), 80 - 60 * math.sin(angle)
    return f"M 15 80 A 60 60 0 0 1 {x:.2f} {y:.2f}"


def format_pct(share: Any) -> str:
    value = float(share or 0) * 100
    return "0%" if value == 0 else ("<0.1%" if value < 0.1 else (f"{value:.1f}%" if value < 10 else f"{value:.0f}%"))


def format_usd(value: Any) -> str:
    amount = float(value or 0)
    return "<$0.01" if 0 < amount < 0.005 else f"${amount:,.2f}"


def format_units(count: Any, unit: str) -> str:
    """"145 recordings", "1 paid product"."""
    n = float(count or 0)
    text = f"{n:,.0f}"
    return f"{text} {unit}" if round(n) == 1 else f"{text} {unit}s"


def impact_text(impact: dict[str, Any] | None) -> str:
    """One finding's cost in a few words: "$0.43/month (0.03% of the bill)", or its units with "$ unknown"."""
    if not impact:
        return ""
    if impact.get("usd_per_month") is not None:
        share = impact.get("share_of_bill")
        return f"{format_usd(impact['usd_per_month'])}/month" + \
            (f" ({format_pct(share)} of the bill)" if share else "")
    reason = impact.get("unpriced_reason") or "not priced"
    return f"{format_units(impact.get('units_per_month'), impact.get('unit') or 'unit')}/month, $ unknown ({reason})"


def savings_headline(savings: dict[str, Any] | None) -> str | None:
    """The run's savings as every output opens with them (HTML, Markdown, the Vitally note): "Potential savings:
    $X/month (Y% of the bill)", or the units with "$ unknown" when billing could not price them."""
    if not isinstance(savings, dict):
        return None  # a report from before savings were computed
    if not savings.get("findings"):
        return "Potential savings: none found by these checks"
    units = ", ".join(f"{format_units(u['units_per_month'], u['unit'])}/month" for u in savings.get("unpriced_units")
                      or [])
    reasons = "; ".join(savings.get("unpriced_reasons") or []) or "not priced"
    if savings.get("usd_per_month") is None:
        return f"Potential savings: {units}, $ unknown ({reasons})"
    share = savings.get("share_of_bill")
    text = f"Potential savings: {format_usd(savings['usd_per_month'])}/month" + \
        (f" ({format_pct(share)} of the bill)" if share is not None else "")
    return text + (f", plus {units} not priced ({reasons})" if units else "")


def format_score(value: Any) -> str:
    return "unknown" if value is None else f"{float(value):.0f}"


def category_label(category: dict[str, Any]) -> str:
    """A category's name as every output shows it: HTML, Markdown and the Vitally note say the same thing."""
    if category["id"] == "handover" and not category.get("weight"):
        return f"{category['title']} (gate only)"  # scored like the others, but counted only by the gate
    return str(category["title"])


def category_score_text(category: dict[str, Any]) -> str:
    """"n/a" when no scored check applies, "unknown" when an error makes it so, else the rounded score."""
    return "n/a" if category.get("state") == "not_applicable" else format_score(category.get("score"))


def format_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def validated_run_result(run: Any) -> dict[str, Any]:
    if not isinstance(run, dict) or "results" not in run or "readiness" not in run:
        raise ValueError("not a posthog-auditor report (no results/readiness)")
    if run.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"report schema_version {run.get('schema_version')!r} is not {SCHEMA_VERSION}")
    return run


SEVERITY_RANK = {"blocker": 0, "major": 1, "minor": 2, "info": 3}
STATUS_RANK = {"fail": 0, "error": 1, "warn": 2, "manual": 3}
# The sections of the findings, in report order; the first four are what a reader acts on.
ACTION_SECTIONS = ("blocking", "to_fix", "manual", "out_of_scope")


def ordered_findings(run: Mapping[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """The findings in the order a reader acts on them: what blocks the handover first (in-scope blockers and
    the handover preconditions not met, by severity then status), then the other in-scope findings to fix, then
    what needs a person, then findings in products the customer does not pay for (shown, not counted), then
    passes, information and what did not apply. Within a section, ties keep the catalogue's order."""
    in_scope = {c["id"]: c["in_scope"] for c in run["categories"]}
    health = run.get("mode") == "health"

    def scoped(r: dict[str, Any]) -> bool:
        return bool(in_scope.get(r["category"], True))  # plugin errors have no category row: they count

    def blocks(r: dict[str, Any]) -> bool:
        if not scoped(r):
            return False
        if r["category"] == "handover":  # every precondition must be met; health mode does not ask
            return not health and r["status"] in ("fail", "error", "manual")
        return r["severity"] == "blocker" and r["status"] in ("fail", "error")

    def rank(r: dict[str, Any]) -> tuple[int, int]:
        return SEVERITY_RANK.get(r["severity"], 9), STATUS_RANK.get(r["status"], 9)

    results = run["results"]
    placed = [False] * len(results)

    def take(test: Any, ordered: bool = True) -> list[dict[str, Any]]:
        chosen = []
        for i, r in enumerate(results):
            if not placed[i] and test(r):
                placed[i] = True
                chosen.append(r)
        return sorted(chosen, key=rank) if ordered else chosen

    sections = [
        ("blocking", "Blockers" if health else "Blocks the handover", take(blocks)),
        ("to_fix", "To fix", take(lambda r: scoped(r) and r["status"] in ("fail", "error", "warn"))),
        ("manual", "Needs a person", take(lambda r: scoped(r) and r["status"] == "manual")),
        ("out_of_scope", "Not paid for (shown, not counted)",
         take(lambda r: not scoped(r) and r["status"] in ("fail", "error", "warn", "manual"))),
        ("pass", "Passed", take(lambda r: r["status"] == "pass", ordered=False)),
        ("info", "For information", take(lambda r: r["status"] == "info", ordered=False)),
        ("skip", "Not applicable", take(lambda r: r["status"] == "skip", ordered=False)),
        ("other", "Other", take(lambda r: True, ordered=False)),
    ]
    return [section for section in sections if section[2]]


_compiling = threading.Lock()


def template(name: str) -> Template:
    """A compiled template, by file name (a .md.j2 gets the Markdown environment). One at a time: the accounts
    of a batch finish together, and without the lock each of its threads compiled the same template again
    (0.2 s each, on one GIL)."""
    with _compiling:
        return environment(markdown=name.endswith(".md.j2")).get_template(name)


def render_html(run: Mapping[str, Any]) -> str:
    return template("report.html.j2").render(run=validated_run_result(run))


def render_markdown(run: Mapping[str, Any]) -> str:
    return template("report.md.j2").render(run=validated_run_result(run))


def render_json(run: Mapping[str, Any]) -> str:
    return json.dumps(validated_run_result(run), indent=2, sort_keys=False, default=str) + "\n"


RENDERERS = {"html": render_html, "json": render_json, "md": render_markdown}


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside the target, then rename: a report is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be opened and shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rendered(run: Mapping[str, Any], formats: list[str], audience: str = "internal") -> dict[str, str]:
    """The text of each format of a run's report for an audience, every one from the same view
    (auditor/outputs/audience.py)."""
    from auditor.outputs.audience import for_audience

    view = for_audience(validated_run_result(run), audience)
    return {fmt: RENDERERS[fmt](view) for fmt in formats}


def write_reports(run: Mapping[str, Any], out_dir: Path, formats: list[str], audience: str = "internal") -> list[Path]:
    """The reports of a run for an audience, written. Everything is rendered first, so a template error leaves
    the previous reports untouched."""
    paths = []
    for fmt, text in rendered(run, formats, audience).items():
        path = out_dir / FILE_NAMES[fmt]
        write_atomic(path, text)
        paths.append(path)
    return paths
