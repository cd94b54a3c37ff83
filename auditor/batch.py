"""Periodic audits over a book of accounts: concurrent, rate-limited per key, resumable, never all-or-nothing.

accounts.toml:

    [defaults]
    host = "eu"
    api_key_env = "POSTHOG_PERSONAL_API_KEY"

    [[accounts]]
    name = "Hedgebox"
    host = "us"                    # optional: else [defaults]
    projects = [4242]              # or organization = "<org id>" / all_projects = true
    api_key_env = "HEDGEBOX_KEY"   # optional
    vitally_account = "org"        # optional: read Vitally (key in VITALLY_API_KEY)
    paying_for = ["product_analytics", "session_replay"]   # optional
    attestations = "hedgebox.toml" # optional, relative to this file
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from auditor.account import Account, Delivered, Outputs, WritesStopped, audit_account
from auditor.attestations import load_attestations
from auditor.catalogue import Catalogue
from auditor.clients.ahead import QueriesAhead, reading_ahead
from auditor.clients.posthog_api import (
    ApiError,
    KeyAnswers,
    PostHogClient,
    ahead_key,
    key_digest,
    normalise_host,
    stepping_aside,
)
from auditor.clients.vitally_api import VitallyClient, base_url
from auditor.clients.waits import announce_waits
from auditor.config import ConfigError, Settings, parse_products, read_toml
from auditor.defaults import DEFAULT_API_KEY_ENV, FORMATS
from auditor.errors import AuditorError
from auditor.facts import combined_query, read_key_scopes, sends_hogql
from auditor.model import Check
from auditor.outputs import telemetry
from auditor.outputs.render import savings_headline, template, write_atomic
from auditor.registry import Registry, builtin_registry
from auditor.result import RunResult
from auditor.runner import needed_facts


@dataclass
class AccountSpec:
    name: str
    host: str
    api_key_env: str
    projects: list[str] = field(default_factory=list)
    all_projects: bool = False
    organization: str | None = None
    vitally_account: str | None = None
    paying_for: list[str] | None = None
    attestations: str | None = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "account"


# What [defaults] may set: the values every account reads from it when it does not set its own.
DEFAULT_KEYS = frozenset({"host", "api_key_env"})


def load_accounts(path: str, default_host: str | None = None, catalogue: Catalogue | None = None) -> list[AccountSpec]:
    file = Path(path)
    data = read_toml(file, "accounts file")
    entries = data.get("accounts")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[accounts]] entries")
    unknown_sections = sorted(set(data) - {"defaults", "accounts"})
    if unknown_sections:  # e.g. [default] for [defaults]: its values would be silently ignored
        raise ConfigError(f"{path}: unknown section [{unknown_sections[0]}] (known: [defaults], [[accounts]])")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: [defaults] must be a table")
    unknown_defaults = sorted(set(defaults) - DEFAULT_KEYS)
    if unknown_defaults:
        raise ConfigError(f"{path}: unknown key '{unknown_defaults[0]}' under [defaults] "
                          f"(known: {', '.join(sorted(DEFAULT_KEYS))})")
    specs, seen = [], set()
    for i, entry in enumerate(entries, 1):
        where = f"{path}: account #{i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise ConfigError(f"{where} needs a name")
        unknown = sorted(set(entry) - {"name", "host", "projects", "all_projects", "organization", "api_key_env",
                                       "vitally_account", "paying_for", "attestations"})
        if unknown:
            raise ConfigError(f"{where} ({entry['name']}): unknown key '{unknown[0]}'")
        host = entry.get("host") or defaults.get("host") or default_host
        if not host:
            raise ConfigError(f"{where} ({entry['name']}): no host (set host, or [defaults] host, or --host)")
        try:
            host = normalise_host(str(host))
        except ValueError as exc:
            raise ConfigError(f"{where} ({entry['name']}): {exc}") from None
        raw_projects = entry.get("projects", [])
        # A string is not a list: projects = "4242" would otherwise be read character by character (4, 2, 4, 2).
        if not isinstance(raw_projects, list) or any(isinstance(p, bool) for p in raw_projects):
            raise ConfigError(f"{where} ({entry['name']}): projects must be a list of numeric ids, "
                              "e.g. projects = [4242]")
        projects = [str(p) for p in raw_projects]
        if any(not p.isdigit() for p in projects):
            raise ConfigError(f"{where} ({entry['name']}): projects must be numeric ids")
        organization = entry.get("organization")
        if organization is not None and (not isinstance(organization, str) or not organization.strip()):
            raise ConfigError(f"{where} ({entry['name']}): organization must be the organization id (a string)")
        if projects and organization:  # which one was meant? Neither silently wins.
            raise ConfigError(f"{where} ({entry['name']}): give projects or organization, not both")
        if not projects and not entry.get("all_projects") and not organization:
            raise ConfigError(f"{where} ({entry['name']}): give projects, organization or all_projects = true")
        paying = entry.get("paying_for")
        attest = entry.get("attestations")
        if paying and catalogue is None:  # built once, for the first entry that needs it
            catalogue = builtin_registry().catalogue
        spec = AccountSpec(
            name=entry["name"].strip(), host=host,
            api_key_env=str(entry.get("api_key_env") or defaults.get("api_key_env") or DEFAULT_API_KEY_ENV),
            projects=projects, all_projects=bool(entry.get("all_projects") or organization),
            organization=organization.strip() if organization else None,
            vitally_account=entry.get("vitally_account"),
            paying_for=parse_products(",".join(paying), catalogue) if paying and catalogue else None,
            attestations=str((file.parent / attest).resolve()) if attest else None,
        )
        if spec.slug in seen:
            raise ConfigError(f"{where}: two accounts are named '{spec.name}'")
        seen.add(spec.slug)
        specs.append(spec)
    return specs


def specs_from_vitally(client: VitallyClient, host: str, api_key_env: str, min_arr: float) -> list[AccountSpec]:
    """Active Vitally accounts at or above the ARR threshold; their externalId is the PostHog organization."""
    specs = []
    for account in client.accounts("active"):
        arr = float(account.get("mrr") or 0) * 12
        if arr >= min_arr and account.get("externalId"):
            specs.append(AccountSpec(name=str(account.get("name") or account["externalId"]), host=host,
                                     api_key_env=api_key_env, organization=str(account["externalId"]),
                                     all_projects=True, vitally_account=str(account["id"])))
    return specs


@dataclass
class BatchContext:
    registry: Registry
    checks: list[Check]
    settings: Settings
    out_dir: Path
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    mode: str = "handover"
    history_dir: Path | None = None
    resume: bool = False
    period: str = "day"  # day | week | month: what --resume counts as "already audited"
    audience: str = "internal"  # whom each account's reports are for (the portfolio and history stay internal)
    vitally_factory: Callable[[], VitallyClient | None] = lambda: None
    session_factory: Callable[[AccountSpec], Any] = lambda spec: None  # tests and the demo serve accounts in-process
    telemetry: telemetry.Telemetry | None = None  # one per batch: a host that fails is warned about once
    push_vitally: bool = False  # write each audited account's traits and note back to its Vitally account
    # Ctrl-C: `interrupt_requested` is all a signal handler sets (a plain flag takes no lock); the batch's main
    # thread then calls `freeze()`, which sets `stop`: no account starts, and no write starts, after it.
    interrupt_requested: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    _writes: threading.Condition = field(default_factory=threading.Condition)
    _writing: int = 0
    _committed: dict[str, RunResult] = field(default_factory=dict)  # account name -> run, written in full

    def __post_init__(self) -> None:
        if self.telemetry is None:
            self.telemetry = telemetry.Telemetry(self.settings.telemetry)

    def begin(self) -> bool:
        """May this account write its reports and history? Not once the batch is stopping."""
        with self._writes:
            if self.stop.is_set():
                return False
            self._writing += 1
            return True

    def end(self, run: RunResult | None) -> None:
        with self._writes:
            if run is not None:
                self._committed[str(run.get("account"))] = run
            self._writing -= 1
            self._writes.notify_all()

    def stopping(self) -> bool:
        return self.stop.is_set()

    def freeze(self) -> None:
        """Stop the batch: from now on nothing starts and nothing is written; returns once the writes already
        under way (a few files, milliseconds) are complete. Then the portfolio is the last thing written."""
        with self._writes:
            self.stop.set()
            while self._writing:
                self._writes.wait()


class Interrupted(Exception):
    """The batch stopped before this account's audit could be written."""


