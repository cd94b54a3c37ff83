"""The command line: audit, batch, render, attest, history, vitally push, allocate, checks.

Each command is a thin layer: it reads its flags into an Account and its Outputs (auditor/account.py), or into
the batch's context, and prints what happened. Failures are AuditorErrors (auditor/errors.py) that `_run` turns
into one line and an exit code. Heavy modules (polars, requests, jinja2) are imported by the commands that use
them, so `--help` and `checks` start at once.

Exit codes: 0 ready, 1 not ready, 2 usage/config/auth error, 3 the API could not be reached or gave no usable answer;
130 interrupted (Ctrl-C); 141 the reader of our output went away (`… | head`), like any tool killed by SIGPIPE.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import click

from auditor import __version__
from auditor.defaults import AUDIENCES, DEFAULT_API_KEY_ENV, DEFAULT_CONCURRENCY, FORMATS, MAX_CONCURRENCY
from auditor.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_NOT_READY,
    EXIT_READY,
    EXIT_USAGE,
    AuditorError,
    Unreachable,
    UsageError,
)
from auditor.text import neutralise

if TYPE_CHECKING:
    from auditor.account import Account, Delivered
    from auditor.batch import AccountSpec, BatchContext, Outcome
    from auditor.clients.posthog_api import ApiError
    from auditor.clients.vitally_api import VitallyClient
    from auditor.config import Settings
    from auditor.registry import Registry


def say(text: str = "", err: bool = False) -> None:
    """Print one line of the tool's output. Names in it come from a customer's project (or a server's error
    text) and are data: control characters and bidi overrides are shown as escapes, never acted on."""
    click.echo(neutralise(text), err=err)


def parse_formats(values: tuple[str, ...]) -> list[str]:
    formats = [f.strip().lower() for v in values for f in v.split(",") if f.strip()] or list(FORMATS)
    for f in formats:
        if f not in FORMATS:
            raise UsageError(f"unknown format '{f}' (choose from {', '.join(FORMATS)})")
    return list(dict.fromkeys(formats))


def check_report_url(value: str | None) -> str | None:
    """The report link goes into a Vitally note and trait: only a web address (no javascript:, no file:)."""
    if value is None:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value.strip()):
        raise click.BadParameter(f"must be an http(s) URL, e.g. https://reports.example.com/acme.html, got {value!r}")
    return value.strip()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="posthog-auditor")
def cli() -> None:
    """Read-only audit of a PostHog project: per-product onboarding checks, a readiness score and the
    handover gate, rendered as HTML, JSON and Markdown."""


def command(group: click.Group, name: str | None = None) -> Callable[[Callable[..., int]], click.Command]:
    """Register a command whose body returns its exit code; `_run` ends the process with it, or with the one
    line an AuditorError (or any other failure) gives."""

    def register(body: Callable[..., int]) -> click.Command:
        @functools.wraps(body)  # keeps the docstring (the help) and the options click attached to the body
        def entry(**options: Any) -> None:
            _run(lambda: body(**options))

        return group.command(name=name)(entry)

    return register


# ---- audit ----------------------------------------------------------------------------------------------------

@command(cli)
@click.option("--host", help="us, eu, or a self-hosted base URL (env POSTHOG_HOST).")
@click.option("--project", "projects", multiple=True,
              help="Project id; repeat for an account with several projects (env POSTHOG_PROJECT_ID).")
@click.option("--all-projects", is_flag=True, help="Audit every project of the organization as one account.")
@click.option("--api-key-env", help="Environment variable holding the personal API key "
              f"[default: {DEFAULT_API_KEY_ENV}].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings file [default: ./auditor.toml].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="audit-report", show_default=True,
              help="Directory for report.html, report.json and report.md.")
@click.option("--format", "formats", multiple=True, help="html, json, md (comma-separated or repeated) [default: all].")
@click.option("--paying-for", help="Paid products, comma-separated (when billing cannot be read).")
@click.option("--attestations", "attestations_path", type=click.Path(dir_okay=False),
              help="TOML file of handover items a person attests (see `posthog-auditor attest --init`).")
@click.option("--vitally-account", help="Read this Vitally account (id, or 'org' for the PostHog organization id) "
              "for paid products, notes and engagement; key in VITALLY_API_KEY.")
@click.option("--push-vitally", is_flag=True, help="After the audit, write its traits and note to the Vitally account.")
@click.option("--vitally-dry-run", is_flag=True, help="With --push-vitally: print the payloads, send nothing.")
@click.option("--report-url", callback=lambda ctx, param, value: check_report_url(value),
              help="Where the HTML report will be hosted (an http(s) URL, linked from Vitally).")
@click.option("--mode", type=click.Choice(["handover", "health"]), default="handover", show_default=True,
              help="handover: gate the handover; health: periodic health bands (Healthy/Concerning/Poor).")
@click.option("--history", "history_dir", type=click.Path(file_okay=False),
              help="Record the run here (parquet) and report what changed since the previous audit.")
@click.option("--check", "only", multiple=True, help="Run only this check id (repeatable).")
@click.option("--category", "categories", multiple=True, help="Run only this category (repeatable).")
@click.option("--save-facts", type=click.Path(dir_okay=False), help="Also save the gathered facts to this file.")
@click.option("--from-facts", type=click.Path(dir_okay=False), help="Re-audit saved facts offline (no API calls).")
@click.option("--demo", is_flag=True, help="Audit the built-in demo project: no key, no network.")
# The default lives in config (Settings): the help text reads it, so the two cannot drift apart again.
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY),
              help=f"Parallel requests [default: {DEFAULT_CONCURRENCY}, or [audit] concurrency].")
@click.option("--audience", type=click.Choice(AUDIENCES), default="internal", show_default=True,
              help="internal: the account owner's report (gate, attestations, brief); customer: a report to send the "
              "customer (health, fixes, savings, links; nothing internal).")
@click.option("--no-plugins", is_flag=True, help="Do not load third-party checks.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def audit(
    host: str | None, projects: tuple[str, ...], all_projects: bool, api_key_env: str | None,
    config_path: str | None, out_dir: str, formats: tuple[str, ...], paying_for: str | None,
    attestations_path: str | None, vitally_account: str | None, push_vitally: bool, vitally_dry_run: bool,
    report_url: str | None, mode: str, history_dir: str | None, only: tuple[str, ...], categories: tuple[str, ...],
    save_facts: str | None, from_facts: str | None, demo: bool, concurrency: int | None, no_plugins: bool,
    audience: str, quiet: bool,
) -> int:
    """Audit one PostHog project and write the reports."""
    from auditor.account import Account, Outputs, assess, deliver, reassess
    from auditor.attestations import load_attestations
    from auditor.clients.posthog_api import ApiError
    from auditor.config import load_settings, parse_products
    from auditor.outputs.telemetry import Telemetry
    from auditor.registry import load_registry

    registry = load_registry(plugins=not no_plugins)
    settings = load_settings(config_path, registry.checks, registry.catalogue).with_overrides(
        host=host or None, projects=list(projects) or None, api_key_env=api_key_env or None,
        concurrency=concurrency or None,
        paying_for=None if paying_for is None else parse_products(paying_for, registry.catalogue))
    out_formats = parse_formats(formats)
    checks = _selected_checks(registry, only, categories)
    if push_vitally and (only or categories):  # it would overwrite the account's scores with a partial run
        raise UsageError("--push-vitally needs a full audit, not a subset of checks (--check/--category)")
    if push_vitally and not vitally_account:
        raise UsageError("--push-vitally needs --vitally-account (an id, or 'org')")
    attestations = load_attestations(attestations_path, registry.catalogue.attestation_items) \
        if attestations_path else None
    if from_facts:  # no API call: the account is what the saved facts say it is
        account = Account(host=settings.host or "", api_key="")
    else:
        account = _demo_account() if demo else _account_from(settings, all_projects)
    account.attestations, account.vitally_account = attestations, vitally_account
    outputs = Outputs(
        mode=mode, out_dir=Path(out_dir), formats=out_formats, history_dir=Path(history_dir) if history_dir else None,
        save_facts=Path(save_facts) if save_facts and not from_facts else None,
        # one event per audited account, as in batch; not for the demo or a re-run of saved facts
        telemetry=None if demo or from_facts else Telemetry(settings.telemetry),
        vitally=make_vitally_client(settings, dry_run=vitally_dry_run) if vitally_account else None,
        push_vitally=push_vitally, report_url=report_url, audience=audience)  # history and Vitally: internal

    # The checks judge with polars (~0.2 s to import): loaded before the audit starts, like the client's own
    # libraries, rather than by its first check. A batch leaves it to its first judgement, so that its first
    # requests go out sooner.
    import polars  # noqa: F401

    if from_facts:
        run = reassess(_saved_facts(from_facts), account, registry, checks, settings, outputs)
    else:
        try:
            run = assess(account, registry, checks, settings, outputs)
        except ApiError as exc:
            raise api_error(exc, account.host) from None
        if save_facts and (account.all_projects or len(account.projects) > 1):
            say("note: --save-facts keeps one project's facts; it was skipped for this multi-project account",
                err=True)
    delivered = deliver(run, account, outputs, registry.renamed())
    if not quiet:
        print_verdict(delivered, mode, audience)
    if outputs.vitally is not None and push_vitally:
        if delivered.vitally_failure is not None:
            raise vitally_error(delivered.vitally_failure, outputs.vitally)
        report_writes(outputs.vitally, quiet, delivered.vitally_unresolved)
    return EXIT_READY if run["readiness"]["ready"] else EXIT_NOT_READY


def _selected_checks(registry: Registry, only: tuple[str, ...], categories: tuple[str, ...]) -> list[Any]:
    known_categories = list(dict.fromkeys(c.meta.category for c in registry.checks.values()))
    for category in categories:  # an unknown one would select nothing, and say only "no checks selected"
        if category not in known_categories:
            raise UsageError(f"unknown category '{category}' (choose from {', '.join(known_categories)})")
    try:
        checks = registry.select(only, categories)
    except KeyError as exc:
        raise UsageError(f"{exc.args[0]} (see `posthog-auditor checks`)") from None
    if not checks:
        raise UsageError("no checks selected")
    return checks


def _demo_account() -> Account:
    from auditor.account import Account
    from auditor.demo import DEMO_HOST, DEMO_KEY, demo_scenario, demo_session

    scenario = demo_scenario()
    return Account(host=DEMO_HOST, api_key=DEMO_KEY, projects=[str(scenario.project_id)],
                   session=demo_session(scenario))


def _account_from(settings: Settings, all_projects: bool) -> Account:
    """The account the flags (and the settings file, and the environment) name; each gap is one clear line."""
    from auditor.account import Account
    from auditor.clients.posthog_api import normalise_host

    if not settings.host:
        raise UsageError("no PostHog host: pass --host us|eu|URL (or set POSTHOG_HOST)")
    if not settings.projects and not all_projects:
        raise UsageError("no project: pass --project ID or --all-projects (or set POSTHOG_PROJECT_ID)")
    api_key = settings.api_key() or ""
    if not api_key:
        raise UsageError(f"no API key: set {settings.api_key_env} to a PostHog personal API key (or use --demo)")
    projects = list(dict.fromkeys(settings.projects))
    for project_id in projects:
        if not str(project_id).isdigit():
            raise UsageError(f"project id must be a number, got {project_id!r}")
    try:
        normalise_host(settings.host)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Account(host=settings.host, api_key=api_key, projects=projects, all_projects=all_projects)


def _saved_facts(path: str) -> Any:
    from auditor.facts import load_facts

    try:
        return load_facts(path)
    except FileNotFoundError:
        raise UsageError(f"facts file not found: {path}") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise UsageError(f"{path}: {exc}") from None


def api_error(exc: ApiError, host: str) -> AuditorError:
    """What a PostHog failure the whole audit depends on means to the user: not reached, or no usable answer
    after the retries (exit 3: nothing the user can change); a project the key cannot see; or the server's own
    one line (exit 2)."""
    import re

    if exc.kind == "network":
        return Unreachable(f"could not reach the PostHog API: {exc}")
    if exc.kind in ("server", "rate_limited", "bad_response"):
        return Unreachable(f"the PostHog API gave no usable answer: {exc}")
    match = re.match(r"^/api/(?:projects|environments)/(\d+)/$", urlsplit(exc.url).path) if exc.url else None
    if exc.kind == "not_found" and match:
        return UsageError(f"project {match.group(1)} not found on {host} (or the key cannot see it)")
    return UsageError(str(exc))


def print_verdict(delivered: Delivered, mode: str, audience: str = "internal") -> None:
    run = delivered.run
    readiness = run["readiness"]
    score = "unknown" if readiness["score"] is None else f"{readiness['score']:.0f}/100"
    subject = run["target"].get("project_name") or "the project"
    selection = run.get("selection")
    if selection:  # a subset cannot headline a score: "readiness 0/100" would be a verdict it cannot give
        verdict = "health" if mode == "health" else "readiness"
        say(f"Subset of checks ({len(selection['checks'])} of {selection['of']}): no {verdict} verdict "
            f"for {subject}.")
    elif mode == "health":
        say(f"Health: {readiness.get('band', 'Unknown')} ({score}) for {subject}.")
    else:
        verdict = "Ready for handover" if readiness["ready"] else "Not ready for handover"
        say(f"{verdict}: readiness {score} for {subject}.")
    for reason in readiness["reasons"][:5]:
        say(f"  - {reason}")
    if len(readiness["reasons"]) > 5:
        say(f"  … and {len(readiness['reasons']) - 5} more (see the report)")
    heading = "Reports for the customer: " if audience == "customer" else "Reports: "
    say(heading + ", ".join(str(p) for p in delivered.reports))
    vitally_fact: Mapping[str, Any] = run["facts"].get("vitally") or {}
    if vitally_fact.get("status") == "error":
        say(f"warning: {vitally_fact.get('error')}", err=True)


# ---- Vitally --------------------------------------------------------------------------------------------------

def make_vitally_client(settings: Settings, dry_run: bool = False) -> VitallyClient:
    from auditor.clients.vitally_api import VitallyClient, base_url

    key = os.environ.get(settings.vitally.api_key_env)
    if not key:
        raise UsageError(f"no Vitally key: set {settings.vitally.api_key_env}")
    try:
        base = base_url(settings.vitally.region, settings.vitally.subdomain)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # A dry run only looks things up, and shows its payloads even when it cannot: it need not retry for long.
    client = VitallyClient(base, key, dry_run=dry_run)
    if dry_run:
        client.max_retries = 1
    return client


def vitally_error(exc: ApiError, client: VitallyClient | None = None) -> AuditorError:
    """Vitally could not be reached at all: exit 3, like the PostHog API; any other refusal is 2."""
    if exc.kind == "network":
        return Unreachable(f"could not reach Vitally{' at ' + client.base if client else ''}")
    return UsageError(f"Vitally: {exc}")


def report_writes(client: VitallyClient, quiet: bool, unresolved: list[str] | None = None) -> None:
    if client.dry_run:
        click.echo(json.dumps(client.writes, indent=2, default=str))
        for item in unresolved or []:  # on stderr: stdout stays the payloads, as JSON
            say(f"posthog-auditor: dry run: could not resolve {item}", err=True)
    elif not quiet:
        say(f"Vitally: {len(client.writes)} write(s): " + ", ".join(
            f"{w['method']} {w['path']}" for w in client.writes))


@cli.group()
def vitally() -> None:
    """Attach audit results to accounts in Vitally."""


@command(vitally, name="push")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--account", required=True, help="Vitally account id, or the PostHog organization id (externalId).")
@click.option("--report-url", callback=lambda ctx, param, value: check_report_url(value),
              help="Where the HTML report is hosted (an http(s) URL), linked from the note and a trait.")
@click.option("--dry-run", is_flag=True, help="Print the exact payloads; send nothing.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def vitally_push(report: str, account: str, report_url: str | None, dry_run: bool, config_path: str | None) -> int:
    """Set the audit's traits on the account and create or update the run's note (idempotent)."""
    from auditor.clients.posthog_api import ApiError
    from auditor.config import load_settings
    from auditor.outputs.render import validated_run_result
    from auditor.outputs.vitally import push_run
    from auditor.registry import load_registry

    run = validated_run_result(_read_report(report))
    if run.get("selection"):
        raise UsageError(f"{report} covers a subset of checks (--check/--category): push a full audit")
    if run.get("audience") == "customer":  # its gate, reasons and handover items were left out
        raise UsageError(f"{report} is the customer's report (--audience customer): push the internal report.json")
    registry = load_registry(plugins=False)
    settings = load_settings(config_path, registry.checks, registry.catalogue)
    client = make_vitally_client(settings, dry_run=dry_run)
    unresolved: list[str] = []
    try:
        push_run(client, run, account, report_url, unresolved)
    except ApiError as exc:
        raise vitally_error(exc, client) from None
    report_writes(client, quiet=False, unresolved=unresolved)
    return 0


def _read_report(report: str) -> Any:
    """A report.json, parsed (its shape is checked by whoever reads it)."""
    try:
        return json.loads(Path(report).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"report not found: {report}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{report}: not valid JSON ({exc})") from None


@command(cli)
@click.option("--account", "accounts", multiple=True, help="Vitally account id or externalId (repeatable); "
              "default: every active account at or above the ARR threshold with no owner yet.")
@click.option("--min-arr", type=float, help="ARR threshold in USD [default: 20000, or [vitally] min_arr].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Also write the table as .csv or .json.")
@click.option("--apply", is_flag=True, help="Set the New Owner trait (accounts flagged for review are skipped).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def allocate(accounts: tuple[str, ...], min_arr: float | None, out_path: str | None, apply: bool,
             config_path: str | None) -> int:
    """Recommend each account's new owner: TAM or CSM, US, EU or Singapore."""
    from auditor.clients.posthog_api import ApiError
    from auditor.config import load_settings
    from auditor.outputs.allocation import allocate as allocate_account
    from auditor.outputs.allocation import allocation_table
    from auditor.outputs.render import write_atomic
    from auditor.outputs.vitally import accounts_to_allocate, apply_new_owners
    from auditor.registry import load_registry

    registry = load_registry(plugins=False)
    settings = load_settings(config_path, registry.checks, registry.catalogue)
    threshold = settings.vitally.min_arr if min_arr is None else min_arr
    if out_path and not out_path.endswith((".csv", ".json")):
        raise UsageError("--out must end in .csv or .json")
    client = make_vitally_client(settings)
    try:
        infos = accounts_to_allocate(client, settings.vitally, registry.catalogue, threshold, list(accounts))
        rows = [allocate_account(info).to_dict() for info in infos]
        applied = apply_new_owners(client, rows, settings.vitally.new_owner_label) if apply else []
    except ApiError as exc:
        raise vitally_error(exc, client) from None
    print_allocations(rows, applied, apply)
    if out_path:
        write_atomic(Path(out_path), allocation_table(rows, Path(out_path).suffix))
    return 0


