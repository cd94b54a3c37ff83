"""Benchmarks: fast at every size, cheap on rate limits, robust under faults. See benchmarks/README.md.

    python -m benchmarks.run                  # everything, 80 ms of latency per request (about 10 minutes)
    python -m benchmarks.run --quick          # smaller sizes and batches, a minute or two
    python -m benchmarks.run --only startup,audit --latency 0.05 --json results.json
    python -m benchmarks.run --write-readme   # also put the tables and verdicts into benchmarks/README.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditor.config import Settings
from auditor.demo import QueryRefused, Scenario
from auditor.outputs.render import render_html
from auditor.queries import audit_queries
from auditor.registry import load_registry
from benchmarks import scenarios
from tests import clickhouse
from tests.standin import StandIn, throttles_for

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "benchmarks" / "README.md"
LAUNCHER = ROOT / "benchmarks" / "launcher.py"
KEY = "phx_benchmark_key_not_real"
TARGETS = {"hogql": 1, "startup_ms": 150, "critical_path_ratio": 1.3, "speedup_vs_serial": 5.0, "rss_mb": 300,
           "report_mb": 2.0, "batch_beyond_share": 0.05, "formats_ratio": 1.2}
# PostHog's throttles per personal API key (posthog/rate_limit.py; ../shared/reference/posthog_api.md, Corrections
# 5), by the names of tests/standin.throttles_for: (requests, window in seconds).
Limits = dict[str, tuple[int, float]]
POSTHOG_THROTTLES: Limits = {
    "hogql": (120, 3600.0), "burst": (480, 60.0), "sustained": (4800, 3600.0),
    "clickhouse_burst": (240, 60.0), "clickhouse_sustained": (1200, 3600.0)}


def cli_command() -> list[str]:
    """The CLI as the user runs it: the installed console script, else the module."""
    script = Path(sys.executable).parent / "posthog-auditor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "auditor.cli"]


# ---- children: their own wall time and peak RSS ---------------------------------------------------------

def run_process(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command through benchmarks/launcher.py, which spawns it from a fresh, small interpreter and reaps it
    with os.wait4: the wall time from spawn to exit and the peak RSS are the command's own, whatever the harness
    holds (a child spawned from the harness would report the harness's high-water mark as its own)."""
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "out", "w+b") as out, \
            open(Path(tmp) / "err", "w+b") as err:
        result = Path(tmp) / "result"
        subprocess.run([sys.executable, "-I", "-S", str(LAUNCHER), str(result), *argv], cwd=ROOT, stdout=out,
                       stderr=err, env=env if env is not None else os.environ.copy(), check=True)
        code, wall, rss_kib, cpu, floor_kib = result.read_text().split()
        out.seek(0)
        err.seek(0)
        return {"exit": int(code), "wall_s": float(wall), "rss_mb": int(rss_kib) / 1024, "cpu_s": float(cpu),
                "floor_mb": int(floor_kib) / 1024, "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace")}


def run_child(args: list[str]) -> dict[str, Any]:
    """The CLI in a child process, with the benchmark's key."""
    return run_process([*cli_command(), *args], env={**os.environ, "POSTHOG_PERSONAL_API_KEY": KEY})


def answered_once(answer: Callable[[Scenario, str], Any]) -> Callable[[Scenario, str], Any]:
    """A project's HogQL answers, computed on ClickHouse the first time and then the very same object: the stand-in
    encodes it once (StandIn._encode), so its own CPU (a deep copy and 6 MB of JSON a query at ×1) does not pose
    as API latency in the measured audits. The answers are unchanged."""
    answers: dict[str, Any] = {}

    def memo(project: Scenario, text: str) -> Any:
        if text not in answers:
            answers[text] = answer(project, text)
        return answers[text]

    return memo