@dataclass
class Outcome:
    spec: AccountSpec
    status: str  # audited | resumed | failed | interrupted
    run: Mapping[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0


def period_key(moment: date, period: str) -> str:
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return moment.strftime("%Y-%m")
    return moment.isoformat()


def already_audited(ctx: BatchContext, spec: AccountSpec) -> dict[str, Any] | None:
    path = ctx.out_dir / spec.slug / "report.json"
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
        started = datetime.fromisoformat(run["started_at"]).date()
    except (OSError, ValueError, KeyError):
        return None
    today = datetime.now(UTC).date()
    same_period = period_key(started, ctx.period) == period_key(today, ctx.period)
    return run if same_period and run.get("mode") == ctx.mode else None


INTERRUPTED = "interrupted (Ctrl-C) before its audit was written"


def audit_one(ctx: BatchContext, spec: AccountSpec) -> Outcome:
    clock = time.perf_counter()
    if ctx.stop.is_set() or ctx.interrupt_requested:  # stopping: start no new account
        return Outcome(spec, "interrupted", error=INTERRUPTED)
    if ctx.resume:
        previous = already_audited(ctx, spec)
        if previous is not None:
            return Outcome(spec, "resumed", previous)
    try:
        delivered = _audit(ctx, spec)
    except Interrupted:
        return Outcome(spec, "interrupted", error=INTERRUPTED, seconds=time.perf_counter() - clock)
    except (ApiError, AuditorError, ValueError, OSError) as exc:  # AuditorError: config, attestations, usage
        if ctx.stop.is_set():  # whatever failed once the batch was stopping, it was the stop that ended it
            return Outcome(spec, "interrupted", error=INTERRUPTED, seconds=time.perf_counter() - clock)
        return Outcome(spec, "failed", error=str(exc), seconds=time.perf_counter() - clock)
    failure = delivered.vitally_failure  # audited and written; only the write-back to Vitally failed
    return Outcome(spec, "audited", delivered.run, error=f"Vitally: {failure}" if failure else None,
                   seconds=time.perf_counter() - clock)


def _audit(ctx: BatchContext, spec: AccountSpec) -> Delivered:
    """One account of the book, through the same pipeline as `audit`."""
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise ConfigError(f"no API key: {spec.api_key_env} is not set")
    attestations = load_attestations(spec.attestations, ctx.registry.catalogue.attestation_items) \
        if spec.attestations else None
    account = Account(host=spec.host, api_key=key, projects=spec.projects, all_projects=spec.all_projects,
                      organization=spec.organization, name=spec.name, paying_for=spec.paying_for,
                      attestations=attestations, vitally_account=spec.vitally_account,
                      session=ctx.session_factory(spec))
    vitally = ctx.vitally_factory() if spec.vitally_account else None
    outputs = Outputs(mode=ctx.mode, out_dir=ctx.out_dir / spec.slug, formats=ctx.formats,
                      history_dir=ctx.history_dir, telemetry=ctx.telemetry, vitally=vitally,
                      push_vitally=ctx.push_vitally and vitally is not None, audience=ctx.audience, gate=ctx)
    try:
        return audit_account(account, ctx.registry, ctx.checks, ctx.settings, outputs)
    except WritesStopped:
        raise Interrupted from None


WAITING_PER_SEAT = 4  # accounts that may be waiting on the limiter, per account at work


class Seats:
    """At most `parallel` accounts at work at once. An account that the key's rate limiter makes wait a while
    steps aside: its seat goes to the next account until the wait is over (posthog_api.stepping_aside)."""

    def __init__(self, count: int):
        self._free = threading.Semaphore(count)

    def run(self, work: Callable[..., Outcome], *args: Any) -> Outcome:
        away = _Away(self._free)
        with self._free, stepping_aside(away.stepping_out):  # a free seat, held for the work
            return work(*args)


class _Away:
    """One account's threads waiting on the limiter: the seat is given up when the first starts waiting and taken
    back when the last is done (the others of the account may go on working meanwhile)."""

    def __init__(self, seats: threading.Semaphore):
        self._seats, self._lock, self._waiting = seats, threading.Lock(), 0

    @contextlib.contextmanager
    def stepping_out(self) -> Iterator[None]:
        with self._lock:
            self._waiting += 1
            if self._waiting == 1:
                self._seats.release()
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1
                back = self._waiting == 0
            if back:
                self._seats.acquire()


# Queries the lane has under way at once: enough to send a window's budget within seconds (8 measured no faster in
# benchmarks/), few enough not to crowd PostHog's concurrent-query limits. Answers waiting to be taken are bounded
# by QueriesAhead (120, and 100,000 rows: two answers of a very large project).
AHEAD_WORKERS = 4


def send_ahead(ctx: BatchContext, specs: list[AccountSpec], store: QueriesAhead,
               query: tuple[str, str, int]) -> None:
    """Start the batch's HogQL lane: each account's query is sent in account order, as soon as its key's limiter
    lets it, and its answer waits in `store` for the account's audit (auditor/clients/ahead.py says why). Only
    accounts whose projects are named (others find theirs through the API first), whose key reads HogQL, and
    that this run will audit. Nothing when the checks read no HogQL."""
    wanted = needed_facts(ctx.checks) | ctx.registry.catalogue.facts | {"organization"}
    if not sends_hogql(wanted, None):
        return
    text, name, limit = query
    jobs = [(spec, project) for spec in specs if spec.projects and not spec.all_projects for project in spec.projects]

    def send(spec: AccountSpec, project: str) -> None:
        key = os.environ.get(spec.api_key_env)
        if ctx.stopping() or ctx.interrupt_requested or not key or (
                ctx.resume and already_audited(ctx, spec) is not None):  # as audit_one decides
            return
        with contextlib.suppress(Exception), PostHogClient(spec.host, key, session=ctx.session_factory(spec),
                                                            **ctx.settings.client_options()) as client:
            announce_waits(client.limiter)  # a long wait for the HogQL budget says so, here as in an audit
            # The key's scopes are asked once per key for the whole batch (KeyAnswers): the audits reuse them.
            if sends_hogql(wanted, read_key_scopes(client)):
                client.send_ahead(store, project, text, name=name, limit=limit)

    queue = iter(jobs)
    taking = threading.Lock()

    def lane() -> None:
        while True:
            with taking:  # the workers take the jobs in account order
                job = next(queue, None)
            if job is None:
                return
            send(*job)

    # Daemon threads: a worker may sleep on the hourly HogQL budget, which must not keep a stopped batch alive.
    for i in range(AHEAD_WORKERS):
        threading.Thread(target=lane, name=f"hogql-ahead-{i}", daemon=True).start()


def run_batch(ctx: BatchContext, specs: list[AccountSpec], parallel: int,
              on_done: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
    """Audit every account. Stopped (Ctrl-C: KeyboardInterrupt here, or `ctx.interrupt_requested` set by a
    signal handler), it starts nothing more, lets the writes under way finish, and raises BatchInterrupted with
    what finished and what was interrupted; accounts still gathering are abandoned and will write nothing."""
    store = QueriesAhead()
    try:
        return _run(ctx, specs, parallel, on_done, store)
    finally:
        store.close()  # whatever ended the batch (a stop, or a failure in on_done), the lane sends no more
        KeyAnswers.forget_refusals()


def _run(ctx: BatchContext, specs: list[AccountSpec], parallel: int, on_done: Callable[[Outcome], None],
         store: QueriesAhead) -> list[Outcome]:
    outcomes: list[Outcome] = []
    seats = Seats(max(1, parallel))
    query = combined_query()  # what each account's audit sends: the lane sends it ahead, and knows it by it
    send_ahead(ctx, specs, store, query)
    # More threads than seats: an account waiting on its key's limiter (the hourly HogQL budget) gives up its seat,
    # and the next account gathers meanwhile instead of queueing behind it.
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(specs), parallel * WAITING_PER_SEAT)),
                              thread_name_prefix="account")
    futures: dict[Future[Outcome], AccountSpec] = {
        pool.submit(seats.run, _reading_ahead, store, query, ctx, spec): spec for spec in specs}
    pending = set(futures)
    try:
        while pending and not ctx.interrupt_requested:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                outcomes.append(outcome)
                on_done(outcome)
    except KeyboardInterrupt:
        ctx.interrupt_requested = True
    if ctx.interrupt_requested:
        ctx.freeze()
        store.close()
        pool.shutdown(wait=False, cancel_futures=True)
        raise BatchInterrupted(*_settle(ctx, specs, futures, outcomes)) from None
    pool.shutdown(wait=True)
    return sorted_outcomes(outcomes, specs)