def print_allocations(rows: list[dict[str, Any]], applied: list[str], apply: bool) -> None:
    if not rows:
        say("No account to allocate.")
        return
    header = f"{'account':<28} {'ARR':>10}  {'products':<8} {'users by region':<22} {'new owner':<14} handoff"
    say(header)
    for r in rows:
        arr = "?" if r["arr"] is None else f"${r['arr']:,.0f}"
        users = ", ".join(f"{k} {v}" for k, v in r["users_by_region"].items()) or "unknown"
        line = f"{r['name'][:28]:<28} {arr:>10}  {r['product_count']:<8} {users[:22]:<22} " \
               f"{(r['new_owner'] or '—'):<14} {r['handoff'] or '—'}"
        if r["review"]:
            line += f"  [review: {r['review']}]"
        if apply:
            line += "  (applied)" if r["account_id"] in applied else "  (not applied)"
        say(line)


# ---- render, attest, history, checks --------------------------------------------------------------------------

@command(cli)
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--format", "formats", multiple=True, help="html, json, md [default: html].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write here instead of stdout.")
@click.option("--audience", type=click.Choice(AUDIENCES), default="internal", show_default=True,
              help="internal: the account owner's report (gate, attestations, brief); customer: a report to send the "
              "customer (health, fixes, savings, links; nothing internal).")
