"""A batch waiting on PostHog's hourly HogQL limit says what it waits for and how long (issue 13, item 18)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from click.testing import CliRunner

from auditor.cli import cli
from auditor.posthog_api import RateLimiter
from auditor.waits import announce_waits, wait_message
from tests.test_batch import book  # noqa: F401  (a fixture)


class FakeClock:
    """Time that passes only when someone sleeps: an hour's wait takes no time."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.lock = threading.Lock()

    def now(self) -> float:
        with self.lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.t += seconds


def test_a_long_wait_is_announced_once_with_what_and_how_long():
    clock, said = FakeClock(), []
    limiter = announce_waits(RateLimiter({"hogql": (2, 3600.0)}, clock=clock.now, sleep=clock.sleep), said.append)
    for _ in range(3):
        limiter.acquire("hogql")
    assert len(said) == 1
    assert said[0].startswith("waiting 60 min for PostHog's HogQL query limit (2 queries an hour on this API key); "
                              "going on at about ")
    assert announce_waits(limiter, said.append) is limiter  # installed once per shared limiter


def test_short_waits_pass_unremarked():
    clock, said = FakeClock(), []
    limiter = announce_waits(RateLimiter({"rest": (1, 2.0)}, clock=clock.now, sleep=clock.sleep), said.append)
    for _ in range(3):
        limiter.acquire("rest")
    assert said == []


def test_wait_message_wording():
    noon = lambda: datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # noqa: E731
    assert wait_message("rest", 42, 480, 60.0, noon) == ("waiting 42 s for PostHog's API request limit (480 requests "
                                                         "a minute on this API key); going on at about 12:00 UTC")
    assert "waiting 1 h 40 min" in wait_message("hogql", 6000, 120, 7200.0, noon)
    assert "(120 queries per 7200 s" in wait_message("hogql", 6000, 120, 7200.0, noon)


def test_a_batch_on_a_spent_hogql_budget_says_so(book, tmp_path, monkeypatch):  # noqa: F811
    clock, made = FakeClock(), {}

    def for_key(cls, api_key, limits=None):  # the shared limiter, on time that passes only by waiting
        key = (api_key, repr(sorted((limits or cls.DEFAULT_LIMITS).items())))
        if key not in made:
            made[key] = RateLimiter(limits, clock=clock.now, sleep=clock.sleep)
        return made[key]

    monkeypatch.setattr(RateLimiter, "for_key", classmethod(for_key))
    config = tmp_path / "auditor.toml"
    config.write_text("[limits]\nhogql = 1\n")  # 3 accounts, each with a HogQL query, on one key: the second waits
    result = CliRunner().invoke(cli, ["batch", str(book), "--out", str(tmp_path / "p"), "--no-history",
                                      "--no-plugins", "--parallel", "3", "--config", str(config)])
    assert result.exit_code == 1, result.output
    waits = [ln for ln in result.output.splitlines() if "waiting" in ln]
    assert waits and all(ln.startswith("posthog-auditor: waiting ") for ln in waits), result.output
    assert "for PostHog's HogQL query limit (1 query an hour on this API key)" in waits[0]
    assert len(waits) <= 2, waits  # one line per wait, not one per thread


def test_the_throttle_named_is_the_one_that_makes_the_wait():
    from auditor.waits import binding

    limits = {"burst": (480, 60.0), "sustained": (4800, 3600.0), "clickhouse_sustained": (1200, 3600.0),
              "hogql": (120, 3600.0)}
    assert binding(limits, ("hogql",), 1800) == "hogql"
    assert binding(limits, ("burst", "sustained"), 30) == "burst"
    assert binding(limits, ("burst", "sustained"), 1200) == "sustained"
    assert binding(limits, ("burst", "sustained", "clickhouse_sustained"), 1200) == "clickhouse_sustained"
    assert binding(limits, ("unknown",), 10) is None


def test_a_limiter_taking_several_throttles_per_request_is_announced_too():
    """The limiter's acquire may take every throttle a request counts against (PostHog's burst and sustained)."""
    said: list[str] = []

    class ManyThrottles:
        def __init__(self) -> None:
            self.limits = {"burst": (480, 60.0), "sustained": (2, 3600.0)}
            self.sent = 0
            self._sleep = lambda seconds: None

        def acquire(self, *throttles: str) -> None:
            self.sent += 1
            if self.sent > 2:
                self._sleep(3000.0)

    limiter = announce_waits(ManyThrottles(), said.append)
    for _ in range(3):
        limiter.acquire("burst", "sustained")
    assert len(said) == 1 and "for PostHog's hourly API request limit (2 requests an hour" in said[0]
