"""Opt-in telemetry: one `posthog_audit_completed` event per audited account into an internal PostHog
project, grouped by the audited organization, so a team can chart its book's health in PostHog itself.

Off by default. Sent synchronously and flushed before returning. It carries scores, verdicts and ids, never a
key, a token, or anything about the customer's users.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

EVENT = "posthog_audit_completed"


@dataclass
class TelemetrySettings:
    enabled: bool = False
    host: str = "https://us.i.posthog.com"
    api_key_env: str = "POSTHOG_AUDITOR_TELEMETRY_KEY"  # the internal project's (public) project API key
    distinct_id: str = "posthog-auditor"


def event_properties(run: Mapping[str, Any], account: str) -> dict[str, Any]:
    readiness = run["readiness"]
    props: dict[str, Any] = {
        "account": account,
        "organization_id": run["target"].get("organization_id"),
        "project_ids": str(run["target"].get("project_id")),
        "mode": run.get("mode", "handover"),
        "readiness": readiness["score"],
        "ready": readiness["ready"],
        "band": readiness.get("band"),
        "reasons": len(readiness["reasons"]),
        "failed_checks": sorted({r["id"] for r in run["results"] if r["status"] == "fail"}),
        "tool_version": run.get("tool_version"),
        "run_id": run["run_id"],
        # What the findings cost a month at the customer's own tiers (None: billing not readable, or none found).
        "savings_usd_per_month": (run.get("savings") or {}).get("usd_per_month"),
        "savings_share_of_bill": (run.get("savings") or {}).get("share_of_bill"),
    }
    for category in run["categories"]:
        props[f"score_{category['id']}"] = category["score"]
    return props


class Telemetry:
    """Sends the event for each audited account of one run (an `audit`, or a whole `batch`).

    The SDK logs every failed send with a traceback (a batch against an unreachable host printed 182 lines):
    here its log is kept, the first failure becomes one warning line, and nothing more is tried this run
    (each further try would only wait for the same timeout).
    """

    def __init__(self, settings: TelemetrySettings, warn: Callable[[str], None] | None = None):
        self.settings = settings
        self._warn = warn or _warn
        self._lock = threading.Lock()  # one send at a time: the SDK's logger is shared
        self.failed: str | None = None  # why sending stopped, after the first failure

    def send(self, run: Mapping[str, Any], account: str) -> bool:
        """Send the event if telemetry is on and a key is set; returns whether it was sent."""
        key = os.environ.get(self.settings.api_key_env)
        if not self.settings.enabled or not key:
            return False
        with self._lock:
            if self.failed is not None:
                return False
            errors = _Collect()
            sent = False
            with _sdk_log_to(errors):
                try:
                    sent = self._capture(key, run, account)
                except Exception as exc:  # the SDK should not raise, but telemetry must never cost an audit
                    errors.problems.append(_short(exc))
            if sent:
                return True
            self.failed = errors.problems[0] if errors.problems else "the event was not accepted"
        self._warn(f"telemetry: could not send the {EVENT} event to {self.settings.host} ({self.failed}); "
                   "no more telemetry this run")
        return False

    def _capture(self, key: str, run: Mapping[str, Any], account: str) -> bool:
        from posthog import Posthog

        client = Posthog(key, host=self.settings.host, sync_mode=True, disable_geoip=True, max_retries=2,
                         timeout=10)
        try:
            org = run["target"].get("organization_id") or account
            # sync_mode: sent before capture returns; None when the SDK could not send it.
            uuid = client.capture(EVENT, distinct_id=self.settings.distinct_id,
                                  properties=event_properties(run, account), groups={"organization": str(org)})
            client.flush()
        finally:
            client.shutdown()
        return uuid is not None


def _warn(message: str) -> None:
    from auditor.text import warn

    warn(message)


class _Collect(logging.Handler):
    """Keeps the SDK's complaints (one line each) instead of printing them with tracebacks."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.problems.append(_short(exc) if isinstance(exc, BaseException) else record.getMessage()[:200])


@contextmanager
def _sdk_log_to(handler: logging.Handler) -> Iterator[None]:
    logger = logging.getLogger("posthog")
    saved = (logger.handlers[:], logger.propagate)
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = saved


def _short(exc: BaseException) -> str:
    text = str(exc)
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "timed out" in lowered or "timeout" in lowered:
        return "timed out"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "host not found"
    return f"{type(exc).__name__}: {text.split('(Caused by')[0].strip()[:160]}"
