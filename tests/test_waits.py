"""A batch waiting on PostHog's hourly HogQL limit says what it waits for and how long (issue 13, item 18)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from click.testing import CliRunner

from auditor.cli import cli
from auditor.clients.posthog_api import RateLimiter
from auditor.clients.waits import announce_waits, wait_message
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
    """A request counts against several throttles (PostHog's burst and sustained pairs); the line names the one
    whose window frees up last, which is what the limiter waits for."""
    clock, said = FakeClock(), []
    limiter = announce_waits(RateLimiter({"burst": (2, 60.0), "sustained": (3, 3600.0)}, clock=clock.now,
                                         sleep=clock.sleep), said.append)
    for _ in range(3):  # the third waits for the burst window (a minute), the sustained one still has room
        limiter.acquire("burst", "sustained")
    assert len(said) == 1 and "for PostHog's API request limit (2 requests a minute" in said[0]
    limiter.acquire("burst", "sustained")  # the fourth: the hourly window is full, an hour's wait
    assert len(said) == 2 and "for PostHog's hourly API request limit (3 requests an hour" in said[1]


def test_the_limiter_tells_its_hook_of_every_wait_and_what_makes_it():
    clock, waits = FakeClock(), []
    limiter = RateLimiter({"clickhouse_burst": (1, 60.0), "hogql": (1, 3600.0)}, clock=clock.now, sleep=clock.sleep)
    limiter.on_wait = lambda throttle, seconds: waits.append((throttle, round(seconds, 2)))
    limiter.acquire("clickhouse_burst")
    limiter.acquire("clickhouse_burst")
    limiter.acquire("hogql")
    limiter.acquire("hogql")
    assert waits == [("clickhouse_burst", 60.25), ("hogql", 3600.25)]  # each window plus the limiter's arrival margin
