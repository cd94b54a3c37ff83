"""Batch over a book of accounts: failures isolated, resume, history and regressions, rate limits, telemetry."""

from __future__ import annotations

import copy
import csv
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.batch import AccountSpec, BatchContext, BatchInterrupted, run_batch
from auditor.cli import cli
from auditor.config import Settings
from auditor.registry import load_registry
from tests.scenarios import privacy_risky_replay


@pytest.fixture(autouse=True)
def no_backoff_waits(monkeypatch):
    """Retries do not really wait (each test gets fresh per-key limiters: tests/conftest.py)."""
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)


@pytest.fixture
def book(standin, tmp_path, monkeypatch):
    """Three accounts on one stand-in (projects 4242, 4243, 4244) and one whose key is refused."""
    base = standin.scenario
    for pid, name in (("4243", "Hedgebox (marketing site)"), ("4244", "Hedgebox (docs)")):
        sibling = copy.deepcopy(base)
        sibling.siblings = {}
        sibling.project_id = pid
        sibling.project.update(id=int(pid), name=name)
        base.siblings[pid] = sibling
    monkeypatch.setenv("BOOK_KEY", standin.api_key)
    monkeypatch.setenv("BROKEN_KEY", "phx_this_key_is_refused")
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(f"""
[defaults]
host = "{standin.url}"
api_key_env = "BOOK_KEY"

[[accounts]]
name = "Hedgebox prod"
projects = [4242]

[[accounts]]
name = "Hedgebox marketing"
projects = [4243]

[[accounts]]
name = "Hedgebox docs"
projects = [4244]

[[accounts]]
name = "Broken Co"
projects = [4242]
api_key_env = "BROKEN_KEY"
""")
    return accounts


def batch(accounts: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["batch", str(accounts), "--out", str(out), "--history", str(out / "history"),
                                    "--no-plugins", *extra], catch_exceptions=False)


