"""Benchmarks: fast at scale, cheap on rate limits, robust under faults. See benchmarks/README.md.

    python -m benchmarks.run                 # everything, 80 ms of latency per request
    python -m benchmarks.run --quick         # small sizes, a smoke run
    python -m benchmarks.run --only audit,scaling --latency 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from auditor.demo import Scenario
from auditor.registry import load_registry
from auditor.render import render_html
from benchmarks import scenarios
from tests.standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
KEY = "phx_benchmark_key_not_real"
TARGETS = {"hogql": 3, "critical_path_ratio": 1.5, "speedup_vs_serial": 5.0, "rss_mb": 300, "report_mb": 2.0,
           "batch_wait_share": 0.10}


@contextmanager
def serve(scenario: Scenario, **options: Any):
    standin = StandIn(scenario, api_key=KEY, **options).start()
    try:
        yield standin
    finally:
        standin.stop()


def run_child(args: list[str]) -> dict[str, Any]:
    """Run the CLI in a child process; wait4 gives this one child's own peak RSS."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "auditor.cli", *args], cwd=ROOT, stdout=out, stderr=err,
                                env={**os.environ, "POSTHOG_PERSONAL_API_KEY": KEY})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so tell Popen it has ended
        out.seek(0)
        err.seek(0)
        return {"exit": proc.returncode, "rss_mb": usage.ru_maxrss / 1024,
                "process_seconds": time.perf_counter() - started, "stdout": out.read().decode(),
                "stderr": err.read().decode()}


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


# ---- one audit ------------------------------------------------------------------------------------

def bench_audit(name: str, build: Callable[[], Scenario], latency: float, baseline: bool) -> dict[str, Any]:
    scenario = build()
    with tempfile.TemporaryDirectory() as tmp, serve(scenario, latency=latency, cache_answers=True) as standin:
        audit(standin.url, Path(tmp) / "warm-up")  # the stand-in encodes its answers once, before measuring
        fast = audit(standin.url, Path(tmp) / "fast")
        serial = audit(standin.url, Path(tmp) / "serial", "--concurrency", "1") if baseline else None
    stats = fast["run"]["stats"]
    critical = stats["request_depth"] * latency
    row = {
        "scenario": name, "http_requests": stats["http_requests"], "hogql_queries": stats["hogql_queries"],
        "wall_s": stats["wall_seconds"], "gather_s": stats["gather_seconds"], "request_depth": stats["request_depth"],
        "critical_path_s": critical, "ratio": stats["gather_seconds"] / critical if critical else None,
        "rss_mb": fast["rss_mb"],
        "report_mb": fast["report_bytes"] / 1e6, "render_s": render_seconds(fast["run"]),
    }
    if serial:
        row["serial_wall_s"] = serial["run"]["stats"]["wall_seconds"]
        row["speedup"] = row["serial_wall_s"] / row["wall_s"]  # whole audits, judging included
    return row


def audit_verdicts(row: dict[str, Any], large: bool) -> list[tuple[str, bool, str]]:
    checks = [
        (f"{row['scenario']}: HogQL ≤ {TARGETS['hogql']}", row["hogql_queries"] <= TARGETS["hogql"],
         str(row["hogql_queries"])),
        (f"{row['scenario']}: peak RSS ≤ {TARGETS['rss_mb']} MB", row["rss_mb"] <= TARGETS["rss_mb"],
         f"{row['rss_mb']:.0f} MB"),
        (f"{row['scenario']}: report ≤ {TARGETS['report_mb']} MB", row["report_mb"] <= TARGETS["report_mb"],
         f"{row['report_mb']:.2f} MB"),
    ]
    if row["ratio"] is not None:
        checks.append((f"{row['scenario']}: gathering wall ≤ {TARGETS['critical_path_ratio']}× critical path",
                       row["ratio"] <= TARGETS["critical_path_ratio"], f"{row['ratio']:.2f}×"))
    if large and "speedup" in row:
        checks.append((f"{row['scenario']}: ≥ {TARGETS['speedup_vs_serial']:.0f}× faster than --concurrency 1",
                       row["speedup"] >= TARGETS["speedup_vs_serial"], f"{row['speedup']:.1f}×"))
    return checks


# ---- a batch on one key, under PostHog's limits ------------------------------------------------------

