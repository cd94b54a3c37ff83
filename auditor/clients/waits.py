"""Saying what a rate-limit wait is for: a batch that has spent its key's hourly HogQL budget waits for minutes,
and silence looks like a hang. The limiter (posthog_api.RateLimiter) waits; this makes the wait say, in one
line, what it waits for and how long.

The limiter is shared by every audit on a key (RateLimiter.for_key), so the announcer is installed once per
limiter (as its `on_wait`), and several threads waiting for the same slot are announced once. The limiter names
the throttle that makes the wait: the one whose window frees up last.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auditor.clients.posthog_api import RateLimiter

ANNOUNCE_AFTER = 5.0  # seconds: shorter waits pass unremarked
# The limiter's throttle names (one "rest" window, or PostHog's burst/sustained pairs): what a reader calls them.
LIMIT_NAMES = {
    "hogql": ("HogQL query limit", "queries"),
    "rest": ("API request limit", "requests"),
    "burst": ("API request limit", "requests"),
    "sustained": ("hourly API request limit", "requests"),
    "clickhouse_burst": ("insights and recordings request limit", "requests"),
    "clickhouse_sustained": ("hourly insights and recordings request limit", "requests"),
}


def announce_waits(limiter: RateLimiter, notify: Callable[[str], None] | None = None,
                   threshold: float = ANNOUNCE_AFTER) -> RateLimiter:
    """Make `limiter` report its waits of `threshold` seconds or more through `notify` (default: stderr)."""
    if limiter.on_wait is None:
        limiter.on_wait = WaitAnnouncer(limiter.limits, notify or _to_stderr, threshold)
    return limiter


class WaitAnnouncer:
    """The limiter's `on_wait`: one line for a long wait, and one for several threads waiting for the same
    window (they would otherwise each say the same thing)."""

    def __init__(self, limits: dict[str, tuple[int, float]], notify: Callable[[str], None], threshold: float):
        self.limits, self.notify, self.threshold = limits, notify, threshold
        self._lock = threading.Lock()
        self._announced_until = float("-inf")

    def __call__(self, throttle: str, seconds: float) -> None:
        end = time.monotonic() + seconds
        with self._lock:
            fresh = seconds >= self.threshold and end > self._announced_until + self.threshold
            if fresh:
                self._announced_until = end
        if fresh and throttle in self.limits:
            self.notify(wait_message(throttle, seconds, *self.limits[throttle]))


def wait_message(kind: str, seconds: float, limit: int, window: float,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    name, unit = LIMIT_NAMES.get(kind, (f"{kind} limit", "requests"))
    unit = {"queries": "query", "requests": "request"}[unit] if limit == 1 else unit
    resume = (now() + timedelta(seconds=seconds)).strftime("%H:%M UTC")
    return (f"waiting {duration(seconds)} for PostHog's {name} ({limit} {unit} {per(window)} on this API key); "
            f"going on at about {resume}")


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


def per(window: float) -> str:
    return {60.0: "a minute", 3600.0: "an hour", 86400.0: "a day"}.get(float(window), f"per {window:g} s")


def _to_stderr(text: str) -> None:
    import click

    click.echo(f"posthog-auditor: {text}", err=True)
