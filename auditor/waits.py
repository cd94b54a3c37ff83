"""Saying what a rate-limit wait is for: a batch that has spent its key's hourly HogQL budget waits for minutes,
and silence looks like a hang. The limiter (posthog_api.RateLimiter) waits; this makes the wait say, in one
line, what it waits for and how long.

The limiter is shared by every audit on a key (RateLimiter.for_key), so the announcer is installed once per
limiter, and several threads waiting for the same slot are announced once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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


def announce_waits(limiter: Any, notify: Callable[[str], None] | None = None,
                   threshold: float = ANNOUNCE_AFTER) -> Any:
    """Make `limiter` report its waits of `threshold` seconds or more through `notify` (default: stderr)."""
    if getattr(limiter, "_announces_waits", False):
        return limiter
    say = notify or _to_stderr
    local = threading.local()  # which kind of request this thread is waiting to send
    lock = threading.Lock()
    announced_until = [float("-inf")]
    acquire, sleep = limiter.acquire, limiter._sleep  # the limiter's own wait: wrapped, not reimplemented

    def acquire_announcing(*throttles: str, **options: Any) -> None:  # one kind, or several a request counts on
        local.kinds = throttles
        try:
            acquire(*throttles, **options)
        finally:
            local.kinds = ()

    def sleep_announcing(seconds: float) -> None:
        kind = binding(limiter.limits, getattr(local, "kinds", ()), seconds)
        end = time.monotonic() + seconds
        with lock:  # threads waiting for the same window: one line, not one each
            fresh = seconds >= threshold and end > announced_until[0] + threshold
            if fresh:
                announced_until[0] = end
        if fresh and kind is not None:
            say(wait_message(kind, seconds, *limiter.limits[kind]))
        sleep(seconds)

    limiter.acquire = acquire_announcing
    limiter._sleep = sleep_announcing
    limiter._announces_waits = True
    return limiter


def binding(limits: dict[str, tuple[int, float]], kinds: tuple[str, ...], seconds: float) -> str | None:
    """Which of the request's throttles a wait of `seconds` is for: only a window at least that long can make
    one wait so long (a 20-minute wait is the hourly limit's); among those, the shortest window, then the
    smallest limit."""
    known = [k for k in kinds if k in limits]
    fits = [k for k in known if limits[k][1] + max(1.0, limits[k][1] * 0.02) >= seconds] or known
    return min(fits, key=lambda k: (limits[k][1], limits[k][0]), default=None)


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
