"""Attestations: the handover items no API can see, answered by a person in a TOML file.

    [account_plan]
    link = "https://docs.google.com/document/d/…"
    by = "jane@posthog.com"
    date = 2026-11-01
    note = "Reviewed with the customer's VP Product"

    [support_channels]
    answer = "yes"            # yes | no | n/a
    by = "jane@posthog.com"
    date = 2026-11-01
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from auditor.config import read_toml
from auditor.errors import AuditorError
from auditor.text import neutralise

ANSWERS = ("yes", "no", "n/a")
# Items whose "yes" is a document: the attestation must say where it is.
LINK_ITEMS = frozenset({"account_plan"})


class AttestationError(AuditorError):
    """A bad attestation file: reported as one line, exit code 2."""


def load_attestations(path: str, items: Mapping[str, str]) -> dict[str, Any]:
    data = read_toml(path, "attestation file", AttestationError)
    answers: dict[str, Any] = {}
    for name, entry in data.items():
        if name not in items:
            raise AttestationError(f"{path}: unknown item [{name}] (known: {', '.join(items)})")
        if not isinstance(entry, dict):
            raise AttestationError(f"{path}: [{name}] must be a table with answer, by and date")
        answers[name] = _entry(path, name, entry)
    return {"source": str(Path(path)), "items": answers}


def _entry(path: str, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(entry) - {"answer", "by", "date", "note", "link"})
    if unknown:
        raise AttestationError(f"{path}: [{name}] has an unknown key '{unknown[0]}'")
    answer = entry.get("answer", "yes" if entry.get("link") else None)
    if answer not in ANSWERS:
        raise AttestationError(f"{path}: [{name}] answer must be one of {', '.join(ANSWERS)}")
    if name in LINK_ITEMS and answer == "yes" and not entry.get("link"):
        # "Yes, there is a plan" without saying where it is would pass the gate on a word.
        raise AttestationError(f"{path}: [{name}] answer = \"yes\" needs the link to it (link = \"https://…\")")
    by = entry.get("by")
    if not isinstance(by, str) or not by.strip():
        raise AttestationError(f"{path}: [{name}] needs 'by' (who attests it)")
    when = entry.get("date")
    if isinstance(when, datetime):
        when = when.date()
    if not isinstance(when, date):
        raise AttestationError(f"{path}: [{name}] needs 'date' as a TOML date, e.g. date = 2026-11-01")
    if when > date.today():  # the person's own calendar: nobody has checked anything tomorrow yet
        raise AttestationError(f"{path}: [{name}] date {when.isoformat()} is in the future")
    link = entry.get("link")
    if link is not None and not (isinstance(link, str) and link.startswith(("https://", "http://"))):
        raise AttestationError(f"{path}: [{name}] link must be an http(s) URL")
    return {"answer": answer, "by": by.strip(), "date": when.isoformat(), "note": str(entry.get("note") or ""),
            "link": link}


def template(items: Mapping[str, str], account: str = "") -> str:
    today = date.today().isoformat()
    # The account name lands in a comment: a newline in it would end the comment and start TOML of its own (an
    # answered item), and TOML forbids control characters in comments. Shown escaped, it stays one comment.
    account = neutralise(account)
    lines = [
        f"# Handover attestations{' for ' + account if account else ''}.",
        "# Answer each item a person has checked: answer = yes | no | n/a, who, and when. Items left commented",
        "# out stay 'needs a person' in the report, and the handover gate names them.",
        "# Use with: posthog-auditor audit --attestations THIS_FILE …",
        "",
    ]
    for name, question in items.items():
        lines.append(f"# {question}")
        lines.append(f"# [{name}]")
        if name == "account_plan":
            lines.append('# link = "https://…"            # the Account Plan document')
        else:
            lines.append('# answer = "yes"')
        lines.append('# by = "you@posthog.com"')
        lines.append(f"# date = {today}")
        lines.append('# note = ""')
        lines.append("")
    return "\n".join(lines)
