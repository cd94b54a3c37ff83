"""Scoring, the gate, the registry and plugins, the runner's error handling."""

from __future__ import annotations

from importlib import metadata

import pytest

from auditor.audit import evaluate
from auditor.config import Settings
from auditor.model import CheckResult, Finding, Severity, Status, check
from auditor.registry import ENTRY_POINT_GROUP, load_registry
from auditor.runner import run_check
from auditor.scoring import Scope, decide_scope, score_run
from tests.test_check_cases import build_facts

GATE = {"min_readiness": 80.0, "min_category": 70.0}
WEIGHTS = {"platform": 15, "product_analytics": 30, "session_replay": 20, "handover": 0}


def result(check_id: str, status: str, severity: str = "major") -> CheckResult:
    return CheckResult(id=check_id, category=check_id.split(".")[0], severity=Severity(severity),
                       status=Status(status), title=check_id, summary="s", evidence={}, remediation="r",
                       docs_url="https://posthog.com/docs")


PLAN_OK = result("handover.account-plan", "pass", "blocker")
SCOPE_PA = Scope(["product_analytics"], "flag", always=frozenset({"platform", "handover"}))


CATALOGUE = load_registry(plugins=False).catalogue


def gate(results, scope=SCOPE_PA):
    categories, readiness = score_run(results, scope, WEIGHTS, GATE, CATALOGUE)
    return {c.id: c for c in categories}, readiness


def test_ready_when_everything_passes():
    _, r = gate([result("platform.a", "pass"), result("product_analytics.b", "pass"), PLAN_OK])
    assert r.ready and r.score == 100 and r.reasons == []


@pytest.mark.parametrize(("results", "reason"), [
    ([result("platform.a", "pass"), result("product_analytics.b", "fail"), result("product_analytics.c", "pass"),
      PLAN_OK], "Readiness"),
    ([result("platform.a", "pass"), result("product_analytics.b", "fail", "blocker"),
      *[result(f"product_analytics.p{i}", "pass") for i in range(30)], PLAN_OK], "Blocker failed"),
    ([result("platform.a", "pass"), result("product_analytics.b", "error", "blocker"), PLAN_OK],
     "could not be judged"),
    ([result("platform.a", "pass"), result("product_analytics.b", "pass")], "handover.account-plan was not evaluated"),
    ([result("platform.a", "pass"), result("product_analytics.b", "pass"),
      result("handover.account-plan", "manual", "blocker")], "No current Account Plan"),
    ([result("platform.a", "pass"), result("product_analytics.b", "error", "minor"), PLAN_OK], "score is unknown"),
    ([result("platform.a", "fail", "minor"), result("platform.b", "pass", "minor"),
      *[result(f"product_analytics.p{i}", "pass") for i in range(30)], PLAN_OK], "below the 70"),
])
def test_every_reason_not_ready(results, reason):
    _, r = gate(results)
    assert not r.ready
    assert any(reason in x for x in r.reasons), r.reasons


def test_paid_product_without_any_check_is_not_ready():
    _, r = gate([result("platform.a", "pass"), PLAN_OK], Scope(["session_replay"], "billing"))
    assert not r.ready and any("Session replay is paid for" in x for x in r.reasons)


def test_out_of_scope_failures_do_not_count():
    cats, r = gate([result("platform.a", "pass"), result("product_analytics.b", "pass"),
                    result("session_replay.c", "fail", "blocker"), PLAN_OK])
    assert r.ready and not cats["session_replay"].in_scope


def test_category_score_is_weighted_and_ignores_skip_info_manual():
    cats, _ = gate([result("platform.a", "pass", "blocker"), result("platform.b", "fail", "minor"),
                    result("platform.c", "warn", "major"), result("platform.d", "skip"),
                    result("platform.e", "info", "info"), result("platform.f", "manual")])
    # (5*1 + 1*0 + 3*0.5) / 9 = 72.2
    assert cats["platform"].score == pytest.approx(72.2)


def test_error_makes_category_unknown_not_a_number():
    cats, r = gate([result("platform.a", "pass"), result("platform.b", "error", "minor"), PLAN_OK])
    assert cats["platform"].score is None and cats["platform"].state == "unknown"
    assert r.score is None and not r.ready