def render(report: str, formats: tuple[str, ...], out_dir: str | None, audience: str) -> int:
    """Re-render a report.json as HTML, Markdown or JSON (for the customer with --audience customer)."""
    from auditor.outputs.render import rendered, write_reports

    run = _read_report(report)
    chosen = parse_formats(formats or ("html",))
    try:
        if out_dir:
            for path in write_reports(run, Path(out_dir), chosen, audience):
                say(str(path))
        else:
            for text in rendered(run, chosen, audience).values():
                click.echo(text, nl=False)
    except ValueError as exc:
        raise UsageError(f"{report}: {exc}") from None
    return 0


@command(cli)
@click.option("--init", "init", is_flag=True, required=True, help="Write a commented attestation template.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="attestations.toml", show_default=True)
@click.option("--account", default="", help="Account name for the file's header.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def attest(init: bool, out_path: str, account: str, force: bool) -> int:
    """Write the attestation file for the handover items no API can see."""
    from auditor.attestations import template
    from auditor.outputs.render import write_atomic
    from auditor.registry import load_registry

    path = Path(out_path)
    if path.exists() and not force:
        raise UsageError(f"{out_path} already exists (use --force to overwrite)")
    write_atomic(path, template(load_registry().catalogue.attestation_items, account))
    say(f"Wrote {out_path}: answer the items, then pass --attestations {out_path} to `audit`.")
    return 0


@command(cli, name="history")
@click.option("--account", help="Account name (as in the batch file) or key; default: list the accounts.")
@click.option("--dir", "history_dir", type=click.Path(file_okay=False), default="history", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def history_command(account: str | None, history_dir: str, fmt: str) -> int:
    """Print an account's trend across audits."""
    from auditor.outputs import history

    folder = Path(history_dir)
    if not folder.is_dir():
        raise UsageError(f"no history at {history_dir} (audits record there with --history, batch by default)")
    if not account:
        for name in history.accounts(folder):
            say(name)
        return 0
    table = history.trend(folder, account)
    if table.height == 0:
        raise UsageError(f"no runs for account '{account}' in {history_dir}")
    table = table.with_columns(table["started_at"].dt.strftime("%Y-%m-%d %H:%M").alias("started_at"))
    if fmt == "json":
        click.echo(json.dumps(table.to_dicts(), indent=2, default=str))
    elif fmt == "csv":
        click.echo(table.write_csv(), nl=False)
    else:
        previous = None
        for row in table.to_dicts():
            score = row["readiness"]
            delta = "" if previous is None or score is None else f" ({score - previous:+.0f})"
            cats = ", ".join(f"{k} {v:.0f}" for k, v in row.items()
                             if k not in ("run_id", "started_at", "mode", "readiness", "ready", "band")
                             and v is not None)
            verdict_text = row["band"] or ("ready" if row["ready"] else "not ready")
            say(f"{row['started_at']}  {'?' if score is None else f'{score:.0f}':>3}{delta:<6} "
                f"{verdict_text:<11} {cats}")
            previous = score if score is not None else previous
    return 0


@command(cli, name="checks")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--no-plugins", is_flag=True, help="List only the built-in checks.")
def list_checks(fmt: str, no_plugins: bool) -> int:
    """List every registered check (and any plugin that failed to load)."""
    from auditor.registry import load_registry

    registry = load_registry(plugins=not no_plugins)
    rows = [
        {"id": c.id, "category": c.meta.category, "severity": str(c.meta.severity), "title": c.meta.title,
         "source": c.source, "status": "ok", "thresholds": dict(c.meta.thresholds), "docs_url": c.meta.docs_url,
         "aliases": list(c.meta.aliases)}  # former ids: history and settings under them still apply
        for c in registry.checks.values()
    ]
    rows += [
        {"id": f"plugins.{f.name}", "category": "plugins", "severity": "info", "title": f.error,
         "source": f.distribution, "status": "error", "thresholds": {}, "docs_url": "", "aliases": []}
        for f in registry.failures
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        marker = "  LOAD ERROR" if r["status"] == "error" else ""
        say(f"{r['id']:<{width}}  {r['severity']:<7}  {r['source']:<10}  {r['title']}{marker}")
    return 0


# ---- batch ----------------------------------------------------------------------------------------------------

@command(cli)
@click.argument("accounts_file", required=False, type=click.Path(dir_okay=False))
@click.option("--from-vitally", is_flag=True, help="Every active Vitally account at or above the ARR threshold.")
@click.option("--host", help="Default host for accounts that do not name one (us, eu or a URL).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="portfolio", show_default=True)
@click.option("--mode", type=click.Choice(["handover", "health"]), default="health", show_default=True)
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Accounts audited at once (requests stay within each key's rate limits).")
@click.option("--history", "history_dir", type=click.Path(file_okay=False), default="history", show_default=True)
@click.option("--no-history", is_flag=True, help="Do not record runs or compare with earlier ones.")
@click.option("--resume", is_flag=True, help="Skip accounts already audited this period.")
@click.option("--period", type=click.Choice(["day", "week", "month"]), default="day", show_default=True)
@click.option("--format", "formats", multiple=True, help="Per-account reports: html, json, md [default: all].")
@click.option("--push-vitally", is_flag=True,
              help="Write each audited account's traits and note to its Vitally account (accounts that name one).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--no-plugins", is_flag=True)
@click.option("--audience", type=click.Choice(AUDIENCES), default="internal", show_default=True,
              help="internal: the account owner's report (gate, attestations, brief); customer: a report to send the "
              "customer (health, fixes, savings, links; nothing internal). The portfolio stays the owner's.")
def batch(accounts_file: str | None, from_vitally: bool, host: str | None, out_dir: str, mode: str, parallel: int,
          history_dir: str, no_history: bool, resume: bool, period: str, formats: tuple[str, ...],
          push_vitally: bool, config_path: str | None, no_plugins: bool, audience: str) -> int:
    """Audit a book of accounts: a report each, plus a portfolio page, JSON and CSV."""
    from auditor.batch import BatchContext, load_accounts, specs_from_vitally, vitally_factory
    from auditor.clients.posthog_api import ApiError, normalise_host
    from auditor.config import load_settings
    from auditor.registry import load_registry

    registry = load_registry(plugins=not no_plugins)
    settings = load_settings(config_path, registry.checks, registry.catalogue)
    if bool(accounts_file) == from_vitally:
        raise UsageError("give an accounts file or --from-vitally (one of the two)")
    if accounts_file:
        specs = load_accounts(accounts_file, host or settings.host, registry.catalogue)
    else:
        default_host = host or settings.host
        if not default_host:
            raise UsageError("--from-vitally needs --host (or [audit] host) for the PostHog accounts")
        try:
            specs = specs_from_vitally(make_vitally_client(settings), normalise_host(default_host),
                                       settings.api_key_env, settings.vitally.min_arr)
        except ApiError as exc:
            raise vitally_error(exc) from None
    if push_vitally:
        if not any(spec.vitally_account for spec in specs):
            raise UsageError("--push-vitally: no account names its Vitally account (vitally_account in the file)")
        make_vitally_client(settings)  # the key and region, checked before any account is audited
    ctx = BatchContext(
        registry=registry, checks=list(registry.checks.values()), settings=settings,
        out_dir=Path(out_dir), formats=parse_formats(formats), mode=mode,
        history_dir=None if no_history else Path(history_dir), resume=resume, period=period,
        vitally_factory=vitally_factory(settings), push_vitally=push_vitally, audience=audience)
    outcomes = _run_with_progress(ctx, specs, parallel)  # writes the portfolio too
    failed = [o for o in outcomes if o.status == "failed"]
    good = [o for o in outcomes if o.run and o.run["readiness"]["ready"]]
    say(f"{len(outcomes)} accounts: {len(good)} {'healthy' if mode == 'health' else 'ready'}, "
        f"{len(outcomes) - len(good) - len(failed)} not, {len(failed)} failed. "
        f"Portfolio: {Path(out_dir) / 'index.html'}")
    return EXIT_READY if len(good) == len(outcomes) else EXIT_NOT_READY


def _run_with_progress(ctx: BatchContext, specs: list[AccountSpec], parallel: int) -> list[Outcome]:
    """Run the batch with progress, and write its portfolio (on Ctrl-C: of what finished, then exit 130)."""
    from auditor.batch import BatchInterrupted, portfolio_rows, run_batch, sorted_outcomes, verdict, write_portfolio

    def line(o: Outcome) -> str:
        if o.status in ("failed", "interrupted"):
            return f"{o.spec.name}: {o.status} — {o.error}"
        score = o.run["readiness"]["score"] if o.run else None
        what = "resumed" if o.status == "resumed" else f"{o.seconds:.1f} s"
        warning = f" — {o.error}" if o.error else ""  # audited and written, but the write-back to Vitally failed
        return f"{o.spec.name}: {verdict(o.run or {})} {'?' if score is None else f'{score:.0f}'}/100 ({what}){warning}"

    with ctrl_c_stops(ctx):
        try:
            if sys.stdout.isatty():
                with click.progressbar(length=len(specs), label="Auditing", show_eta=True, show_pos=True) as bar:
                    outcomes = run_batch(ctx, specs, parallel, lambda o: bar.update(1))
            else:
                done = [0]

                def log(o: Outcome) -> None:
                    done[0] += 1
                    say(f"[{done[0]}/{len(specs)}] {line(o)}")

                outcomes = run_batch(ctx, specs, parallel, log)
        except BatchInterrupted as stop:
            # The portfolio of what finished, the interrupted accounts listed as such, is the last thing written.
            write_portfolio(ctx.out_dir, portfolio_rows(sorted_outcomes(stop.outcomes + stop.interrupted, specs)),
                            ctx.mode)
            say(f"posthog-auditor: interrupted: {len(stop.outcomes)} of {len(specs)} accounts finished; the "
                f"portfolio lists the {len(stop.interrupted)} interrupted: {ctx.out_dir / 'index.html'}", err=True)
            end_now(EXIT_INTERRUPTED)
        write_portfolio(ctx.out_dir, portfolio_rows(outcomes), ctx.mode)  # still under the Ctrl-C flag
        if ctx.interrupt_requested:  # Ctrl-C as the last account finished: all is written, still an interruption
            say(f"posthog-auditor: interrupted after the last account finished; the portfolio is written: "
                f"{ctx.out_dir / 'index.html'}", err=True)
            end_now(EXIT_INTERRUPTED)
    return outcomes


@contextlib.contextmanager
def ctrl_c_stops(ctx: BatchContext) -> Iterator[None]:
    """While the batch runs, Ctrl-C only asks it to stop (a flag); the batch's own thread does the stopping, so
    no KeyboardInterrupt can land in the middle of writing a report or the portfolio. A second Ctrl-C changes
    nothing: stopping takes milliseconds."""

    def handler(signum: int, frame: Any) -> None:
        ctx.interrupt_requested = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (a library caller): KeyboardInterrupt is handled by run_batch
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def end_now(code: int) -> NoReturn:
    """End the process at once. Accounts still gathering hold requests open (a read can take a minute, a wait
    on the hourly HogQL budget much longer) in threads the interpreter would wait for; they may write nothing
    now, so nothing is lost by not waiting. Output is flushed first."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _hard_exit(code)


_hard_exit = os._exit  # a seam for anyone running the CLI inside a process they want to keep


# ---- one way out ----------------------------------------------------------------------------------------------

def _run(action: Callable[[], int]) -> NoReturn:
    """One place that turns expected failures into a one-line message and an exit code."""
    try:
        code = action()
        sys.stdout.flush()  # a closed pipe must fail here, not in the interpreter's own flush at exit
    except BrokenPipeError:
        _quiet_after_broken_pipe()
    except AuditorError as exc:
        say(f"posthog-auditor: {exc.label}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        say(f"posthog-auditor: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        say("posthog-auditor: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("POSTHOG_AUDITOR_DEBUG"):
            raise
        say(f"posthog-auditor: internal error: {type(exc).__name__}: {exc} "
            "(set POSTHOG_AUDITOR_DEBUG=1 for the traceback)", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(code)


def _quiet_after_broken_pipe() -> NoReturn:
    """`posthog-auditor checks | head`: the reader left. Say nothing (there is no one to tell) and exit like a
    tool killed by SIGPIPE; stdout goes to /dev/null so the interpreter's final flush cannot complain either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # not a real file descriptor (tests capture output in memory)
    sys.exit(EXIT_BROKEN_PIPE)


def main() -> None:
    """The console script. An audit of a large project holds about a million small containers until it ends (a
    50,000-row HogQL answer, thousands of flags); with CPython's default thresholds the cycle collector walked
    them some 370 times per audit, 0.15–0.25 s of CPU at ×1 (benchmarks/). Collected less often, cycles are still
    freed, and a long batch still gets a full collection now and then."""
    gc.set_threshold(100_000, 50, 100)
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
