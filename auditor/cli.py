"""The command line: audit, render, checks.

Exit codes: 0 ready, 1 not ready, 2 usage/config/auth error, 3 the API could not be reached at all;
130 interrupted (Ctrl-C); 141 the reader of our output went away (`… | head`), like any tool killed by SIGPIPE.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click

from auditor import __version__, history
from auditor.allocation import allocate as allocate_account
from auditor.attestations import AttestationError, load_attestations, template
from auditor.audience import AUDIENCES, for_audience
from auditor.audit import ProductHooks, audit_target, default_hooks, evaluate
from auditor.batch import (
    AccountSpec,
    BatchContext,
    BatchInterrupted,
    Outcome,
    load_accounts,
    portfolio_rows,
    run_batch,
    sorted_outcomes,
    specs_from_vitally,
    verdict,
    vitally_factory,
    write_portfolio,
)
from auditor.config import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    ConfigError,
    Settings,
    load_settings,
    parse_products,
)
from auditor.facts import Facts, load_facts
from auditor.posthog_api import ApiError, PostHogClient, normalise_host
from auditor.registry import Registry, load_registry
from auditor.render import (
    FORMATS,
    RENDERERS,
    check_run_result,
    write_atomic,
    write_reports,
)
from auditor.telemetry import Telemetry
from auditor.text import neutralise
from auditor.vitally import label_paths, push_run, read_account
from auditor.vitally_api import VitallyClient, base_url

EXIT_READY, EXIT_NOT_READY, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141  # 128 + SIGINT, 128 + SIGPIPE


class Fatal(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def say(text: str = "", err: bool = False) -> None:
    """Print one line of the tool's output. Names in it come from a customer's project (or a server's error
    text) and are data: control characters and bidi overrides are shown as escapes, never acted on."""
    click.echo(neutralise(text), err=err)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    raise Fatal(message, code)


def parse_formats(values: tuple[str, ...]) -> list[str]:
    formats = [f.strip().lower() for v in values for f in v.split(",") if f.strip()] or list(FORMATS)
    for f in formats:
        if f not in FORMATS:
            fail(f"unknown format '{f}' (choose from {', '.join(FORMATS)})")
    return list(dict.fromkeys(formats))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="posthog-auditor")
def cli() -> None:
    """Read-only audit of a PostHog project: per-product onboarding checks, a readiness score and the
    handover gate, rendered as HTML, JSON and Markdown."""


@cli.command()
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
def audit(**opts: Any) -> None:
    """Audit one PostHog project and write the reports."""
    _run(lambda: _audit(**opts))


def _audit(
    host: str | None, projects: tuple[str, ...], all_projects: bool, api_key_env: str | None,
    config_path: str | None, out_dir: str, formats: tuple[str, ...], paying_for: str | None,
    attestations_path: str | None, vitally_account: str | None, push_vitally: bool, vitally_dry_run: bool,
    report_url: str | None, mode: str, history_dir: str | None, only: tuple[str, ...], categories: tuple[str, ...],
    save_facts: str | None, from_facts: str | None, demo: bool, concurrency: int | None, no_plugins: bool,
    quiet: bool, audience: str = "internal",
) -> int:
    registry = load_registry(plugins=not no_plugins)
    settings = load_settings(config_path, registry.checks)
    if host:
        settings.host = host
    if projects:
        settings.projects = list(projects)
    if api_key_env:
        settings.api_key_env = api_key_env
    if concurrency:
        settings.concurrency = concurrency
    if paying_for is not None:
        settings.paying_for = parse_products(paying_for)
    out_formats = parse_formats(formats)
    known_categories = list(dict.fromkeys(c.meta.category for c in registry.checks.values()))
    for category in categories:  # an unknown one would select nothing, and say only "no checks selected"
        if category not in known_categories:
            fail(f"unknown category '{category}' (choose from {', '.join(known_categories)})")
    try:
        checks = registry.select(only, categories)
    except KeyError as exc:
        fail(f"{exc.args[0]} (see `posthog-auditor checks`)")
    if not checks:
        fail("no checks selected")
    hooks = default_hooks()
    options: dict[str, Any] = {"mode": mode}
    if attestations_path:
        try:
            options["attestations"] = load_attestations(attestations_path, hooks.attestation_items)
        except AttestationError as exc:
            fail(str(exc))

    if push_vitally and (only or categories):  # it would overwrite the account's scores with a partial run
        fail("--push-vitally needs a full audit, not a subset of checks (--check/--category)")
    vitally_client = None
    if vitally_account or push_vitally:
        if not vitally_account:
            fail("--push-vitally needs --vitally-account (an id, or 'org')")
        vitally_client = make_vitally_client(settings, dry_run=vitally_dry_run)
        settings_v = settings.vitally
        options["vitally_lookup"] = lambda facts: read_account(
            vitally_client, vitally_account_id(vitally_account, facts.target), settings_v)

    if from_facts:
        options.pop("vitally_lookup", None)
        try:
            facts = load_facts(from_facts)
        except FileNotFoundError:
            fail(f"facts file not found: {from_facts}")
        except (ValueError, json.JSONDecodeError) as exc:
            fail(f"{from_facts}: {exc}")
        run = evaluate(facts, registry, checks, settings, hooks=hooks, **options)
    else:
        run = _audit_live(registry, checks, settings, demo, save_facts, all_projects, hooks, options)
    if history_dir:
        history.compare(Path(history_dir), run)
        history.record_run(Path(history_dir), run)
    paths = write_reports(run, Path(out_dir), out_formats, audience)  # history and Vitally keep the internal run
    if not demo and not from_facts:  # one event per audited account, as in batch; not for the demo or a re-run
        account = run["target"].get("organization_name") or run["target"].get("project_name")
        Telemetry(settings.telemetry).send(run, str(account or history.account_key(run)))
    readiness = run["readiness"]
    if not quiet:
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
        say(heading + ", ".join(str(p) for p in paths))
        vitally_fact = run["facts"].get("vitally") or {}
        if vitally_fact.get("status") == "error":
            say(f"warning: {vitally_fact.get('error')}", err=True)
    if push_vitally and vitally_client:
        account = vitally_account_id(vitally_account or "", run["target"])
        unresolved: list[str] = []
        try:
            push_run(vitally_client, run, account, report_url, unresolved)
        except ApiError as exc:
            vitally_fail(exc, vitally_client)
        report_writes(vitally_client, quiet, unresolved)
    return EXIT_READY if readiness["ready"] else EXIT_NOT_READY


def make_vitally_client(settings: Settings, dry_run: bool = False) -> VitallyClient:
    key = os.environ.get(settings.vitally.api_key_env)
    if not key:
        fail(f"no Vitally key: set {settings.vitally.api_key_env}")
    try:
        base = base_url(settings.vitally.region, settings.vitally.subdomain)
    except ValueError as exc:
        fail(str(exc))
    # A dry run only looks things up, and shows its payloads even when it cannot: it need not retry for long.
    return VitallyClient(base, key, dry_run=dry_run, **({"max_retries": 1} if dry_run else {}))


def vitally_fail(exc: ApiError, client: VitallyClient | None = None) -> NoReturn:
    """Vitally could not be reached at all: exit 3, like the PostHog API; any other refusal is 2."""
    if exc.kind == "network":
        fail(f"could not reach Vitally{' at ' + client.base if client else ''}", EXIT_UNREACHABLE)
    fail(f"Vitally: {exc}")


def check_report_url(value: str | None) -> str | None:
    """The report link goes into a Vitally note and trait: only a web address (no javascript:, no file:)."""
    if value is None:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value.strip()):
        raise click.BadParameter(f"must be an http(s) URL, e.g. https://reports.example.com/acme.html, got {value!r}")
    return value.strip()


def vitally_account_id(given: str, target: dict[str, Any]) -> str:
    """'org' means the Vitally account whose externalId is the PostHog organization id."""
    if given == "org":
        if not target.get("organization_id"):
            fail("--vitally-account org: the PostHog organization id is unknown")
        return str(target["organization_id"])
    return given


def report_writes(client: VitallyClient, quiet: bool, unresolved: list[str] | None = None) -> None:
    if client.dry_run:
        click.echo(json.dumps(client.writes, indent=2, default=str))
        for item in unresolved or []:  # on stderr: stdout stays the payloads, as JSON
            say(f"posthog-auditor: dry run: could not resolve {item}", err=True)
    elif not quiet:
        say(f"Vitally: {len(client.writes)} write(s): " + ", ".join(
            f"{w['method']} {w['path']}" for w in client.writes))


def _audit_live(registry: Registry, checks: list[Any], settings: Settings, demo: bool, save_facts: str | None,
                all_projects: bool, hooks: ProductHooks, options: dict[str, Any]) -> dict[str, Any]:
    session = None
    if demo:
        from auditor.demo import DEMO_HOST, DEMO_KEY, demo_scenario, demo_session

        scenario = demo_scenario()
        session = demo_session(scenario)
        host, project_ids, api_key = DEMO_HOST, [scenario.project_id], DEMO_KEY
    else:
        if not settings.host:
            fail("no PostHog host: pass --host us|eu|URL (or set POSTHOG_HOST)")
        if not settings.projects and not all_projects:
            fail("no project: pass --project ID or --all-projects (or set POSTHOG_PROJECT_ID)")
        host, project_ids = settings.host, list(dict.fromkeys(settings.projects))
        api_key = settings.api_key() or ""
        if not api_key:
            fail(f"no API key: set {settings.api_key_env} to a PostHog personal API key (or use --demo)")
        for project_id in project_ids:
            if not str(project_id).isdigit():
                fail(f"project id must be a number, got {project_id!r}")
    try:
        normalise_host(host)
    except ValueError as exc:
        fail(str(exc))

    def saver(facts: Facts) -> None:
        if save_facts:
            write_atomic(Path(save_facts), json.dumps(facts.to_json(), indent=1, default=str))

    with PostHogClient(host, api_key, session=session, **settings.client_options(api_key)) as client:
        try:
            run = audit_target(client, project_ids, registry, checks, settings, all_projects=all_projects,
                               hooks=hooks, save_facts=saver, **options)
        except ApiError as exc:
            fail(*api_error_message(exc, client.host))
    if save_facts and (all_projects or len(project_ids) > 1):
        say("note: --save-facts keeps one project's facts; it was skipped for this multi-project account",
            err=True)
    return run


def api_error_message(exc: ApiError, host: str) -> tuple[str, int]:
    if exc.kind == "network":
        return f"could not reach the PostHog API: {exc}", EXIT_UNREACHABLE
    match = re.match(r"^/api/(?:projects|environments)/(\d+)/$", urlsplit(exc.url).path) if exc.url else None
    if exc.kind == "not_found" and match:
        return f"project {match.group(1)} not found on {host} (or the key cannot see it)", EXIT_USAGE
    return str(exc), EXIT_USAGE


@cli.command()
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--format", "formats", multiple=True, help="html, json, md [default: html].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write here instead of stdout.")
@click.option("--audience", type=click.Choice(AUDIENCES), default="internal", show_default=True,
              help="internal: the account owner's report (gate, attestations, brief); customer: a report to send the "
              "customer (health, fixes, savings, links; nothing internal).")
def render(report: str, formats: tuple[str, ...], out_dir: str | None, audience: str) -> None:
    """Re-render a report.json as HTML, Markdown or JSON (for the customer with --audience customer)."""

    def go() -> int:
        try:
            run = json.loads(Path(report).read_text(encoding="utf-8"))
        except FileNotFoundError:
            fail(f"report not found: {report}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            fail(f"{report}: not valid JSON ({exc})")
        chosen = parse_formats(formats or ("html",))
        try:
            if out_dir:
                for path in write_reports(run, Path(out_dir), chosen, audience):
                    say(str(path))
            else:
                view = for_audience(check_run_result(run), audience)
                for fmt in chosen:
                    click.echo(RENDERERS[fmt](view), nl=False)
        except ValueError as exc:
            fail(f"{report}: {exc}")
        return 0

    _run(go)


@cli.command()
@click.option("--init", "init", is_flag=True, required=True, help="Write a commented attestation template.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="attestations.toml", show_default=True)
@click.option("--account", default="", help="Account name for the file's header.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def attest(init: bool, out_path: str, account: str, force: bool) -> None:
    """Write the attestation file for the handover items no API can see."""

    def go() -> int:
        path = Path(out_path)
        if path.exists() and not force:
            fail(f"{out_path} already exists (use --force to overwrite)")
        write_atomic(path, template(default_hooks().attestation_items, account))
        say(f"Wrote {out_path}: answer the items, then pass --attestations {out_path} to `audit`.")
        return 0

    _run(go)


@cli.command()
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
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--no-plugins", is_flag=True)
@click.option("--audience", type=click.Choice(AUDIENCES), default="internal", show_default=True,
              help="internal: the account owner's report (gate, attestations, brief); customer: a report to send the "
              "customer (health, fixes, savings, links; nothing internal). The portfolio stays the owner's.")
def batch(accounts_file: str | None, from_vitally: bool, host: str | None, out_dir: str, mode: str, parallel: int,
          history_dir: str, no_history: bool, resume: bool, period: str, formats: tuple[str, ...],
          config_path: str | None, no_plugins: bool, audience: str) -> None:
    """Audit a book of accounts: a report each, plus a portfolio page, JSON and CSV."""

    def go() -> int:
        registry = load_registry(plugins=not no_plugins)
        settings = load_settings(config_path, registry.checks)
        if bool(accounts_file) == from_vitally:
            fail("give an accounts file or --from-vitally (one of the two)")
        if accounts_file:
            specs = load_accounts(accounts_file, host or settings.host)
        else:
            default_host = host or settings.host
            if not default_host:
                fail("--from-vitally needs --host (or [audit] host) for the PostHog accounts")
            try:
                specs = specs_from_vitally(make_vitally_client(settings), normalise_host(default_host),
                                           settings.api_key_env, settings.vitally.min_arr)
            except ApiError as exc:
                vitally_fail(exc)
        ctx = BatchContext(
            registry=registry, checks=list(registry.checks.values()), settings=settings, hooks=default_hooks(),
            out_dir=Path(out_dir), formats=parse_formats(formats), mode=mode,
            history_dir=None if no_history else Path(history_dir), resume=resume, period=period,
            vitally_factory=vitally_factory(settings), audience=audience)
        outcomes = _run_with_progress(ctx, specs, parallel)  # writes the portfolio too
        failed = [o for o in outcomes if o.status == "failed"]
        good = [o for o in outcomes if o.run and o.run["readiness"]["ready"]]
        say(f"{len(outcomes)} accounts: {len(good)} {'healthy' if mode == 'health' else 'ready'}, "
            f"{len(outcomes) - len(good) - len(failed)} not, {len(failed)} failed. "
            f"Portfolio: {Path(out_dir) / 'index.html'}")
        return EXIT_READY if len(good) == len(outcomes) else EXIT_NOT_READY

    _run(go)


def _run_with_progress(ctx: BatchContext, specs: list[AccountSpec], parallel: int) -> list[Outcome]:
    """Run the batch with progress, and write its portfolio (on Ctrl-C: of what finished, then exit 130)."""

    def line(o: Outcome) -> str:
        if o.status in ("failed", "interrupted"):
            return f"{o.spec.name}: {o.status} — {o.error}"
        score = o.run["readiness"]["score"] if o.run else None
        what = "resumed" if o.status == "resumed" else f"{o.seconds:.1f} s"
        return f"{o.spec.name}: {verdict(o.run or {})} {'?' if score is None else f'{score:.0f}'}/100 ({what})"

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


@cli.command(name="history")
@click.option("--account", help="Account name (as in the batch file) or key; default: list the accounts.")
@click.option("--dir", "history_dir", type=click.Path(file_okay=False), default="history", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def history_command(account: str | None, history_dir: str, fmt: str) -> None:
    """Print an account's trend across audits."""

    def go() -> int:
        folder = Path(history_dir)
        if not folder.is_dir():
            fail(f"no history at {history_dir} (audits record there with --history, batch by default)")
        if not account:
            for name in history.accounts(folder):
                say(name)
            return 0
        table = history.trend(folder, account)
        if table.height == 0:
            fail(f"no runs for account '{account}' in {history_dir}")
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

    _run(go)


