"""Ctrl-C in `batch` (issue 13, item 6), with a real SIGINT sent to a child process auditing a book of accounts
against a loopback stand-in, at many different moments: no account starts after it, in-flight requests are
dropped, the portfolio lists what finished and what was interrupted, nothing is written after the portfolio,
and the exit code is 130. Repeated so that it is clearly reliable, not lucky."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from auditor.demo import demo_scenario
from tests.conftest import ROOT
from tests.standin import Fault, StandIn, running

ACCOUNTS = 4
# When the SIGINT is sent: after the stand-in has received this many requests of the batch (one account makes
# a few dozen), so it lands before the first request, while gathering, while one account writes and another
# gathers, and near the end; some runs send a second Ctrl-C right after the first.
# (A whole batch makes about 100 requests; the stalled one below keeps the last of them from coming.) A trigger
# of ("written", n) waits instead for n accounts' reports: with the batch's HogQL lane the accounts overlap, and
# on a loaded machine a count of requests no longer says whether one has been written.
TRIGGERS = [(1, 1), (3, 1), (8, 2), (15, 1), (22, 1), (30, 2), (38, 1), (46, 1), (54, 2), (62, 1), (70, 1), (80, 2),
            (("written", 1), 1), (("written", 2), 2)]


def book_scenario():
    base = demo_scenario()
    for i in range(1, ACCOUNTS):
        pid = str(4242 + i)
        sibling = copy.deepcopy(base)
        sibling.siblings = {}
        sibling.project_id = pid
        sibling.project.update(id=int(pid), name=f"Hedgebox {i}")
        base.siblings[pid] = sibling
    return base


def write_book(folder: Path, url: str) -> Path:
    accounts = folder / "accounts.toml"
    accounts.write_text(f'[defaults]\nhost = "{url}"\napi_key_env = "BOOK_KEY"\n' + "".join(
        f'[[accounts]]\nname = "Account {i}"\nprojects = [{4242 + i}]\n' for i in range(ACCOUNTS)))
    return accounts


def start_batch(folder: Path, standin: StandIn) -> subprocess.Popen:
    env = {**os.environ, "BOOK_KEY": standin.api_key, "PYTHONPATH": str(ROOT)}
    env.pop("POSTHOG_AUDITOR_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "auditor.cli", "batch", str(write_book(folder, standin.url)), "--out",
         str(folder / "p"), "--history", str(folder / "p" / "history"), "--parallel", "2", "--no-plugins"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder, env=env)


def reached(trigger: int | tuple[str, int], standin: StandIn, folder: Path) -> bool:
    if isinstance(trigger, tuple):
        return len(list((folder / "p").glob("*/report.json"))) >= trigger[1]
    return len(standin.requests) >= trigger


def interrupt_after(folder: Path, after: int | tuple[str, int], times: int) -> tuple[int, str, int, int]:
    """Run a batch, send SIGINT after `after` requests; (exit code, stderr, requests at the signal, at exit)."""
    with running(book_scenario(), latency=0.01) as standin:
        # One account's query hangs: a request still in flight when Ctrl-C comes must not hold the exit.
        standin.faults.append(Fault(r"^/api/projects/4243/query/", delay=60, times=1))
        with start_batch(folder, standin) as proc:
            try:
                while not reached(after, standin, folder) and proc.poll() is None:
                    time.sleep(0.002)
                assert proc.poll() is None, "the batch ended before the signal: lower the trigger"
                at_signal = len(standin.requests)
                for _ in range(times):
                    proc.send_signal(signal.SIGINT)
                # A guard against hanging, far under the 60 s of the stalled request (not a speed check).
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail("the batch did not stop after Ctrl-C")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        return proc.returncode, err.decode(), at_signal, len(standin.requests)


def check_consistent(folder: Path) -> dict[str, str]:
    """The portfolio tells the truth about what is on disk, and was the last thing written."""
    out = folder / "p"
    portfolio = json.loads((out / "portfolio.json").read_text())
    statuses = {row["account"]: row["status"] for row in portfolio["accounts"]}
    assert list(statuses) == [f"Account {i}" for i in range(ACCOUNTS)]  # every account, in the file's order
    assert set(statuses.values()) <= {"audited", "interrupted"}
    assert "index.html" in {p.name for p in out.iterdir()} and (out / "portfolio.csv").exists()
    written_runs = set()
    for row in portfolio["accounts"]:
        folder_files = sorted(p.name for p in (out / row["slug"]).glob("*")) if (out / row["slug"]).exists() else []
        if row["status"] == "audited":
            assert folder_files == ["report.html", "report.json", "report.md"], (row, folder_files)
            written_runs.add(json.loads((out / row["slug"] / "report.json").read_text())["run_id"])
        else:
            assert folder_files == [], f"{row['account']} is listed as interrupted but wrote {folder_files}"
            assert "interrupted" in row["error"]
    recorded = {p.stem for p in (out / "history" / "runs").glob("date=*/*.parquet")}
    assert recorded == written_runs  # history holds exactly the finished accounts
    everything = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in everything if p.name.endswith(".tmp")], "a half-written file was left behind"
    portfolio_written = min((out / name).stat().st_mtime_ns for name in ("index.html", "portfolio.json",
                                                                         "portfolio.csv"))
    others = [p for p in everything if p.parent != out]
    assert all(p.stat().st_mtime_ns <= portfolio_written for p in others), "written after the portfolio"
    return statuses


def test_ctrl_c_in_batch_is_reliable(tmp_path):
    def one(case: tuple[int, tuple[int | tuple[str, int], int]]) -> tuple[int, dict[str, str], str, int, int]:
        index, (after, times) = case
        folder = tmp_path / f"run{index}"
        folder.mkdir()
        code, err, at_signal, at_exit = interrupt_after(folder, after, times)
        return code, check_consistent(folder), err, at_signal, at_exit

    with ThreadPoolExecutor(max_workers=4) as pool:  # several children at once: the whole test stays quick
        results = list(pool.map(one, enumerate(TRIGGERS)))
    seen = set()
    for code, statuses, err, _, _ in results:
        assert code == 130, err
        assert "Traceback" not in err and "internal error" not in err, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("posthog-auditor: interrupted"), err
        seen.add(tuple(sorted(statuses.values())))
    # The signal landed at different stages: with nothing finished, and with some accounts finished.
    assert ("interrupted",) * ACCOUNTS in seen
    assert any("audited" in s and "interrupted" in s for s in seen), seen


def test_no_account_starts_once_a_stop_is_asked(tmp_path, monkeypatch):
    """In-process: the flag a Ctrl-C sets is read before each account starts."""
    from auditor.batch import AccountSpec, BatchContext, BatchInterrupted, run_batch
    from auditor.config import Settings
    from auditor.registry import load_registry

    with running(book_scenario()) as standin:
        monkeypatch.setenv("BOOK_KEY", standin.api_key)
        registry = load_registry(plugins=False)
        ctx = BatchContext(registry=registry, checks=list(registry.checks.values()), settings=Settings(),
                           out_dir=tmp_path / "p", mode="health")
        ctx.interrupt_requested = True
        specs = [AccountSpec(name=f"A{i}", host=standin.url, api_key_env="BOOK_KEY", projects=[str(4242 + i)])
                 for i in range(ACCOUNTS)]
        with pytest.raises(BatchInterrupted) as stopped:
            run_batch(ctx, specs, 2)
        assert stopped.value.outcomes == []
        assert [o.status for o in stopped.value.interrupted] == ["interrupted"] * ACCOUNTS
        assert standin.requests == [] and not (tmp_path / "p").exists()