def bench_batch(accounts: int, hogql: tuple[int, float], rest: tuple[int, float], latency: float,
                parallel: int = 8) -> dict[str, Any]:
    """`accounts` projects on one key against a stand-in enforcing the limits (windows scaled down so the run
    takes seconds, not hours). The limits force the last throttled request to wait until `forced`; the account
    it belongs to still has its own audit to finish after that (one account's unthrottled duration). Wasted
    time = wall - max(forced + that tail, the same batch unthrottled)."""
    def book() -> Scenario:
        base = scenarios.small()
        for i in range(1, accounts):
            sibling = scenarios.small()
            sibling.project_id = str(4242 + i)
            sibling.project.update(id=4242 + i, name=f"Account {i}")
            base.siblings[sibling.project_id] = sibling
        return base

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "accounts.toml").write_text("".join(
            f'[[accounts]]\nname = "Account {i}"\nprojects = [{4242 + i}]\n' for i in range(accounts)))
        limits = (f"[limits]\nhogql = {hogql[0]}\nhogql_window_seconds = {hogql[1]}\nrest = {rest[0]}\n"
                  f"rest_window_seconds = {rest[1]}\n")
        (folder / "limited.toml").write_text(limits)
        (folder / "open.toml").write_text("[limits]\nhogql = 100000\nrest = 100000\n")
        results = {}
        for label, config, standin_limits in (("open", "open.toml", None),
                                              ("limited", "limited.toml", {"hogql": hogql, "rest": rest})):
            with serve(book(), latency=latency, limits=standin_limits) as standin:
                started = time.perf_counter()
                child = run_child(["batch", str(folder / "accounts.toml"), "--host", standin.url,
                                   "--out", str(folder / label), "--no-history", "--parallel", str(parallel),
                                   "--config", str(folder / config), "--format", "json"])
                wall = time.perf_counter() - started
                counts = {"hogql": sum(1 for _, m, p in standin.timeline if m == "POST" and p.endswith("/query/"))}
                counts["rest"] = len(standin.timeline) - counts["hogql"]
                portfolio = json.loads((folder / label / "portfolio.json").read_text())
                results[label] = {"wall": wall, "counts": counts, "throttled": standin.throttled, "exit": child["exit"],
                                  "reports": sum(1 for a in portfolio["accounts"] if a.get("report")),
                                  "failed": sum(1 for a in portfolio["accounts"] if a["status"] == "failed")}
    limited = results["limited"]
    forced = max((limited["counts"][k] - 1) // limit * window
                 for k, (limit, window) in (("hogql", hogql), ("rest", rest)))
    one_account = results["open"]["wall"] * min(parallel, accounts) / accounts
    lower_bound = max(forced + one_account if forced else 0.0, results["open"]["wall"])
    waste = max(0.0, limited["wall"] - lower_bound)
    return {"accounts": accounts, "reports": limited["reports"], "failed": limited["failed"],
            "wall_s": limited["wall"], "forced_s": forced, "unthrottled_s": results["open"]["wall"],
            "wasted_s": waste, "wasted_share": waste / limited["wall"], "throttled_429": limited["throttled"],
            "hogql": limited["counts"]["hogql"], "rest": limited["counts"]["rest"]}


# ---- fault soak -----------------------------------------------------------------------------------------

def bench_soak(audits: int, fault_rate: float, seed: int = 7) -> dict[str, Any]:
    """Audits against a stand-in that faults a share of answers at random. Each must end with a report and
    the right exit code; a fact whose requests all failed is an error, and a blocker on it blocks."""
    from click.testing import CliRunner

    import auditor.posthog_api as api
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
            # One key for every audit: lift the key's real budget (120 HogQL an hour) that the limiter would
            # otherwise make the soak wait out, as it should in real use. Faults are the subject here.
            config.write_text("[audit]\nread_timeout = 0.2\nmax_retries = 2\n[limits]\nhogql = 1000000\n"
                              "rest = 1000000\n")
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
                    outcomes["violations"].append(f"audit {i}: exit {code}, report {(out / 'report.json').exists()}")
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


# ---- scaling ----------------------------------------------------------------------------------------------

def bench_scaling(scales: list[float], latency: float) -> list[dict[str, Any]]:
    return [{"scale": scale, **bench_audit(f"large ×{scale:g}", lambda s=scale: scenarios.large(s), latency,
                                           baseline=False)} for scale in scales]


# ---- printing ---------------------------------------------------------------------------------------------

