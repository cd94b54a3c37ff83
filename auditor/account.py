"""One account, end to end, the same whichever command runs it (`audit` or `batch`): gather each project's facts,
run the checks, score, combine the projects into one verdict, then write the account's outputs (reports, history,
telemetry, Vitally). The same account gives the same outputs from either command."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from auditor.audit import audit_target, evaluate
from auditor.clients.posthog_api import ApiError, PostHogClient
from auditor.clients.vitally_api import VitallyClient
from auditor.clients.waits import announce_waits
from auditor.config import Settings
from auditor.defaults import FORMATS
from auditor.errors import UsageError
from auditor.facts import Facts
from auditor.model import Check
from auditor.outputs import history
from auditor.outputs.render import write_atomic, write_reports
from auditor.outputs.telemetry import Telemetry
from auditor.outputs.vitally import push_run, read_account
from auditor.registry import Registry
from auditor.result import RunResult


@dataclass
class Account:
    """What to audit: where, with which key, which projects, and what a person or Vitally says about it."""

    host: str
    api_key: str
    projects: list[str] = field(default_factory=list)
    all_projects: bool = False
    organization: str | None = None  # every project of this organization
    name: str | None = None  # a batch's account name (history, portfolio); else named after what was audited
    paying_for: list[str] | None = None  # this account's paid products, over the settings'
    attestations: dict[str, Any] | None = None  # a person's answers (a loaded attestation file)
    vitally_account: str | None = None  # a Vitally account id, or "org": the PostHog organization's id
    session: Any = None  # a requests.Session serving it in-process (the demo; tests)


class WriteGate(Protocol):
    """Who may write: a batch stops writes once Ctrl-C is pressed, so nothing lands after its portfolio."""

    def begin(self) -> bool: ...  # may this account write? (then `end` follows, with what was written)

    def end(self, run: RunResult | None) -> None: ...

    def stopping(self) -> bool: ...  # nothing more is sent either (telemetry, Vitally)


class AlwaysWrite:
    def begin(self) -> bool:
        return True

    def end(self, run: RunResult | None) -> None:
        pass

    def stopping(self) -> bool:
        return False


class WritesStopped(Exception):
    """The batch is stopping: this account's outputs were not written (none of them)."""


@dataclass
class Outputs:
    """What is written for an account, and where; None/False leaves an output out."""

    mode: str = "handover"
    out_dir: Path | None = None
    formats: Sequence[str] = FORMATS
    history_dir: Path | None = None
    save_facts: Path | None = None  # one project's gathered facts, for --from-facts
    telemetry: Telemetry | None = None
    vitally: VitallyClient | None = None  # read the account (paid products, notes); with push, write back
    push_vitally: bool = False
    report_url: str | None = None
    # Who the reports are for: "internal" (PostHog's people), or "customer" (auditor/outputs/audience.py). The history,
    # Vitally and telemetry always keep the internal run.
    audience: str = "internal"
    gate: WriteGate = field(default_factory=AlwaysWrite)


@dataclass
class Delivered:
    run: RunResult
    reports: list[Path]
    vitally_unresolved: list[str] = field(default_factory=list)  # a dry run's lookups that could not be made
    vitally_failure: ApiError | None = None  # the push failed: the audit stands and is written all the same


_HISTORY = threading.Lock()  # one writer at a time: the previous run must be read before the next one lands


def audit_account(account: Account, registry: Registry, checks: list[Check], settings: Settings,
                  outputs: Outputs) -> Delivered:
    """Audit the account through PostHog's API and write its outputs. ApiError propagates (it names the project
    that failed); a project of a whole organization the key cannot read is an errored section instead."""
    return deliver(assess(account, registry, checks, settings, outputs), account, outputs, registry.renamed())


