"""The command line: audit, render, checks.

Exit codes: 0 ready, 1 not ready, 2 usage/config/auth error, 3 the API could not be reached at all.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from auditor import __version__
from auditor.attestations import AttestationError, load_attestations, template
from auditor.audit import ProductHooks, audit_project, combine_account, default_hooks, evaluate
from auditor.config import ConfigError, Settings, load_settings, parse_products
from auditor.facts import Facts, fetch_project, load_facts
from auditor.posthog_api import ApiError, PostHogClient, normalise_host
from auditor.registry import Registry, load_registry
from auditor.render import FORMATS, render_html, render_json, render_markdown, write_atomic, write_reports

EXIT_READY, EXIT_NOT_READY, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class Fatal(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


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
              "[default: POSTHOG_PERSONAL_API_KEY].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings file [default: ./auditor.toml].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="audit-report", show_default=True,
              help="Directory for report.html, report.json and report.md.")
@click.option("--format", "formats", multiple=True, help="html, json, md (comma-separated or repeated) [default: all].")
@click.option("--paying-for", help="Paid products, comma-separated (when billing cannot be read).")
@click.option("--attestations", "attestations_path", type=click.Path(dir_okay=False),
              help="TOML file of handover items a person attests (see `posthog-auditor attest --init`).")
@click.option("--mode", type=click.Choice(["handover", "health"]), default="handover", show_default=True,
              help="handover: gate the handover; health: periodic health bands (Healthy/Concerning/Poor).")
@click.option("--check", "only", multiple=True, help="Run only this check id (repeatable).")
@click.option("--category", "categories", multiple=True, help="Run only this category (repeatable).")
@click.option("--save-facts", type=click.Path(dir_okay=False), help="Also save the gathered facts to this file.")
@click.option("--from-facts", type=click.Path(dir_okay=False), help="Re-audit saved facts offline (no API calls).")
@click.option("--demo", is_flag=True, help="Audit the built-in demo project: no key, no network.")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Parallel requests [default: 8].")
@click.option("--no-plugins", is_flag=True, help="Do not load third-party checks.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def audit(**opts: Any) -> None:
    """Audit one PostHog project and write the reports."""
    _run(lambda: _audit(**opts))


def _audit(
    host: str | None, projects: tuple[str, ...], all_projects: bool, api_key_env: str | None,
    config_path: str | None, out_dir: str, formats: tuple[str, ...], paying_for: str | None,
    attestations_path: str | None, mode: str, only: tuple[str, ...], categories: tuple[str, ...],
    save_facts: str | None, from_facts: str | None, demo: bool, concurrency: int | None, no_plugins: bool,
    quiet: bool,
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

    if from_facts:
        try:
            facts = load_facts(from_facts)
        except FileNotFoundError:
            fail(f"facts file not found: {from_facts}")
        except (ValueError, json.JSONDecodeError) as exc:
            fail(f"{from_facts}: {exc}")
        run = evaluate(facts, registry, checks, settings, hooks=hooks, **options)
    else:
        run = _audit_live(registry, checks, settings, demo, save_facts, all_projects, hooks, options)
    paths = write_reports(run, Path(out_dir), out_formats)
    readiness = run["readiness"]
    if not quiet:
        score = "unknown" if readiness["score"] is None else f"{readiness['score']:.0f}/100"
        subject = run["target"].get("project_name") or "the project"
        if mode == "health":
            click.echo(f"Health: {readiness.get('band', 'Unknown')} ({score}) for {subject}.")
        else:
            verdict = "Ready for handover" if readiness["ready"] else "Not ready for handover"
            click.echo(f"{verdict}: readiness {score} for {subject}.")
        for reason in readiness["reasons"][:5]:
            click.echo(f"  - {reason}")
        if len(readiness["reasons"]) > 5:
            click.echo(f"  … and {len(readiness['reasons']) - 5} more (see the report)")
        click.echo("Reports: " + ", ".join(str(p) for p in paths))
    return EXIT_READY if readiness["ready"] else EXIT_NOT_READY


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

    with PostHogClient(host, api_key, concurrency=settings.concurrency, session=session) as client:
        current = project_ids[0] if project_ids else None
        try:
            if all_projects:
                project_ids = organization_projects(client, current)
            runs = []
            for current in project_ids:
                runs.append(audit_project(client, str(current), registry, checks, settings, hooks=hooks,
                                          save_facts=saver if len(project_ids) == 1 else None, **options))
        except ApiError as exc:
            if exc.kind == "network":
                fail(f"could not reach the PostHog API: {exc}", EXIT_UNREACHABLE)
            if exc.kind == "not_found":
                fail(f"project {current} not found on {client.host} (or the key cannot see it)")
            fail(str(exc))
    if save_facts and len(project_ids) > 1:
        click.echo("note: --save-facts keeps one project's facts; it was skipped for this multi-project account",
                   err=True)
    return combine_account(runs, hooks)


def organization_projects(client: PostHogClient, project_id: str | None) -> list[str]:
    """Every project of the organization that owns project_id (or of the key's current organization)."""
    org = "@current"
    if project_id:
        owner = fetch_project(client, project_id).get("organization")
        org = str(owner.get("id") if isinstance(owner, dict) else owner)
    projects = client.get_list(f"/api/organizations/{org}/projects/", {"limit": 100})
    ids = [str(p["id"]) for p in projects if isinstance(p, dict) and p.get("id") is not None]
    if not ids:
        fail(f"organization {org} has no project this key can see")
    return ids


@cli.command()
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--format", "formats", multiple=True, help="html, json, md [default: html].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write here instead of stdout.")
def render(report: str, formats: tuple[str, ...], out_dir: str | None) -> None:
    """Re-render a report.json as HTML, Markdown or JSON."""

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
                for path in write_reports(run, Path(out_dir), chosen):
                    click.echo(str(path))
            else:
                renderers: dict[str, Callable[[dict[str, Any]], str]] = {
                    "html": render_html, "json": render_json, "md": render_markdown}
                for fmt in chosen:
                    click.echo(renderers[fmt](run), nl=False)
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
        click.echo(f"Wrote {out_path}: answer the items, then pass --attestations {out_path} to `audit`.")
        return 0

    _run(go)


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
            click.echo(f"{r['id']:<{width}}  {r['severity']:<7}  {r['source']:<10}  {r['title']}{marker}")
        return 0

    _run(go)


def _run(action: Callable[[], int]) -> NoReturn:
    """One place that turns expected failures into a one-line message and an exit code."""
    try:
        code = action()
    except Fatal as exc:
        click.echo(f"posthog-auditor: error: {exc}", err=True)
        sys.exit(exc.code)
    except ConfigError as exc:
        click.echo(f"posthog-auditor: config error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        click.echo(f"posthog-auditor: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("posthog-auditor: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("POSTHOG_AUDITOR_DEBUG"):
            raise
        click.echo(f"posthog-auditor: internal error: {type(exc).__name__}: {exc} "
                   "(set POSTHOG_AUDITOR_DEBUG=1 for the traceback)", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(code)


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()