@contextmanager
def serve(scenario: Scenario, **options: Any):
    """A stand-in for the scenario whose HogQL answers are ready before anything is measured."""
    for project in (scenario, *scenario.siblings.values()):
        project.hogql = project.hogql or answered_once(clickhouse.answer)
        for text in audit_queries().values():
            with contextlib.suppress(QueryRefused):
                project.hogql(project, text)
    standin = StandIn(scenario, api_key=KEY, **options).start()
    try:
        yield standin
    finally:
        standin.stop()


def audit(url: str, out: Path, *extra: str) -> dict[str, Any]:
    child = run_child(["audit", "--host", url, "--project", "4242", "--out", str(out), "--no-plugins", "--quiet",
                       *extra])
    if child["exit"] not in (0, 1):
        raise RuntimeError(f"audit failed ({child['exit']}): {child['stderr'][-500:]}")
    run = json.loads((out / "report.json").read_text())
    return {**child, "run": run, "report_bytes": (out / "report.html").stat().st_size}


def render_seconds(run: dict[str, Any]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        render_html(run)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# ---- start-up ------------------------------------------------------------------------------------------

def bench_startup(runs: int, warm_up: bool = True) -> list[dict[str, Any]]:
    """Whole-process wall of `posthog-auditor --help` and `posthog-auditor checks` against `python -c pass` (the
    same interpreter and site-packages), interleaved, median of `runs`. A first round warms the file cache and
    the bytecode and is not counted."""
    cli = cli_command()
    commands = {"python -c pass": [sys.executable, "-c", "pass"], "posthog-auditor --help": [*cli, "--help"],
                "posthog-auditor checks": [*cli, "checks"]}
    # As a user's installed tool runs: pip compiles the bytecode at install, so the warm-up round may write it here
    # even where the environment says not to (PYTHONDONTWRITEBYTECODE would compile every module on every start).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    walls: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, float] = {}
    for i in range(runs + (1 if warm_up else 0)):
        for name, argv in commands.items():
            child = run_process(argv, env)
            if child["exit"] != 0:
                raise RuntimeError(f"{name} exited {child['exit']}: {child['stderr'][-500:]}")
            if i or not warm_up:
                walls[name].append(child["wall_s"])
                rss[name] = max(rss.get(name, 0.0), child["rss_mb"])
    base = statistics.median(walls["python -c pass"])
    return [{"command": name, "runs": len(w), "median_s": statistics.median(w), "min_s": min(w),
             "over_python_ms": (statistics.median(w) - base) * 1000, "rss_mb": rss[name]}
            for name, w in walls.items()]


def startup_verdicts(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    base = rows[0]["median_s"] * 1000
    return [(f"`{row['command']}` starts in ≤ {TARGETS['startup_ms']} ms over `python -c pass`",
             row["over_python_ms"] <= TARGETS["startup_ms"],
             f"+{row['over_python_ms']:.0f} ms, median of {row['runs']}; python -c pass {base:.0f} ms")
            for row in rows[1:]]


# ---- one audit -----------------------------------------------------------------------------------------

def bench_audit(name: str, build: Callable[[], Scenario], latency: float, baseline: bool,
                repeats: int = 3) -> dict[str, Any]:
    """One audit of the scenario, `repeats` times after a warm-up; the figures are those of the run with the
    median gathering time (one run's figures, not a mix)."""
    scenario = build()
    with tempfile.TemporaryDirectory() as tmp, serve(scenario, latency=latency, cache_answers=True) as standin:
        audit(standin.url, Path(tmp) / "warm-up")  # the stand-in encodes its answers once, before measuring
        runs = [audit(standin.url, Path(tmp) / f"run-{i}") for i in range(repeats)]
        serial = audit(standin.url, Path(tmp) / "serial", "--concurrency", "1") if baseline else None
    fast = sorted(runs, key=lambda r: r["run"]["stats"]["gather_seconds"])[len(runs) // 2]
    stats = fast["run"]["stats"]
    critical = stats["request_depth"] * latency
    row = {
        "scenario": name, "http_requests": stats["http_requests"], "hogql_queries": stats["hogql_queries"],
        "process_s": fast["wall_s"], "wall_s": stats["wall_seconds"], "gather_s": stats["gather_seconds"],
        "request_depth": stats["request_depth"], "critical_path_s": critical,
        "ratio": stats["gather_seconds"] / critical if critical else None,
        "rss_mb": fast["rss_mb"], "cpu_s": fast["cpu_s"],
        "report_mb": fast["report_bytes"] / 1e6, "render_s": render_seconds(fast["run"]), "repeats": repeats,
        "rss_mb_max": max(r["rss_mb"] for r in runs),
    }
    if serial:
        row["serial_process_s"] = serial["wall_s"]
        row["serial_wall_s"] = serial["run"]["stats"]["wall_seconds"]
        row["speedup"] = row["serial_wall_s"] / row["wall_s"]  # whole audits, judging included, start-up not
    return row


def audit_verdicts(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """rows: small, then the large project at increasing sizes; the last is the largest."""
    verdicts = [(f"{TARGETS['hogql']} HogQL query per audit", all(r["hogql_queries"] <= TARGETS["hogql"] for r in rows),
                 ", ".join(f"{r['scenario']} {r['hogql_queries']}" for r in rows))]
    for row in rows[:-1] if len(rows) > 2 else rows:
        if row["ratio"] is not None:
            verdicts.append((f"{row['scenario']}: gathering ≤ {TARGETS['critical_path_ratio']}× the critical path",
                             row["ratio"] <= TARGETS["critical_path_ratio"],
                             f"{row['ratio']:.2f}× ({row['gather_s']:.2f} s / {row['critical_path_s']:.2f} s)"))
    large = next((r for r in rows[1:] if "speedup" in r), None)
    if large:
        verdicts.append((f"{large['scenario']}: ≥ {TARGETS['speedup_vs_serial']:.0f}× faster than --concurrency 1",
                         large["speedup"] >= TARGETS["speedup_vs_serial"],
                         f"{large['speedup']:.1f}× ({large['serial_wall_s']:.2f} s / {large['wall_s']:.2f} s)"))
    top = rows[-1]
    verdicts.append((f"{top['scenario']}: peak RSS ≤ {TARGETS['rss_mb']} MB", top["rss_mb"] <= TARGETS["rss_mb"],
                     f"{top['rss_mb']:.0f} MB"))
    biggest = max(rows, key=lambda r: r["report_mb"])
    verdicts.append((f"report ≤ {TARGETS['report_mb']:g} MB", biggest["report_mb"] <= TARGETS["report_mb"],
                     f"{biggest['report_mb']:.2f} MB at most ({biggest['scenario']})"))
    return verdicts


# ---- batches ---------------------------------------------------------------------------------------------

def book(accounts: int) -> Scenario:
    """`accounts` demo projects, one per account, all readable with one key (one clock, so ClickHouse answers
    their identical queries once)."""
    now = datetime.now(UTC)
    base = scenarios.small(now)
    for i in range(1, accounts):
        sibling = scenarios.small(now)
        sibling.project_id = str(4242 + i)
        sibling.project.update(id=4242 + i, name=f"Account {i}")
        base.siblings[sibling.project_id] = sibling
    return base


def write_accounts(folder: Path, accounts: int) -> Path:
    path = folder / "accounts.toml"
    path.write_text("".join(f'[[accounts]]\nname = "Account {i}"\nprojects = [{4242 + i}]\n'
                            for i in range(accounts)))
    return path


def scaled(limits: Limits, time_factor: float, count_divisor: int) -> Limits:
    """Every window shortened by the same factor and every budget divided by the same divisor: the ratios between
    PostHog's limits (which one binds, and when) stay the real ones."""
    return {kind: (max(1, count // count_divisor), window / time_factor) for kind, (count, window) in limits.items()}


def limits_toml(limits: Limits) -> str:
    return "[limits]\n" + "".join(f"{kind} = {count}\n{kind}_window_seconds = {window!r}\n"
                                  for kind, (count, window) in limits.items())


def batch_child(folder: Path, url: str, label: str, config: Path, formats: str, parallel: int) -> dict[str, Any]:
    child = run_child(["batch", str(folder / "accounts.toml"), "--host", url, "--out", str(folder / label),
                       "--no-history", "--parallel", str(parallel), "--config", str(config), "--format", formats])
    if not (folder / label / "portfolio.json").exists():
        raise RuntimeError(f"batch exited {child['exit']} without a portfolio: {child['stderr'][-800:]}")
    portfolio = json.loads((folder / label / "portfolio.json").read_text())
    return {**child, "reports": sum(1 for a in portfolio["accounts"] if a.get("report")),
            "failed": sum(1 for a in portfolio["accounts"] if a["status"] == "failed")}


def bench_batch(accounts: int, time_factor: float, count_divisor: int = 1, latency: float = 0.02,
                parallel: int = 8, throttles: Limits | None = None) -> dict[str, Any]:
    """`accounts` projects on one key against a stand-in enforcing PostHog's throttles, every window shortened by
    `time_factor` (and every budget divided by `count_divisor`) so the run takes seconds, not hours; the product
    is configured with its own default limits scaled the same way.

    The limits force a lower bound: for each throttle (budget n in window w) that counts r of the batch's
    requests, the last of them cannot be sent before (r - 1) // n × w, and its account still has its audit to
    finish (one account's audit, taken whole: generous, part of it could have run before). The bound is that, or
    the same batch with no limits, whichever is longer; `beyond` is the wall past it, as a share of it."""
    throttles = scaled(throttles or POSTHOG_THROTTLES, time_factor, count_divisor)
    product = scaled(Settings().rate_limits, time_factor, count_divisor)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_accounts(folder, accounts)
        (folder / "limited.toml").write_text(limits_toml(product))
        (folder / "open.toml").write_text(limits_toml({kind: (10**6, 1.0) for kind in product}))
        results = {}
        for label, config, enforced in (("open", "open.toml", None), ("limited", "limited.toml", throttles)):
            with serve(book(accounts), latency=latency, limits=enforced, time_scale=time_factor) as standin:
                child = batch_child(folder, standin.url, label, folder / config, "json", parallel)
                counts = {kind: sum(1 for _, m, p in standin.timeline if kind in throttles_for(m, p))
                          for kind in throttles}
                audits = [json.loads(p.read_text())["stats"]["wall_seconds"]
                          for p in (folder / label).glob("*/report.json")]
                results[label] = {**child, "counts": counts, "throttled": standin.throttled,
                                  "throttled_by": dict(standin.throttled_by),
                                  "audit_s": statistics.median(audits) if audits else 0.0}
    opened, limited = results["open"], results["limited"]
    forced = {kind: (opened["counts"][kind] - 1) // count * window if opened["counts"][kind] else 0.0
              for kind, (count, window) in throttles.items()}
    binding = max(forced, key=lambda k: forced[k])
    bound = max(forced[binding] + opened["audit_s"] if forced[binding] else 0.0, opened["wall_s"])
    beyond = max(0.0, limited["wall_s"] - bound)
    return {"accounts": accounts, "time_factor": time_factor, "count_divisor": count_divisor,
            "throttles": throttles, "product_limits": product, "reports": limited["reports"],
            "failed": limited["failed"], "wall_s": limited["wall_s"], "forced_s": forced[binding], "binding": binding,
            "forced_by": forced, "one_account_s": opened["audit_s"], "bound_s": bound,
            "unthrottled_s": opened["wall_s"], "beyond_s": beyond, "beyond_share": beyond / bound if bound else 0.0,
            "throttled_429": limited["throttled"], "throttled_by": limited["throttled_by"],
            "hogql": opened["counts"]["hogql"], "counts": opened["counts"]}


def batch_verdicts(batch: dict[str, Any]) -> list[tuple[str, bool, str]]:
    return [
        ("batch: every account has a report", batch["reports"] == batch["accounts"] and not batch["failed"],
         f"{batch['reports']}/{batch['accounts']}"),
        (f"batch: ≤ {TARGETS['batch_beyond_share']:.0%} beyond the time PostHog's limits force",
         batch["beyond_share"] <= TARGETS["batch_beyond_share"],
         f"{batch['beyond_share']:.1%}: {batch['wall_s']:.1f} s against {batch['bound_s']:.1f} s "
         f"({batch['binding']} binds; {batch['throttled_429']} 429s)"),
    ]


def bench_formats(accounts: int, rounds: int, latency: float = 0.02, parallel: int = 8,
                  warm_up: bool = True) -> dict[str, Any]:
    """The same unthrottled batch writing json only and html+json+md, interleaved; medians of whole-process walls
    (a first json batch warms up and is not counted)."""
    walls: dict[str, list[float]] = {"json": [], "html,json,md": []}
    with tempfile.TemporaryDirectory() as tmp, serve(book(accounts), latency=latency) as standin:
        folder = Path(tmp)
        write_accounts(folder, accounts)
        (folder / "open.toml").write_text(limits_toml({kind: (10**6, 1.0) for kind in Settings().rate_limits}))
        if warm_up:
            batch_child(folder, standin.url, "warm-up", folder / "open.toml", "json", parallel)
        for i in range(rounds):
            for formats in walls:
                child = batch_child(folder, standin.url, f"{formats}-{i}", folder / "open.toml", formats, parallel)
                if child["reports"] != accounts:
                    raise RuntimeError(f"batch --format {formats}: {child['reports']}/{accounts} reports")
                walls[formats].append(child["wall_s"])
    json_s, all_s = statistics.median(walls["json"]), statistics.median(walls["html,json,md"])
    return {"accounts": accounts, "rounds": rounds, "json_s": json_s, "all_s": all_s, "ratio": all_s / json_s}


def formats_verdicts(formats: dict[str, Any]) -> list[tuple[str, bool, str]]:
    return [(f"batch writing html+json+md ≤ {TARGETS['formats_ratio']}× the wall of json only",
             formats["ratio"] <= TARGETS["formats_ratio"],
             f"{formats['ratio']:.2f}× ({formats['all_s']:.1f} s / {formats['json_s']:.1f} s)")]


# ---- fault soak -----------------------------------------------------------------------------------------

def bench_soak(audits: int, fault_rate: float, seed: int = 7) -> dict[str, Any]:
    """Audits against a stand-in that faults a share of answers at random. Each must end with a report and
    the right exit code; a fact whose requests all failed is an error, and a blocker on it blocks."""
    from click.testing import CliRunner

    import auditor.clients.posthog_api as api
    from auditor.cli import cli

    registry = load_registry(plugins=False)
    requires = {c.id: set(c.meta.requires) for c in registry.checks.values()}
    outcomes = {"reports": 0, "exit_1": 0, "exit_3": 0, "other_exit": 0, "violations": [], "crashes": 0}
    real_sleep = api.default_sleep
    api.default_sleep = lambda seconds: time.sleep(min(seconds, 0.01))  # Retry-After honoured, time-scaled
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp, serve(scenarios.small(), fault_rate=fault_rate, seed=seed,
                                                         timeout_delay=0.4) as standin:
            config = Path(tmp) / "soak.toml"
            # One key for every audit: lift the key's real budgets (120 HogQL queries and 4,800 requests an hour)
            # that the limiter would otherwise make the soak wait out, as it should in real use. Faults are the
            # subject here.
            config.write_text("[audit]\nread_timeout = 0.2\nmax_retries = 2\n"
                              + limits_toml({kind: (10**6, 1.0) for kind in Settings().rate_limits}))
            runner = CliRunner()
            for i in range(audits):
                out = Path(tmp) / f"a{i}"
                result = runner.invoke(cli, ["audit", "--host", standin.url, "--project", "4242", "--out", str(out),
                                             "--no-plugins", "--quiet", "--config", str(config)],
                                       env={"POSTHOG_PERSONAL_API_KEY": KEY})
                if result.exception and not isinstance(result.exception, SystemExit):
                    outcomes["crashes"] += 1
                    outcomes["violations"].append(f"audit {i} crashed: {result.exception!r}")
                    continue
                code = result.exit_code
                outcomes["exit_1" if code == 1 else "exit_3" if code == 3 else "other_exit"] += 1
                if code == 3:  # could not reach the API at all: no report, and that is right
                    continue
                if code != 1 or not (out / "report.json").exists():
                    said = result.output.strip().splitlines()[-1:] or [""]
                    outcomes["violations"].append(f"audit {i}: exit {code}, report {(out / 'report.json').exists()}: "
                                                  f"{said[0][:300]}")
                    continue
                outcomes["reports"] += 1
                outcomes["violations"] += soak_violations(i, json.loads((out / "report.json").read_text()), requires)
            faults = dict(standin.random_faults)
    finally:
        api.default_sleep = real_sleep
    return {"audits": audits, "fault_rate": fault_rate, "faults": faults, "seconds": time.perf_counter() - started,
            **outcomes}


def soak_violations(i: int, run: dict[str, Any], requires: dict[str, set[str]]) -> list[str]:
    problems = []
    failed = {name for name, f in run["facts"].items() if f["status"] != "ok"}
    for r in run["results"]:
        if requires.get(r["id"], set()) & failed and r["status"] != "error":
            problems.append(f"audit {i}: {r['id']} is {r['status']} though a fact it needs failed")
    blocked = [r for r in run["results"] if r["severity"] == "blocker" and r["status"] == "error"
               and (r["category"] in run["scope"]["paid_products"] or r["category"] in ("platform", "handover"))]
    if blocked and run["readiness"]["ready"]:
        problems.append(f"audit {i}: ready although blocker {blocked[0]['id']} could not be judged")
    return problems


def soak_verdicts(soak: dict[str, Any]) -> list[tuple[str, bool, str]]:
    return [("soak: no crash, no hang, right exit codes", soak["crashes"] == 0 and soak["other_exit"] == 0,
             f"{soak['crashes']} crashes, {soak['other_exit']} other exits"),
            ("soak: failed facts make checks error, and errored blockers block", not soak["violations"],
             f"{len(soak['violations'])} violations")]


# ---- tables, the machine, the README -----------------------------------------------------------------------

Columns = list[tuple[str, str, str]]
AUDIT_COLUMNS: Columns = [
    ("scenario", "scenario", ""), ("requests", "http_requests", "d"), ("HogQL", "hogql_queries", "d"),
    ("process s", "process_s", ".2f"), ("audit s", "wall_s", ".2f"), ("gather s", "gather_s", ".2f"),
    ("crit. path s", "critical_path_s", ".2f"), ("ratio", "ratio", ".2f"), ("serial s", "serial_wall_s", ".2f"),
    ("speedup", "speedup", ".1f"), ("RSS MB", "rss_mb", ".0f"), ("report MB", "report_mb", ".2f"),
    ("render s", "render_s", ".3f")]
STARTUP_COLUMNS: Columns = [("command", "command", ""), ("runs", "runs", "d"), ("median ms", "median_ms", ".0f"),
                            ("min ms", "min_ms", ".0f"), ("over python -c pass ms", "over_python_ms", "+.0f"),
                            ("RSS MB", "rss_mb", ".0f")]
BATCH_COLUMNS: Columns = [
    ("accounts", "accounts", "d"), ("reports", "reports", "d"), ("wall s", "wall_s", ".1f"),
    ("forced s", "forced_s", ".1f"), ("binds", "binding", ""), ("one account s", "one_account_s", ".2f"),
    ("bound s", "bound_s", ".1f"), ("unthrottled s", "unthrottled_s", ".1f"), ("beyond %", "beyond_pct", ".1f"),
    ("429s", "throttled_429", "d"), ("HogQL", "hogql", "d")]
FORMATS_COLUMNS: Columns = [("accounts", "accounts", "d"), ("rounds", "rounds", "d"), ("json s", "json_s", ".2f"),
                            ("html+json+md s", "all_s", ".2f"), ("ratio", "ratio", ".2f")]


def cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    return "—" if value is None else format(value, fmt)


def table(rows: list[dict[str, Any]], columns: Columns) -> str:
    widths = [max(len(title), *(len(cell(r, key, fmt)) for r in rows)) for title, key, fmt in columns]
    lines = ["  ".join(f"{title:<{w}}" if i == 0 else f"{title:>{w}}"
                       for i, ((title, _, _), w) in enumerate(zip(columns, widths, strict=True)))]
    lines.append("-" * len(lines[0]))
    for row in rows:
        lines.append("  ".join(f"{cell(row, key, fmt):<{w}}" if i == 0 else f"{cell(row, key, fmt):>{w}}"
                               for i, ((_, key, fmt), w) in enumerate(zip(columns, widths, strict=True))))
    return "\n".join(lines)


def markdown_table(rows: list[dict[str, Any]], columns: Columns) -> str:
    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row, key, fmt) for _, key, fmt in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """What ran the benchmarks: CPU, cores this process may use, memory, OS, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB RAM"
    except (ValueError, OSError, AttributeError):
        memory = ""
    return (f"{cpu}, {cores} cores{memory}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


README_BEGIN = "<!-- benchmark results: begin (written by `python -m benchmarks.run --write-readme`) -->"
README_END = "<!-- benchmark results: end -->"


def write_readme(path: Path, section: str) -> None:
    """Replace what lies between the README's markers with `section`; everything else stays as it is."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no results section between {README_BEGIN!r} and {README_END!r}")
    start += len(README_BEGIN)
    path.write_text(text[:start] + "\n" + section.strip() + "\n" + text[end:], encoding="utf-8")


def results_markdown(results: dict[str, Any], verdicts: list[tuple[str, bool, str]], command: str) -> str:
    parts = [f"### {results['date']}: {results['machine']}",
             f"`{command}`, {results['latency'] * 1000:.0f} ms latency per request; load average (1/5/15 min) "
             f"{results['load_before']} before, {results['load_after']} after."]
    if "startup" in results:
        parts += ["Start-up: whole process, spawn to exit.", markdown_table(results["startup"], STARTUP_COLUMNS)]
    if "audit" in results:
        parts += ["One audit (process: the CLI from spawn to exit; audit: the run's own wall; serial: "
                  "`--concurrency 1`; RSS: the audit process alone).", markdown_table(results["audit"], AUDIT_COLUMNS)]
    if "batch" in results:
        b = results["batch"]
        parts += [f"Batch on one key, PostHog's throttles with every window ÷ {b['time_factor']:g}"
                  + (f" and every budget ÷ {b['count_divisor']}" if b["count_divisor"] > 1 else "")
                  + f" (HogQL {b['throttles']['hogql'][0]} per {b['throttles']['hogql'][1]:g} s).",
                  markdown_table([b], BATCH_COLUMNS)]
    if "formats" in results:
        parts += ["Batch output formats, no limits.", markdown_table([results["formats"]], FORMATS_COLUMNS)]
    if "soak" in results:
        s = results["soak"]
        faults = ", ".join(f"{k} {v}" for k, v in sorted(s["faults"].items()))
        parts.append(f"Fault soak: {s['audits']} audits, {sum(s['faults'].values())} faults ({faults}): "
                     f"{s['reports']} reports, {s['exit_1']} exit 1, {s['exit_3']} exit 3, {s['other_exit']} other, "
                     f"{s['crashes']} crashes, {len(s['violations'])} invariants broken ({s['seconds']:.0f} s).")
    parts += ["| target | verdict | measured |\n|---|---|---|\n" + "\n".join(
        f"| {name} | {'PASS' if ok else '**FAIL**'} | {value} |" for name, ok, value in verdicts)]
    return "\n\n".join(parts)


# ---- main -------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.08, help="seconds added to every answer [0.08]")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and batches: a smoke run of everything")
    parser.add_argument("--only", default="startup,audit,batch,formats,soak")
    parser.add_argument("--json", type=Path, help="also write all results here")
    parser.add_argument("--write-readme", action="store_true",
                        help="replace the results section of benchmarks/README.md with this run's")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    verdicts: list[tuple[str, bool, str]] = []
    results: dict[str, Any] = {"latency": args.latency, "quick": args.quick, "machine": machine(),
                               "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "load_before": load_average()}
    if "startup" in only:
        rows = bench_startup(runs=5 if args.quick else 11)
        for row in rows:
            row.update(median_ms=row["median_s"] * 1000, min_ms=row["min_s"] * 1000)
        results["startup"] = rows
        print("\nStart-up (whole process, spawn to exit)")
        print(table(rows, STARTUP_COLUMNS))
        verdicts += startup_verdicts(rows)
    if "audit" in only:
        scales = [0.1, 0.4, 1.6] if args.quick else [1, 4, 16]
        rows = [bench_audit("small", scenarios.small, args.latency, baseline=True)]
        for i, scale in enumerate(scales):
            rows.append(bench_audit(f"large ×{scale:g}", lambda s=scale: scenarios.large(s), args.latency,
                                    baseline=i == 0))
        results["audit"] = rows
        print(f"\nOne audit ({args.latency * 1000:.0f} ms per request)")
        print(table(rows, AUDIT_COLUMNS))
        verdicts += audit_verdicts(rows)
    if "batch" in only:
        # More accounts than the HogQL budget, and a window longer than the unthrottled batch: the limit binds.
        batch = (bench_batch(40, time_factor=360, count_divisor=4, latency=args.latency / 4) if args.quick
                 else bench_batch(150, time_factor=120, latency=args.latency / 4))
        batch["beyond_pct"] = batch["beyond_share"] * 100
        results["batch"] = batch
        print(f"\nBatch: {batch['accounts']} accounts on one key, PostHog's throttles with every window "
              f"÷ {batch['time_factor']:g}" + (f", every budget ÷ {batch['count_divisor']}"
                                                if batch["count_divisor"] > 1 else ""))
        print(table([batch], BATCH_COLUMNS))
        verdicts += batch_verdicts(batch)
    if "formats" in only:
        formats = bench_formats(20 if args.quick else 50, rounds=1 if args.quick else 3, latency=args.latency / 4)
        results["formats"] = formats
        print("\nBatch output formats (no limits)")
        print(table([formats], FORMATS_COLUMNS))
        verdicts += formats_verdicts(formats)
    if "soak" in only:
        audits = 30 if args.quick else 200
        soak = bench_soak(audits, 0.10)
        results["soak"] = soak
        print(f"\nFault soak: {audits} audits, 10% of answers faulted at random: {soak['faults']}")
        print(f"reports {soak['reports']}, exit 1: {soak['exit_1']}, exit 3 (unreachable): {soak['exit_3']}, "
              f"other: {soak['other_exit']}, crashes: {soak['crashes']}, {soak['seconds']:.0f} s")
        for problem in soak["violations"][:10]:
            print(f"  ! {problem}")
        verdicts += soak_verdicts(soak)
    results["load_after"] = load_average()
    print("\nTargets")
    for name, ok, value in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}  ({value})")
    if args.json:
        args.json.write_text(json.dumps({**results, "verdicts": verdicts}, indent=2, default=str))
    if args.write_readme:
        command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
        write_readme(README, results_markdown(results, verdicts, command.strip()))
        print(f"\nwrote the results section of {README.relative_to(ROOT)}")
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
