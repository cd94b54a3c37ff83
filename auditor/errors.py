"""Failures a user can meet, each carrying the exit code the command line ends with. Any of them is one line on
stderr, never a traceback.

Exit codes: 0 ready (or healthy), 1 not ready, 2 usage/config/auth error, 3 the API could not be reached, or gave
no usable answer to what the whole audit needs;
130 interrupted (Ctrl-C); 141 the reader of our output went away (`… | head`), like any tool killed by SIGPIPE.
"""

from __future__ import annotations

EXIT_READY, EXIT_NOT_READY, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141  # 128 + SIGINT, 128 + SIGPIPE


class AuditorError(Exception):
    """A failure to report in one line; `exit_code` is how the process ends."""

    exit_code = EXIT_USAGE
    label = "error"  # "posthog-auditor: <label>: <message>"

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(AuditorError):
    """A flag, a file or an answer that does not let the command go on."""


class Unreachable(AuditorError):
    """The PostHog API (or Vitally) could not be reached at all."""

    exit_code = EXIT_UNREACHABLE
