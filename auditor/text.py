"""Names from a customer's project are data, not terminal control.

A project, organization, member, flag, event or survey name can carry a carriage return, an ANSI escape
sequence, a NUL or a bidi override (U+202E): printed as is, "Acme\\rReady for handover: readiness 100/100"
would overwrite the verdict line in a terminal, and an override would reorder the text after it. `neutralise`
shows such characters as visible escapes (`\\r`, `\\x1b`, `\\u202e`) so the name is still readable and can
do nothing. One helper, used wherever the tool prints text: the terminal, Markdown, and (besides HTML
escaping, which stays the template engine's job) HTML.
"""

from __future__ import annotations

import re

import click

# Bidi controls: embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069), and the marks that steer
# neighbouring text (U+200E, U+200F, U+061C); line and paragraph separators (U+2028, U+2029) start a new line.
_BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
# C0 controls, DEL and C1 controls (U+0080–U+009F, among them the 8-bit CSI that starts escape sequences).
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_CONTROL_KEEPING_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def neutralise(text: str, *, keep_lines: bool = False) -> str:
    """`text` with every control, bidi and separator character shown as a visible escape.

    keep_lines: leave newlines and tabs alone (for HTML, where they are only whitespace); by default they are
    escaped too, so a name cannot start a line of its own in a terminal or in Markdown.
    """
    if text.isprintable():  # the common case, in C: every character escaped here is one Python deems unprintable
        return text
    pattern = _CONTROL_KEEPING_LINES if keep_lines else _CONTROL
    return pattern.sub(_escape, text) if pattern.search(text) else text


def warn(message: str) -> None:
    """One warning line on stderr, neutralised (it may quote a name or a server's text)."""
    click.echo(f"posthog-auditor: warning: {neutralise(message)}", err=True)