def _reading_ahead(store: QueriesAhead, query: tuple[str, str, int], ctx: BatchContext,
                   spec: AccountSpec) -> Outcome:
    try:
        with reading_ahead(store):
            return audit_one(ctx, spec)
    finally:
        key = os.environ.get(spec.api_key_env)
        if key:
            store.drop([ahead_key(spec.host, key_digest(key), project, *query) for project in spec.projects])


def _settle(ctx: BatchContext, specs: list[AccountSpec], futures: dict[Future[Outcome], AccountSpec],
            outcomes: list[Outcome]) -> tuple[list[Outcome], list[Outcome]]:
    """After a stop: every account is finished (its outcome, or a run written in full) or interrupted."""
    known = {o.spec.slug: o for o in outcomes}
    for future, spec in futures.items():
        if spec.slug not in known and future.done() and not future.cancelled() and future.exception() is None:
            known[spec.slug] = future.result()
    for spec in specs:  # written in full, its future not yet returned: finished all the same
        run = ctx._committed.get(spec.name)
        if run is not None and (spec.slug not in known or known[spec.slug].status == "interrupted"):
            known[spec.slug] = Outcome(spec, "audited", run)
    finished = [o for o in known.values() if o.status != "interrupted"]
    done = {o.spec.slug for o in finished}
    interrupted = [Outcome(spec, "interrupted", error=INTERRUPTED) for spec in specs if spec.slug not in done]
    return sorted_outcomes(finished, specs), interrupted


