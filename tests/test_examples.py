"""The scheduled health-check examples shipped in auditor/examples/ (README, "Health checks on a schedule"): every
posthog-auditor command line in them is valid against the CLI (parsed by click, never run), and the accounts file
they audit loads."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest
import yaml

from auditor.batch import load_accounts
from auditor.cli import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "auditor" / "examples"
OPERATORS = {";", "&", "&&", "|", "||", ">", ">>", "<", "2>&1", ">&"}


def commands_in(line: str) -> list[list[str]]:
    """The argument lists of each `posthog-auditor …` (or `…/bin/posthog-auditor …`) in a shell line, each ending
    at the first shell operator."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    tokens = list(lexer)
    found, i = [], 0
    while i < len(tokens):
        if tokens[i].endswith("posthog-auditor"):
            args = []
            i += 1
            while i < len(tokens) and tokens[i] not in OPERATORS and not set(tokens[i]) <= set(";&|<>"):
                args.append(tokens[i])
                i += 1
            found.append(args)
        i += 1
    return found


def cron_commands(path: Path) -> list[list[str]]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for line in lines:
        assert len(line.split(None, 5)) == 6, f"not a cron line (5 time fields and a command): {line}"
    return [cmd for line in lines for cmd in commands_in(line.split(None, 5)[5])]


def workflow_commands(path: Path) -> list[list[str]]:
    doc = yaml.safe_load(path.read_text())
    runs = [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]
    return [cmd for run in runs for line in run.replace("\\\n", " ").splitlines() for cmd in commands_in(line)]


def parse(args: list[str]) -> click.Context:
    """Parse one command line against the CLI, as click would before running it (nothing runs)."""
    name, rest = args[0], args[1:]
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, f"posthog-auditor has no command {name!r}"
    return command.make_context(name, rest)


EXAMPLE_COMMANDS = {"health-checks.cron": cron_commands, "github-actions-health-checks.yml": workflow_commands}


@pytest.mark.parametrize("name", sorted(EXAMPLE_COMMANDS))
def test_every_command_line_in_the_examples_is_valid(name):
    commands = EXAMPLE_COMMANDS[name](EXAMPLES / name)
    assert commands, f"{name} runs no posthog-auditor command"
    parsed = [parse(args) for args in commands]
    batch = [ctx for ctx in parsed if ctx.info_name == "batch"]
    assert len(batch) == 1, f"{name} should run one batch"
    params = batch[0].params
    # A health check over the book, with its history kept between runs.
    assert params["mode"] == "health" and params["history_dir"] == "history" and not params["no_history"]
    assert params["accounts_file"] == "accounts.toml" and params["out_dir"] == "portfolio"
    renders = [ctx for ctx in parsed if ctx.info_name == "render"]
    assert renders and all(ctx.params["audience"] == "customer" for ctx in renders)


def test_a_wrong_option_would_be_caught():
    with pytest.raises(click.UsageError):
        parse(commands_in("posthog-auditor batch accounts.toml --history-dir history")[0])
    with pytest.raises(click.BadParameter):
        parse(commands_in("posthog-auditor batch accounts.toml --mode weekly")[0])


def test_the_workflow_runs_weekly_keeps_history_and_publishes_the_portfolio_and_summary():
    doc = yaml.safe_load((EXAMPLES / "github-actions-health-checks.yml").read_text())
    triggers = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads the key `on` as true
    (schedule,) = triggers["schedule"]
    minute, hour, dom, month, dow = schedule["cron"].split()
    assert minute.isdigit() and hour.isdigit()
    assert (dom, month) == ("*", "*") and dow.isdigit()  # once a week
    steps = doc["jobs"]["health-checks"]["steps"]
    uploads = {step["with"]["name"]: step["with"]["path"] for step in steps
               if str(step.get("uses", "")).startswith("actions/upload-artifact")}
    assert "history/" in uploads["posthog-history"] and "portfolio/" in uploads["posthog-portfolio"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "gh run download" in runs and "--name posthog-history --dir history" in runs
    assert "portfolio/portfolio.md >> \"$GITHUB_STEP_SUMMARY\"" in runs


def test_the_example_accounts_file_loads():
    specs = load_accounts(str(EXAMPLES / "accounts.toml"))
    assert [s.name for s in specs] == ["Hedgebox", "Acme"]
    assert specs[1].api_key_env == "ACME_POSTHOG_KEY" and specs[1].all_projects


def test_the_examples_ship_inside_the_package():
    import auditor

    assert (Path(auditor.__file__).parent / "examples" / "health-checks.cron").is_file()