def test_info_error_does_not_make_category_unknown():
    cats, _ = gate([result("platform.a", "pass"), result("platform.b", "error", "info")])
    assert cats["platform"].score == 100


def test_scope_order_of_trust():
    used = {"product_analytics": True, "surveys": True, "session_replay": False}
    assert decide_scope(CATALOGUE, ["session_replay"], ["surveys"], used).source == "billing"
    assert decide_scope(CATALOGUE, None, ["surveys"], used).paid_products == ["surveys"]
    usage = decide_scope(CATALOGUE, None, None, used)
    assert usage.source == "usage" and usage.paid_products == ["product_analytics", "surveys"]


def test_check_exception_becomes_error():
    @check(id="platform.raises", title="t", failure_title="f", description="d", severity=Severity.MAJOR,
           docs_url="https://posthog.com/docs")
    def raises(facts, t):
        raise KeyError("x")

    r = run_check(raises, build_facts({}), Settings())
    assert r.status == Status.ERROR and "KeyError" in r.error


def test_check_returning_garbage_becomes_error():
    @check(id="platform.garbage", title="t", failure_title="f", description="d", severity=Severity.MAJOR,
           docs_url="https://posthog.com/docs")
    def garbage(facts, t):
        return {"status": "pass"}

    assert run_check(garbage, build_facts({}), Settings()).status == Status.ERROR


def test_check_error_status_carries_its_reason():
    @check(id="platform.cannot", title="t", failure_title="f", description="d", severity=Severity.MAJOR,
           docs_url="https://posthog.com/docs")
    def cannot(facts, t):
        return Finding(Status.ERROR, "No version table for posthog-ios.")

    r = run_check(cannot, build_facts({}), Settings())
    assert r.error == "No version table for posthog-ios."


def fake_entry_points(monkeypatch, *values: tuple[str, str]):
    eps = [metadata.EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in values]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: eps)
    monkeypatch.setattr("auditor.registry.may_have_plugins", lambda: True)  # these declare no real distribution


def test_plugin_checks_are_registered(monkeypatch):
    fake_entry_points(monkeypatch, ("custom", "tests.plugin_fixtures:custom"))
    registry = load_registry()
    assert "platform.custom-plugin-check" in registry.checks and not registry.failures


@pytest.mark.parametrize("value", ["tests.plugin_fixtures:broken_factory", "tests.plugin_fixtures:collision",
                                   "tests.no_such_module:x"])
def test_broken_plugin_is_an_error_row_not_a_crash(monkeypatch, value):
    fake_entry_points(monkeypatch, ("bad", value))
    registry = load_registry()
    assert len(registry.failures) == 1 and registry.failures[0].name == "bad"
    assert registry.checks["platform.reverse-proxy"].source == "checks"  # the built-in was not replaced
    run = evaluate(build_facts({}), registry, [], Settings())
    row = next(r for r in run["results"] if r["id"] == "plugins.bad")
    assert row["status"] == "error"
    assert not run["readiness"]["ready"]
    assert any("Plugin 'bad'" in reason for reason in run["readiness"]["reasons"])


def test_no_plugins_skips_entry_points(monkeypatch):
    fake_entry_points(monkeypatch, ("bad", "tests.plugin_fixtures:broken_factory"))
    assert load_registry(plugins=False).failures == []


def test_hogql_frames_are_built_by_column_name_and_tolerate_types():
    import polars as pl

    from auditor.queries import CUBE_COLUMNS
    from checks.common import CUBE_SCHEMA, frame

    names = list(reversed(CUBE_COLUMNS))  # a response may order columns differently
    values = {"event": "signed up", "lib": "web", "lib_version": None, "events": "12", "sessions": 4.0,
              "distinct_ids": None}
    df = frame({"columns": names, "rows": [[values.get(c, 3) for c in names]]}, CUBE_COLUMNS, CUBE_SCHEMA)
    row = df.to_dicts()[0]
    assert row["event"] == "signed up" and row["events"] == 12 and row["sessions"] == 4
    assert row["distinct_ids"] == 0 and row["proxied"] == 3 and row["lib_version"] is None
    assert dict(df.schema) == {name: pl.Utf8 if kind == "str" else pl.Int64 for name, kind in CUBE_SCHEMA.items()}
    assert frame({"columns": names, "rows": []}, CUBE_COLUMNS, CUBE_SCHEMA).height == 0