class BatchInterrupted(Exception):
    def __init__(self, outcomes: list[Outcome], interrupted: list[Outcome] | None = None):
        super().__init__("interrupted")
        self.outcomes = outcomes  # what finished
        self.interrupted = interrupted or []  # what did not: listed in the portfolio as interrupted


def sorted_outcomes(outcomes: list[Outcome], specs: list[AccountSpec]) -> list[Outcome]:
    order = {spec.slug: i for i, spec in enumerate(specs)}
    return sorted(outcomes, key=lambda o: order.get(o.spec.slug, 0))


# ---- the portfolio -------------------------------------------------------------------------------

def portfolio_rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    rows = []
    for o in outcomes:
        row: dict[str, Any] = {"account": o.spec.name, "slug": o.spec.slug, "status": o.status, "error": o.error,
                               "report": f"{o.spec.slug}/report.html" if o.run else None}
        if o.run:
            readiness = o.run["readiness"]
            changes = o.run.get("changes") or {}
            recs = (o.run.get("brief") or {}).get("top_recommendations") or []
            row.update(
                readiness=readiness["score"], ready=readiness["ready"], band=readiness.get("band"),
                verdict=verdict(o.run), started_at=o.run["started_at"],
                categories={c["id"]: c["score"] for c in o.run["categories"] if c["in_scope"]},
                change=changes.get("readiness_delta"), previous_audit=changes.get("previous_started_at"),
                regressions=changes.get("regressions") or [],
                top_finding=f"{recs[0]['title']}: {recs[0]['summary']}" if recs else "",
                savings_usd=(o.run.get("savings") or {}).get("usd_per_month"),
                savings=savings_headline(o.run.get("savings")) or "",
            )
        rows.append(row)
    return rows