def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    header = "  ".join(f"{title:>{len(title) if i == 0 else 10}}" for i, (title, _, _) in enumerate(columns))
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = []
        for i, (title, key, fmt) in enumerate(columns):
            value = row.get(key)
            text = "—" if value is None else format(value, fmt)
            cells.append(f"{text:>{len(title) if i == 0 else 10}}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.08, help="seconds added to every answer [0.08]")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    parser.add_argument("--only", default="audit,batch,soak,scaling")
    parser.add_argument("--json", type=Path, help="also write all results here")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    verdicts: list[tuple[str, bool, str]] = []
    results: dict[str, Any] = {"latency": args.latency}
    if "audit" in only:
        large_scale = 0.1 if args.quick else 1.0
        rows = [bench_audit("small", scenarios.small, args.latency, baseline=True),
                bench_audit(f"large ×{large_scale:g}", lambda: scenarios.large(large_scale), args.latency,
                            baseline=True)]
        results["audit"] = rows
        print(f"\nOne audit ({args.latency * 1000:.0f} ms per request)")
        print(table(rows, [("scenario          ", "scenario", ""), ("requests", "http_requests", "d"),
                           ("HogQL", "hogql_queries", "d"), ("wall s", "wall_s", ".2f"),
                           ("gather s", "gather_s", ".2f"),
                           ("crit. path", "critical_path_s", ".2f"), ("ratio", "ratio", ".2f"),
                           ("serial s", "serial_wall_s", ".2f"), ("speedup", "speedup", ".1f"),
                           ("RSS MB", "rss_mb", ".0f"), ("report MB", "report_mb", ".2f"),
                           ("render s", "render_s", ".3f")]))
        verdicts += audit_verdicts(rows[0], large=False) + audit_verdicts(rows[1], large=True)
    if "batch" in only:
        accounts = 10 if args.quick else 50
        batch = bench_batch(accounts, hogql=(24 if args.quick else 120, 4.0), rest=(200 if args.quick else 480, 4.0),
                            latency=args.latency / 4)
        results["batch"] = batch
        print(f"\nBatch: {accounts} accounts on one key, PostHog's limits with time-scaled windows")
        print(table([batch], [("accounts", "accounts", "d"), ("reports", "reports", "d"), ("wall s", "wall_s", ".1f"),
                              ("forced s", "forced_s", ".1f"), ("open s", "unthrottled_s", ".1f"),
                              ("wasted s", "wasted_s", ".1f"), ("429s", "throttled_429", "d"),
                              ("HogQL", "hogql", "d"), ("REST", "rest", "d")]))
        verdicts.append(("batch: every account has a report", batch["reports"] == accounts,
                         f"{batch['reports']}/{accounts}"))
        verdicts.append((f"batch: waiting beyond the limits ≤ {TARGETS['batch_wait_share']:.0%} of the run",
                         batch["wasted_share"] <= TARGETS["batch_wait_share"], f"{batch['wasted_share']:.1%}"))
    if "soak" in only:
        audits = 30 if args.quick else 200
        soak = bench_soak(audits, 0.10)
        results["soak"] = soak
        print(f"\nFault soak: {audits} audits, 10% of answers faulted at random: {soak['faults']}")
        print(f"reports {soak['reports']}, exit 1: {soak['exit_1']}, exit 3 (unreachable): {soak['exit_3']}, "
              f"other: {soak['other_exit']}, crashes: {soak['crashes']}, {soak['seconds']:.0f} s")
        for problem in soak["violations"][:10]:
            print(f"  ! {problem}")
        verdicts.append(("soak: no crash, no hang, right exit codes",
                         soak["crashes"] == 0 and soak["other_exit"] == 0, f"{soak['crashes']} crashes"))
        verdicts.append(("soak: failed facts make checks error, and errored blockers block",
                         not soak["violations"], f"{len(soak['violations'])} violations"))
    if "scaling" in only:
        scales = [0.05, 0.1, 0.2] if args.quick else [1, 2, 4]
        rows = bench_scaling(scales, args.latency)
        results["scaling"] = rows
        print("\nScaling the large project")
        print(table(rows, [("scale", "scale", "g"), ("requests", "http_requests", "d"), ("wall s", "wall_s", ".2f"),
                           ("RSS MB", "rss_mb", ".0f"), ("report MB", "report_mb", ".2f")]))
        base, top = rows[0], rows[-1]
        factor = top["scale"] / base["scale"]
        verdicts.append((f"scaling: memory grows at most linearly (×{factor:g} size)",
                         top["rss_mb"] <= base["rss_mb"] * factor * 1.1, f"×{top['rss_mb'] / base['rss_mb']:.2f}"))
        verdicts.append((f"scaling: time grows at most linearly (×{factor:g} size)",
                         top["wall_s"] <= base["wall_s"] * factor * 1.1, f"×{top['wall_s'] / base['wall_s']:.2f}"))
    print("\nTargets")
    for name, ok, value in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}  ({value})")
    if args.json:
        args.json.write_text(json.dumps({**results, "verdicts": verdicts}, indent=2, default=str))
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