@cli.group()
def vitally() -> None:
    """Attach audit results to accounts in Vitally."""


@vitally.command(name="push")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--account", required=True, help="Vitally account id, or the PostHog organization id (externalId).")
@click.option("--report-url", callback=lambda ctx, param, value: check_report_url(value),
              help="Where the HTML report is hosted (an http(s) URL), linked from the note and a trait.")
@click.option("--dry-run", is_flag=True, help="Print the exact payloads; send nothing.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def vitally_push(report: str, account: str, report_url: str | None, dry_run: bool, config_path: str | None) -> None:
    """Set the audit's traits on the account and create or update the run's note (idempotent)."""

    def go() -> int:
        try:
            run = check_run_result(json.loads(Path(report).read_text(encoding="utf-8")))
        except FileNotFoundError:
            fail(f"report not found: {report}")
        except (json.JSONDecodeError, ValueError) as exc:
            fail(f"{report}: {exc}")
        if run.get("selection"):
            fail(f"{report} covers a subset of checks (--check/--category): push a full audit")
        if run.get("audience") == "customer":  # its gate, reasons and handover items were left out
            fail(f"{report} is the customer's report (--audience customer): push the internal report.json")
        settings = load_settings(config_path, load_registry(plugins=False).checks)
        client = make_vitally_client(settings, dry_run=dry_run)
        unresolved: list[str] = []
        try:
            push_run(client, run, account, report_url, unresolved)
        except ApiError as exc:
            vitally_fail(exc, client)
        report_writes(client, quiet=False, unresolved=unresolved)
        return 0

    _run(go)


@cli.command()
@click.option("--account", "accounts", multiple=True, help="Vitally account id or externalId (repeatable); "
              "default: every active account at or above the ARR threshold with no owner yet.")
@click.option("--min-arr", type=float, help="ARR threshold in USD [default: 20000, or [vitally] min_arr].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Also write the table as .csv or .json.")
@click.option("--apply", is_flag=True, help="Set the New Owner trait (accounts flagged for review are skipped).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
def allocate(accounts: tuple[str, ...], min_arr: float | None, out_path: str | None, apply: bool,
             config_path: str | None) -> None:
    """Recommend each account's new owner: TAM or CSM, US, EU or Singapore."""

    def go() -> int:
        settings = load_settings(config_path, load_registry(plugins=False).checks)
        threshold = settings.vitally.min_arr if min_arr is None else min_arr
        if out_path and not out_path.endswith((".csv", ".json")):
            fail("--out must end in .csv or .json")
        client = make_vitally_client(settings)
        try:
            paths = label_paths(client)
            if accounts:
                infos = [read_account(client, a, settings.vitally, paths) for a in accounts]
            else:
                infos = []
                for account in client.accounts("active"):
                    arr = float(account.get("mrr") or 0) * 12
                    owner = (account.get("traits") or {}).get(paths.get(settings.vitally.new_owner_label, ""))
                    if arr >= threshold and not owner and not account.get("csmId"):
                        infos.append(read_account(client, str(account["id"]), settings.vitally, paths))
            rows = [allocate_account(info).to_dict() for info in infos]
            applied = apply_owners(client, rows, paths, settings.vitally.new_owner_label) if apply else []
        except ApiError as exc:
            vitally_fail(exc, client)
        print_allocations(rows, applied, apply)
        if out_path:
            write_allocations(Path(out_path), rows)
        return 0

    _run(go)


def apply_owners(client: VitallyClient, rows: list[dict[str, Any]], paths: dict[str, str], label: str) -> list[str]:
    key = paths.get(label)
    if not key:
        fail(f"Vitally has no account trait labelled '{label}' (set [vitally] new_owner_label)")
    done = []
    for row in rows:
        if row["new_owner"] and not row["review"]:
            client.update_account_traits(row["account_id"], {key: row["new_owner"]})
            done.append(row["account_id"])
    return done


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


def write_allocations(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix == ".json":
        write_atomic(path, json.dumps(rows, indent=2))
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["account_id", "name", "arr", "paid_products", "region", "users_by_region", "new_owner",
                     "handoff", "review"])
    for r in rows:
        writer.writerow([r["account_id"], r["name"], r["arr"], " ".join(r["paid_products"]), r["region"],
                         json.dumps(r["users_by_region"]), r["new_owner"], r["handoff"], r["review"]])
    write_atomic(path, buffer.getvalue())


@cli.command(name="checks")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--no-plugins", is_flag=True, help="List only the built-in checks.")
def list_checks(fmt: str, no_plugins: bool) -> None:
    """List every registered check (and any plugin that failed to load)."""

    def go() -> int:
        registry = load_registry(plugins=not no_plugins)
        rows = [
            {"id": c.id, "category": c.meta.category, "severity": str(c.meta.severity), "title": c.meta.title,
             "source": c.source, "status": "ok", "thresholds": dict(c.meta.thresholds), "docs_url": c.meta.docs_url}
            for c in registry.checks.values()
        ]
        rows += [
            {"id": f"plugins.{f.name}", "category": "plugins", "severity": "info", "title": f.error,
             "source": f.distribution, "status": "error", "thresholds": {}, "docs_url": ""}
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

    _run(go)


def _run(action: Callable[[], int]) -> NoReturn:
    """One place that turns expected failures into a one-line message and an exit code."""
    try:
        code = action()
        sys.stdout.flush()  # a closed pipe must fail here, not in the interpreter's own flush at exit
    except BrokenPipeError:
        _quiet_after_broken_pipe()
    except Fatal as exc:
        say(f"posthog-auditor: error: {exc}", err=True)
        sys.exit(exc.code)
    except ConfigError as exc:
        say(f"posthog-auditor: config error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
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
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()