def test_batch_reports_every_account_and_isolates_a_failure(book, tmp_path, standin):
    out = tmp_path / "portfolio"
    result = batch(book, out)
    assert result.exit_code == 1
    assert "4 accounts: 0 healthy, 3 not, 1 failed" in result.output
    assert "[4/4]" in result.output  # plain progress lines when not on a terminal
    portfolio = json.loads((out / "portfolio.json").read_text())
    rows = {r["account"]: r for r in portfolio["accounts"]}
    assert rows["Broken Co"]["status"] == "failed" and "refused (401)" in rows["Broken Co"]["error"]
    for name in ("Hedgebox prod", "Hedgebox marketing", "Hedgebox docs"):
        assert rows[name]["status"] == "audited" and rows[name]["band"] == "Concerning"
        assert (out / rows[name]["slug"] / "report.html").exists()
        assert rows[name]["top_finding"]
    html = (out / "index.html").read_text()
    assert "Broken Co" in html and 'href="hedgebox-prod/report.html"' in html
    with (out / "portfolio.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["account"] for r in table] == ["Hedgebox prod", "Hedgebox marketing", "Hedgebox docs", "Broken Co"]


def test_what_depends_only_on_the_key_is_asked_once_per_batch(book, tmp_path, standin):
    """The key's scopes, its user and the billing of the user's current organization are the same for every
    account on the key: three accounts, one request each (the refused key's pre-flight is its own)."""
    batch(book, tmp_path / "portfolio", "--parallel", "3")
    assert standin.count(r"^/api/personal_api_keys/@current/$") == 2  # the book's key, and the refused one
    assert standin.count(r"^/api/users/@me/$") == 1
    assert standin.count(r"^/api/billing/$") == 1
    assert standin.count(r"/query/$", "POST") == 3  # the project's own questions are still asked per account


def test_resume_skips_accounts_already_audited_this_period(book, tmp_path, standin):
    out = tmp_path / "portfolio"
    batch(book, out)
    before = len(standin.requests)
    result = batch(book, out, "--resume")
    resumed = [r for r in json.loads((out / "portfolio.json").read_text())["accounts"] if r["status"] == "resumed"]
    assert len(resumed) == 3
    # Only the failed account is tried again: its pre-flight and project fetch (sent together) are refused.
    assert len(standin.requests) - before == 2
    assert "(resumed)" in result.output


def test_history_round_trip_and_regressions(book, tmp_path, standin):
    out = tmp_path / "portfolio"
    batch(book, out)
    # Between the two runs, the marketing site loses its privacy controls and its reverse proxy.
    privacy_risky_replay(standin.scenario.siblings["4243"])
    batch(book, out)
    rows = {r["account"]: r for r in json.loads((out / "portfolio.json").read_text())["accounts"]}
    marketing = rows["Hedgebox marketing"]
    assert marketing["change"] < 0
    assert any("privacy-masking" in r and "from pass to fail" in r for r in marketing["regressions"])
    assert any("Session replay fell" in r for r in marketing["regressions"])
    assert rows["Hedgebox prod"]["regressions"] == [] and rows["Hedgebox prod"]["change"] == 0
    report = (out / "hedgebox-marketing" / "report.html").read_text()
    assert "Since the last audit on" in report and "privacy-masking" in report
    result = CliRunner().invoke(cli, ["history", "--dir", str(out / "history"), "--account", "Hedgebox marketing"])
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and "Concerning" in lines[0]
    assert "(-" in lines[1]  # the drop is shown
    listed = CliRunner().invoke(cli, ["history", "--dir", str(out / "history")]).output.split()
    assert "Hedgebox prod" in " ".join(listed)


def test_shared_rate_limiter_keeps_a_batch_within_the_hogql_budget(book, tmp_path, standin, monkeypatch):
    """Three accounts on one key, audited in parallel, may not exceed the key's HogQL budget (here 1 a second)."""
    config = tmp_path / "auditor.toml"
    config.write_text("[limits]\nhogql = 1\nhogql_window_seconds = 1\n")
    result = batch(book, tmp_path / "p", "--parallel", "3", "--config", str(config))
    assert result.exit_code == 1
    stamps = sorted(t for t, method, path in standin.timeline if method == "POST" and path.endswith("/query/"))
    assert len(stamps) == 3  # one HogQL query per account
    assert stamps[-1] - stamps[0] >= 2.0  # the limiter made the batch wait rather than burst
    for i, start in enumerate(stamps):
        # The limiter admits by send time; the stand-in stamps on receipt, so allow for delivery jitter.
        in_window = [s for s in stamps[i:] if s - start < 1.0 - 0.15]
        assert len(in_window) <= 1, "the shared limiter let a burst through"


def test_ctrl_c_keeps_finished_reports(book, tmp_path, standin, monkeypatch):
    monkeypatch.setenv("BOOK_KEY", standin.api_key)
    registry = load_registry(plugins=False)
    ctx = BatchContext(registry=registry, checks=list(registry.checks.values()), settings=Settings(),
                       out_dir=tmp_path / "p", mode="health")
    specs = [AccountSpec(name=f"Account {i}", host=standin.url, api_key_env="BOOK_KEY", projects=["4242"])
             for i in range(4)]

    def interrupt(outcome):
        raise KeyboardInterrupt

    with pytest.raises(BatchInterrupted) as stopped:
        run_batch(ctx, specs, 1, interrupt)
    finished = stopped.value.outcomes
    assert len(finished) == 1
    assert (tmp_path / "p" / finished[0].spec.slug / "report.json").exists()


@pytest.mark.parametrize(("content", "message"), [
    ("[[accounts]]\nprojects = [1]\n", "needs a name"),
    ('[[accounts]]\nname = "A"\nprojects = [1]\n', "no host"),
    ('[[accounts]]\nname = "A"\nhost = "eu"\n', "give projects, organization or all_projects"),
    ('[[accounts]]\nname = "A"\nhost = "eu"\nprojects = ["abc"]\n', "numeric"),
    ('[[accounts]]\nname = "A"\nhost = "eu"\nprojects = [1]\ncolour = "red"\n', "unknown key 'colour'"),
    ('[[accounts]]\nname = "A"\nhost = "eu"\nprojects = [1]\n[[accounts]]\nname = "a"\nhost = "eu"\nprojects = [2]\n',
     "two accounts"),
    ("nothing = 1\n", "no [[accounts]]"),
])
def test_bad_accounts_file_is_one_line(tmp_path, content, message):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(content)
    result = CliRunner().invoke(cli, ["batch", str(accounts), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1


class CaptureServer:
    """A loopback PostHog ingestion endpoint that keeps what the posthog SDK sends."""

    def __init__(self) -> None:
        self.batches: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip
                    body = gzip.decompress(body)
                outer.batches.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": 1}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


def test_telemetry_sends_one_event_per_account_without_personal_data(book, tmp_path, monkeypatch):
    capture = CaptureServer()
    try:
        config = tmp_path / "auditor.toml"
        config.write_text(f'[telemetry]\nenabled = true\nhost = "{capture.url}"\n')
        monkeypatch.setenv("POSTHOG_AUDITOR_TELEMETRY_KEY", "phc_internal_project_key_for_tests")
        result = batch(book, tmp_path / "p", "--config", str(config))
        assert result.exit_code == 1
        events = [e for b in capture.batches for e in b.get("batch", [])]
        assert len(events) == 3  # the failed account sends nothing
        event = events[0]
        assert event["event"] == "posthog_audit_completed"
        props = event["properties"]
        assert props["$groups"] == {"organization": "0191b5c1-7a2e-0000-8c2d-4f0b3d1e9a77"}
        assert props["band"] == "Concerning" and isinstance(props["score_platform"], float)
        text = json.dumps(events)
        assert "@hedgebox.net" not in text and "phx_" not in text
    finally:
        capture.server.shutdown()
        capture.server.server_close()


def test_telemetry_is_off_by_default(book, tmp_path, monkeypatch):
    capture = CaptureServer()
    try:
        monkeypatch.setenv("POSTHOG_AUDITOR_TELEMETRY_KEY", "phc_internal_project_key_for_tests")
        batch(book, tmp_path / "p")
        assert capture.batches == []
    finally:
        capture.server.shutdown()
        capture.server.server_close()


def test_push_vitally_writes_back_each_account_that_names_one(book, tmp_path, monkeypatch):
    """The batch runs each account through the same pipeline as `audit`: with --push-vitally, an account that
    names its Vitally account gets the audit's traits and note; one that does not is audited and left alone,
    and a push Vitally refuses leaves the account audited, its reports written, with the refusal shown."""
    from tests.vitally_standin import running_vitally

    monkeypatch.setattr("auditor.clients.vitally_api.default_sleep", lambda seconds: None)
    text = book.read_text().replace('name = "Hedgebox prod"', 'name = "Hedgebox prod"\nvitally_account = "vit-1"')
    text = text.replace('name = "Hedgebox docs"', 'name = "Hedgebox docs"\nvitally_account = "vit-missing"')
    book.write_text(text)
    with running_vitally() as vitally:
        config = tmp_path / "auditor.toml"
        config.write_text(f'[vitally]\nregion = "{vitally.url}"\n')
        monkeypatch.setenv("VITALLY_API_KEY", vitally.api_key)
        out = tmp_path / "portfolio"
        result = batch(book, out, "--push-vitally", "--config", str(config))
        assert result.exit_code == 1, result.output
        assert ("PUT", "/resources/accounts/vit-1") in vitally.writes()
        assert [m for m, p in vitally.writes() if p == "/resources/notes"] == ["POST"]
        assert not any("vit-missing" in p for _, p in vitally.writes())
        note = vitally.data["notes"][-1]
        assert note["accountId"] == "vit-1" and note["subject"].startswith("PostHog audit")
    docs = next(line for line in result.output.splitlines() if "Hedgebox docs:" in line)
    assert "Concerning" in docs and "Vitally:" in docs and (out / "hedgebox-docs" / "report.json").exists()
    assert "3 not, 1 failed" in result.output  # Broken Co alone failed; the refused push is not a failed audit


def test_push_vitally_without_a_vitally_key_stops_before_auditing(book, tmp_path, standin, monkeypatch):
    monkeypatch.delenv("VITALLY_API_KEY", raising=False)
    book.write_text(book.read_text().replace('name = "Hedgebox prod"',
                                             'name = "Hedgebox prod"\nvitally_account = "vit-1"'))
    result = batch(book, tmp_path / "portfolio", "--push-vitally")
    assert result.exit_code == 2 and "no Vitally key: set VITALLY_API_KEY" in result.output
    assert standin.count(r"/query/$", "POST") == 0


def test_audit_and_batch_give_the_same_account_the_same_report(book, tmp_path, standin):
    """One account pipeline (auditor/account.py): the same account audited by `audit` and by `batch` gives the
    same report, but for when it ran and the batch's account name."""
    single = tmp_path / "single"
    result = CliRunner().invoke(cli, ["audit", "--host", standin.url, "--project", "4243", "--api-key-env", "BOOK_KEY",
                                      "--mode", "health", "--format", "json", "--out", str(single), "--no-plugins",
                                      "-q"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    book.write_text(book.read_text().split("[[accounts]]\nname = \"Hedgebox docs\"")[0]
                    .replace('name = "Hedgebox prod"\nprojects = [4242]\n\n[[accounts]]\n', ""))
    assert batch(book, tmp_path / "portfolio", "--no-history", "--format", "json").exit_code == 1

    def comparable(path: Path) -> dict:
        run = json.loads(path.read_text())
        for when in ("run_id", "started_at", "finished_at", "facts_as_of", "stats", "account"):
            run.pop(when, None)
        return run

    by_batch = comparable(tmp_path / "portfolio" / "hedgebox-marketing" / "report.json")
    assert by_batch == comparable(single / "report.json")
    assert by_batch["target"]["project_name"] == "Hedgebox (marketing site)"


def test_an_account_waiting_on_the_limiter_gives_its_seat_to_the_next():
    """One seat (--parallel 1): the first account must wait an hour for the key's HogQL budget. It steps aside
    meanwhile, so the second account works during that wait instead of queueing behind it; then the first one
    takes its seat back and finishes."""
    from concurrent.futures import ThreadPoolExecutor

    from auditor.batch import Seats
    from auditor.clients.posthog_api import RateLimiter

    now, second_done, events = [0.0], threading.Event(), []

    def sleep(seconds: float) -> None:  # the hour passes once the second account has done its work
        assert second_done.wait(5), "the second account never got the seat"
        now[0] += seconds

    limiter = RateLimiter({"hogql": (1, 3600.0)}, clock=lambda: now[0], sleep=sleep)
    limiter.acquire("hogql")  # the budget is spent
    waiting = threading.Event()

    def first() -> str:
        events.append("first waits")
        waiting.set()
        limiter.acquire("hogql")
        events.append("first sends its query")
        return "first"

    def second() -> str:
        events.append("second works")
        second_done.set()
        return "second"

    seats = Seats(1)
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(seats.run, first)
        assert waiting.wait(5)
        b = pool.submit(seats.run, second)
        assert (a.result(timeout=10), b.result(timeout=10)) == ("first", "second")
    assert events == ["first waits", "second works", "first sends its query"]


def test_an_account_the_tool_cannot_audit_as_asked_fails_alone(monkeypatch, tmp_path):
    """Any one-line error of the tool's own (a usage error such as 'org' naming no organization) fails that
    account, as a refused key does; the batch goes on."""
    from auditor import batch as batch_module
    from auditor.errors import UsageError

    def refuse(ctx, spec):
        raise UsageError("--vitally-account org: the PostHog organization id is unknown")

    monkeypatch.setattr(batch_module, "_audit", refuse)
    registry = load_registry(plugins=False)
    ctx = BatchContext(registry=registry, checks=list(registry.checks.values()), settings=Settings(),
                       out_dir=tmp_path / "p", mode="health")
    outcome = batch_module.audit_one(ctx, AccountSpec(name="A", host="https://eu.posthog.com", api_key_env="K",
                                                      projects=["1"]))
    assert outcome.status == "failed" and "organization id is unknown" in (outcome.error or "")