def assess(account: Account, registry: Registry, checks: list[Check], settings: Settings,
           outputs: Outputs) -> RunResult:
    """Gather, judge and combine: the account's RunResult, nothing written but the saved facts."""
    if account.paying_for is not None:
        settings = settings.with_overrides(paying_for=account.paying_for)
    options = _judging(account, registry, settings, outputs)
    several = account.all_projects or account.organization is not None or len(account.projects) > 1
    saver = None if several or outputs.save_facts is None else _facts_saver(outputs.save_facts)
    # Every client on the same key shares one rate limiter (RateLimiter.for_key), whatever the parallelism; a
    # long wait on it (the hourly HogQL budget) says what it waits for and how long.
    with PostHogClient(account.host, account.api_key, session=account.session,
                       **settings.client_options()) as client:
        announce_waits(client.limiter)
        return audit_target(client, account.projects, registry, checks, settings, all_projects=account.all_projects,
                            organization=account.organization, save_facts=saver, **options)


def reassess(facts: Facts, account: Account, registry: Registry, checks: list[Check], settings: Settings,
             outputs: Outputs) -> RunResult:
    """Judge saved facts again (--from-facts): no API call, the same judgement and the same outputs."""
    if account.paying_for is not None:
        settings = settings.with_overrides(paying_for=account.paying_for)
    options = _judging(account, registry, settings, outputs)
    options.pop("vitally_lookup", None)  # saved facts keep the Vitally account they were saved with
    return evaluate(facts, registry, checks, settings, **options)


def _judging(account: Account, registry: Registry, settings: Settings, outputs: Outputs) -> dict[str, Any]:
    """What the judgement takes besides the facts: the mode, a person's answers, and the Vitally account."""
    options: dict[str, Any] = {"mode": outputs.mode, "attestations": account.attestations}
    client, selector = outputs.vitally, account.vitally_account
    if client is not None and selector:
        answers: dict[str, dict[str, Any]] = {}
        reading = threading.Lock()

        def lookup(facts: Facts) -> dict[str, Any]:
            # An account's projects (audited side by side) name one Vitally account: read it once (four
            # requests), not once per project. A failed read is not kept: each project says what it met.
            account_id = vitally_account_id(selector, facts.target)
            with reading:
                if account_id not in answers:
                    answers[account_id] = read_account(client, account_id, settings.vitally, registry.catalogue)
                return answers[account_id]

        options["vitally_lookup"] = lookup
    return options


def vitally_account_id(given: str, target: dict[str, Any] | Any) -> str:
    """'org' means the Vitally account whose externalId is the PostHog organization id."""
    if given == "org":
        if not target.get("organization_id"):
            raise UsageError("--vitally-account org: the PostHog organization id is unknown")
        return str(target["organization_id"])
    return given


def _facts_saver(path: Path) -> Callable[[Facts], None]:
    def save(facts: Facts) -> None:
        write_atomic(path, json.dumps(facts.to_json(), indent=1, default=str))

    return save


def account_name(account: Account, run: RunResult) -> str:
    """What history, telemetry and the portfolio call the account."""
    if account.name:
        return account.name
    target = run["target"]
    return str(target.get("organization_name") or target.get("project_name") or history.account_key(run))


def deliver(run: RunResult, account: Account, outputs: Outputs, renamed: Mapping[str, str] | None = None) -> Delivered:
    """Write the account's outputs: history (with what changed since the last audit; `renamed` carries a renamed
    check's history on), reports, telemetry and, when asked, Vitally. Behind the gate: all of the account's files,
    or none of them."""
    name = account_name(account, run)
    if account.name:
        run["account"] = account.name
    if not outputs.gate.begin():
        raise WritesStopped
    written: RunResult | None = None
    reports: list[Path] = []
    try:
        if outputs.history_dir is not None:
            with _HISTORY:
                history.compare(outputs.history_dir, run, account.name, renamed)
                history.record_run(outputs.history_dir, run, account.name)
        if outputs.out_dir is not None:
            reports = write_reports(run, outputs.out_dir, list(outputs.formats), outputs.audience)
        written = run
    finally:
        outputs.gate.end(written)
    if outputs.gate.stopping():
        return Delivered(run, reports)
    if outputs.telemetry is not None:
        outputs.telemetry.send(run, name)
    delivered = Delivered(run, reports)
    if outputs.push_vitally and outputs.vitally is not None and account.vitally_account:
        try:
            push_run(outputs.vitally, run, vitally_account_id(account.vitally_account, run["target"]),
                     outputs.report_url, delivered.vitally_unresolved)
        except ApiError as exc:
            delivered.vitally_failure = exc
    return delivered