def verdict(run: Mapping[str, Any]) -> str:
    readiness = run["readiness"]
    if run.get("mode") == "health":
        return readiness.get("band") or "Unknown"
    return "Ready" if readiness["ready"] else "Not ready"


def write_portfolio(out_dir: Path, rows: list[dict[str, Any]], mode: str) -> list[Path]:
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    categories = list(dict.fromkeys(c for r in rows for c in (r.get("categories") or {})))
    doc = {"generated_at": generated, "mode": mode, "accounts": rows}
    html = template("portfolio.html.j2").render(portfolio=doc, categories=categories)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["account", "status", "verdict", "readiness", "change", *categories, "regressions",
                     "top_finding", "report", "error", "savings_usd_per_month"])
    for r in rows:
        cats = r.get("categories") or {}
        writer.writerow([r["account"], r["status"], r.get("verdict", ""), r.get("readiness"), r.get("change"),
                         *[cats.get(c) for c in categories], " | ".join(r.get("regressions") or []),
                         r.get("top_finding", ""), r.get("report") or "", r.get("error") or "",
                         r.get("savings_usd")])
    markdown = template("portfolio.md.j2").render(portfolio=doc)
    outputs = {"index.html": html, "portfolio.json": json.dumps(doc, indent=2, default=str) + "\n",
               "portfolio.csv": buffer.getvalue(), "portfolio.md": markdown}
    paths = []
    for name, text in outputs.items():
        write_atomic(out_dir / name, text)
        paths.append(out_dir / name)
    return paths


def vitally_factory(settings: Settings) -> Callable[[], VitallyClient | None]:
    def make() -> VitallyClient | None:
        key = os.environ.get(settings.vitally.api_key_env)
        if not key:
            return None
        return VitallyClient(base_url(settings.vitally.region, settings.vitally.subdomain), key)

    return make
