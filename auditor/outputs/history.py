"""Run history with polars: trends, and what regressed since the previous audit of the same account.

Each run writes one parquet file per table, `<dir>/<table>/date=YYYY-MM-DD/<run_id>.parquet`, with explicit
schemas (an empty or odd run never changes a column's type). The RunResult JSON stays the truth; this is a
projection of it for trends.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.result import RunResult
from auditor.text import warn

if TYPE_CHECKING:
    import polars as pl
else:  # a batch imports this module before its first request; polars is needed only when history is used
    from auditor.lazy import polars as pl

Schema = dict[str, "pl.DataType | type[pl.DataType]"]


@functools.cache
def tables() -> dict[str, Schema]:
    """Each table's explicit schema (built on first use: the types are polars')."""
    when = pl.Datetime("us", "UTC")
    return {
        "runs": {"run_id": pl.Utf8, "account": pl.Utf8, "organization_id": pl.Utf8, "project_ids": pl.Utf8,
                 "started_at": when, "mode": pl.Utf8, "readiness": pl.Float64, "ready": pl.Boolean, "band": pl.Utf8},
        "categories": {"run_id": pl.Utf8, "account": pl.Utf8, "started_at": when, "category": pl.Utf8,
                       "score": pl.Float64, "in_scope": pl.Boolean},
        "checks": {"run_id": pl.Utf8, "account": pl.Utf8, "started_at": when, "project_id": pl.Utf8,
                   "check_id": pl.Utf8, "category": pl.Utf8, "severity": pl.Utf8, "status": pl.Utf8},
    }


CATEGORY_DROP = 10.0  # points: a category falling this much is a regression
WORSE = {"pass": 0, "info": 0, "skip": 0, "manual": 1, "warn": 1, "error": 2, "fail": 2}


def account_key(run: Mapping[str, Any]) -> str:
    """Runs of the same account compare with each other: the organization and its projects."""
    target = run["target"]
    return f"{target.get('organization_id') or 'org?'}:{target.get('project_id')}"


def frames(run: Mapping[str, Any], account: str) -> dict[str, pl.DataFrame]:
    started = datetime.fromisoformat(run["started_at"])
    base = {"run_id": run["run_id"], "account": account, "started_at": started}
    readiness = run["readiness"]
    runs = [{**base, "organization_id": run["target"].get("organization_id"),
             "project_ids": str(run["target"].get("project_id")), "mode": run.get("mode", "handover"),
             "readiness": readiness["score"], "ready": readiness["ready"], "band": readiness.get("band")}]
    categories = [{**base, "category": c["id"], "score": c["score"], "in_scope": c["in_scope"]}
                  for c in run["categories"]]
    checks = [{**base, "project_id": str(r.get("project_id") or run["target"].get("project_id")),
               "check_id": r["id"], "category": r["category"], "severity": r["severity"], "status": r["status"]}
              for r in run["results"]]
    rows = {"runs": runs, "categories": categories, "checks": checks}
    return {name: pl.DataFrame(rows[name], schema=schema, orient="row") for name, schema in tables().items()}


def record(history_dir: Path, run: Mapping[str, Any], account: str | None = None) -> list[Path]:
    """Append one run (atomically per file)."""
    account = account or account_key(run)
    day = run["started_at"][:10]
    written = []
    for name, frame in frames(run, account).items():
        folder = history_dir / name / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{run['run_id']}.parquet"
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".parquet.tmp", dir=str(folder))
        os.close(fd)
        try:
            frame.write_parquet(tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written


# Files found unreadable in this process: skipped (and warned about) once, not on every read of the history.
_UNREADABLE: set[Path] = set()
_UNREADABLE_LOCK = threading.Lock()


def load(history_dir: Path, table: str) -> pl.DataFrame:
    """Every readable run of one table. A damaged file (a crash mid-copy, a disk error) is skipped with one
    warning naming it: history informs an audit, it never stops one."""
    schema: Schema = {**tables()[table], "date": pl.Date}
    with _UNREADABLE_LOCK:
        files = sorted(f for f in (history_dir / table).glob("date=*/*.parquet") if f not in _UNREADABLE)
    if not files:
        return pl.DataFrame(schema=schema)
    try:
        frame = pl.scan_parquet([str(f) for f in files], hive_partitioning=True, schema=schema).collect()
    except (pl.exceptions.PolarsError, OSError, ValueError):
        frame = _load_each(files, table, schema)
    return frame.sort("started_at")


def _load_each(files: list[Path], table: str, schema: dict[str, Any]) -> pl.DataFrame:
    """The slow path, taken only when some file is damaged: read file by file and skip the bad ones."""
    parts = []
    for path in files:
        try:
            day = date.fromisoformat(path.parent.name.removeprefix("date="))
            part = pl.scan_parquet(str(path), schema=tables()[table]).collect()
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            _skip(path, exc)
            continue
        parts.append(part.with_columns(pl.lit(day, dtype=pl.Date).alias("date")))
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def _skip(path: Path, exc: Exception) -> None:
    with _UNREADABLE_LOCK:
        first = path not in _UNREADABLE
        _UNREADABLE.add(path)
    if first:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        warn(f"skipped an unreadable history file {path} ({reason})")


def previous_run(runs: pl.DataFrame, account: str, before: str) -> str | None:
    earlier = runs.filter((pl.col("account") == account) & (pl.col("started_at") < datetime.fromisoformat(before)))
    return earlier["run_id"][-1] if earlier.height else None


def changes(history_dir: Path, run: Mapping[str, Any], account: str | None = None,
            renamed: Mapping[str, str] | None = None, runs: pl.DataFrame | None = None) -> dict[str, Any] | None:
    """What changed since the previous audit of the same account (None when there is none). `runs`: the runs
    table, when the caller has it loaded already."""
    account = account or account_key(run)
    renamed = renamed or {}
    all_runs = load(history_dir, "runs") if runs is None else runs
    previous = previous_run(all_runs, account, run["started_at"])
    if previous is None:
        return None
    before = all_runs.filter(pl.col("run_id") == previous).to_dicts()[0]
    cats = load(history_dir, "categories").filter(pl.col("run_id") == previous)
    checks = load(history_dir, "checks").filter(pl.col("run_id") == previous)
    before_scores = dict(zip(cats["category"].to_list(), cats["score"].to_list(), strict=True))
    before_status = {(r["project_id"], renamed.get(r["check_id"], r["check_id"])): r["status"]
                     for r in checks.iter_rows(named=True)}
    regressions: list[str] = []
    category_deltas = {}
    for c in run["categories"]:
        old = before_scores.get(c["id"])
        if old is not None and c["score"] is not None:
            category_deltas[c["id"]] = round(c["score"] - old, 1)
            if old - c["score"] >= CATEGORY_DROP:
                regressions.append(f"{c['title']} fell {old - c['score']:.0f} points ({old:.0f} → {c['score']:.0f})")
    for r in run["results"]:
        key = (str(r.get("project_id") or run["target"].get("project_id")), r["id"])
        old_status = before_status.get(key)
        if old_status == "pass" and WORSE.get(r["status"], 0) > 0:
            regressions.append(f"{r['title']} ({r['id']}) went from pass to {r['status']}")
    score, old_score = run["readiness"]["score"], before["readiness"]
    return {
        "previous_run_id": previous,
        "previous_started_at": before["started_at"].isoformat(),
        "previous_readiness": old_score,
        "readiness_delta": None if score is None or old_score is None else round(score - old_score, 1),
        "category_deltas": category_deltas,
        "regressions": regressions,
    }


def trend(history_dir: Path, account: str) -> pl.DataFrame:
    """One row per run of the account: date, readiness, verdict, and a column per category."""
    runs = load(history_dir, "runs").filter(pl.col("account") == account)
    if runs.height == 0:
        return runs
    cats = load(history_dir, "categories").filter(pl.col("account") == account)
    wide = cats.pivot(on="category", index="run_id", values="score") if cats.height else None
    table = runs.select("run_id", "started_at", "mode", "readiness", "ready", "band")
    if wide is not None:
        table = table.join(wide, on="run_id", how="left")
    return table.sort("started_at")


def accounts(history_dir: Path) -> list[str]:
    runs = load(history_dir, "runs")
    return sorted(set(runs["account"].to_list()))


def score_trend(history_dir: Path, run: Mapping[str, Any], account: str | None = None,
                limit: int = 12, runs: pl.DataFrame | None = None) -> list[dict[str, Any]]:
    """Readiness over the account's recorded runs, the given run last (for the report's trend chart). `runs`: the
    runs table, when the caller has it loaded already."""
    account = account or account_key(run)
    runs = (load(history_dir, "runs") if runs is None else runs).filter(
        (pl.col("account") == account) & (pl.col("run_id") != run["run_id"])
        & (pl.col("started_at") < datetime.fromisoformat(run["started_at"])))
    points = [{"date": r["started_at"].date().isoformat(), "score": r["readiness"]}
              for r in runs.tail(limit - 1).iter_rows(named=True)]
    return [*points, {"date": run["started_at"][:10], "score": run["readiness"]["score"]}]


def compare(history_dir: Path, run: RunResult, account: str | None = None,
            renamed: Mapping[str, str] | None = None) -> None:
    """Set the run's `changes` and `trend` from the history. History informs an audit and never stops one: if
    it cannot be read at all, say so in one line and go on without the comparison. `renamed`: a renamed check's
    former id -> its id now (Registry.renamed), so its history carries on."""
    try:
        runs = load(history_dir, "runs")  # read once: every account's files, for both
        run["changes"] = changes(history_dir, run, account, renamed, runs=runs)
        run["trend"] = score_trend(history_dir, run, account, runs=runs)
    except Exception as exc:  # anything: a damaged history is no reason to lose the audit
        warn(f"could not compare with the history in {history_dir} ({type(exc).__name__}: {exc})")


def record_run(history_dir: Path, run: Mapping[str, Any], account: str | None = None) -> None:
    """Record the run; if that fails (a full disk, a read-only folder), warn and keep the audit's reports."""
    try:
        record(history_dir, run, account)
    except (OSError, pl.exceptions.PolarsError) as exc:
        warn(f"could not record the run in the history at {history_dir} ({type(exc).__name__}: {exc})")
