"""Latest SDK versions, used only when PostHog's own SDK health report cannot be read.

Read from the npm registry and PyPI on TABLE_DATE. `three_months_ago` is the newest release published
three months before that date: a version older than it is more than three months behind, which is the
handbook's rule. posthog-js ships several minors a week, so a fixed "3 minors behind" rule would flag
everyone; it is used only for SDKs where the three-month marker is not known.
"""

from __future__ import annotations

import re

TABLE_DATE = "2026-11-22"

LATEST_SDKS: dict[str, dict[str, str]] = {
    "web": {"latest": "1.449.2", "three_months_ago": "1.418.10"},  # npm posthog-js
    "posthog-node": {"latest": "5.70.0", "three_months_ago": "5.50.0"},  # npm posthog-node
    "posthog-react-native": {"latest": "4.78.0", "three_months_ago": "4.63.2"},  # npm posthog-react-native
    "posthog-python": {"latest": "7.91.1"},  # PyPI posthog
}


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    match = re.match(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
    if not match:
        return None
    major, minor, patch = (int(g) if g else 0 for g in match.groups())
    return major, minor, patch


def is_outdated(version: str | None, latest: dict[str, str], minors_behind: int) -> bool:
    """Unknown versions are not called outdated: they are reported, not guessed at."""
    current, newest = parse_version(version), parse_version(latest["latest"])
    if current is None or newest is None:
        return False
    if current[0] < newest[0]:
        return True
    marker = parse_version(latest.get("three_months_ago"))
    if marker is not None:
        return current < marker
    return current[0] == newest[0] and newest[1] - current[1] >= minors_behind