def test_the_last_event_is_read_only_when_the_window_has_events():
    """Over a window without events, ClickHouse's max() gives its default time (1970), not NULL."""
    from datetime import UTC, datetime

    from auditor.facts import Fact, Facts
    from auditor.queries import IDENTITY_COLUMNS
    from checks.common import last_event

    def facts(events: int, at: str) -> Facts:
        row = {"kind": "totals", "events": events, "last_event": at}
        identity = {"columns": list(IDENTITY_COLUMNS), "rows": [[row.get(c) for c in IDENTITY_COLUMNS]]}
        return Facts({"identity": Fact("ok", identity), "project": Fact("ok", {"timezone": "Europe/London"})},
                     datetime.now(UTC))

    assert last_event(facts(0, "1970-01-01T01:00:00+01:00")) is None
    assert last_event(facts(5, "2026-11-01T10:00:00Z")) == datetime(2026, 11, 1, 10, tzinfo=UTC)


def test_a_frame_is_the_same_whether_its_answer_is_plain_or_odd():
    """Whole numbers and text (PostHog's answer) take the fast path; numeric strings, floats, a non-text key or a
    short row take the tolerant one. Both give the same frame for the same values."""
    from checks.common import frame

    columns, schema = ("key", "n"), {"key": "str", "n": "int"}
    plain = frame({"columns": ["key", "n"], "rows": [["a", 1], ["b", None], [None, 3]]}, columns, schema)
    assert plain.to_dicts() == [{"key": "a", "n": 1}, {"key": "b", "n": 0}, {"key": None, "n": 3}]
    odd = frame({"columns": ["n", "key"], "rows": [[" 1 ", "a"], [2.0, 7], ["", None], [5]]}, columns, schema)
    assert odd.to_dicts() == [{"key": "a", "n": 1}, {"key": "7", "n": 2}, {"key": None, "n": 0},
                              {"key": None, "n": 5}]
    assert odd.schema == plain.schema


def test_evidence_tables_build_only_the_rows_they_show():
    from auditor.model import EVIDENCE_ROW_CAP, Table

    built = []
    table = Table.of(["n"], list(range(80_000)), row=lambda n: built.append(n) or [n])
    assert table.total_rows == 80_000 and len(table.rows) == EVIDENCE_ROW_CAP
    assert built == list(range(EVIDENCE_ROW_CAP))  # 50 rows formatted, not 80,000


def test_a_check_sees_only_the_facts_it_declares():
    @check(id="platform.nosy", title="t", failure_title="f", description="d", severity=Severity.MINOR,
           docs_url="https://posthog.com/docs", requires=("project",))
    def nosy(facts, t):
        facts.get("members")  # not declared
        return Finding(Status.PASS, "fine")

    r = run_check(nosy, build_facts({"project": {}, "members": [{"level": 15}]}), Settings())
    assert r.status == "error" and "read fact 'members' without declaring it" in r.summary


@pytest.mark.parametrize("variant", [None, "healthy", "server_only", "with_sibling"])
def test_no_builtin_check_reads_a_fact_it_does_not_declare(variant):
    """Every built-in check over a whole project's facts: a read of an undeclared fact would be an error row."""
    from datetime import UTC, datetime

    from auditor.audit import gather_facts
    from auditor.clients.posthog_api import PostHogClient, RateLimiter
    from auditor.demo import DEMO_HOST, demo_scenario, demo_session
    from tests import clickhouse
    from tests.scenarios import VARIANTS

    scenario = demo_scenario(datetime(2026, 11, 1, 12, tzinfo=UTC))
    if variant:
        VARIANTS[variant](scenario)
    scenario.hogql = clickhouse.answer
    registry = load_registry(plugins=False)
    checks = list(registry.checks.values())
    with PostHogClient(DEMO_HOST, "k", session=demo_session(scenario), limiter=RateLimiter()) as client:
        facts = gather_facts(client, scenario.project_id, checks, registry.catalogue)
    run = evaluate(facts, registry, checks, Settings())
    assert not [r["id"] for r in run["results"] if "without declaring" in (r.get("error") or "")]
