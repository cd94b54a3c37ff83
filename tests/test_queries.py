"""The audit's HogQL as PostHog runs it: parsed by PostHog's own parser, printed by PostHog's rules, executed on
embedded ClickHouse over raw events in PostHog's table layout (tests/hogql_printer.py, tests/clickhouse.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from auditor import queries
from auditor.demo import DEMO_ANSWERS, DEMO_PROPERTY_TYPES, demo_scenario, precomputed_answer
from auditor.demo.events import DAY, EventData, ReplayRow, demo_events, event
from auditor.facts import SHORT_WINDOW_DAYS
from tests import demo_answers
from tests.clickhouse import QueryFailed, engine
from tests.hogql_printer import Printer, parse

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TYPED = DEMO_PROPERTY_TYPES


def run(text: str, data: EventData, tz: str = "UTC", types: dict[str, str] | None = None) -> list[dict]:
    body = engine().hogql(text, data, timezone=tz, now=NOW, property_types=types or {})
    return [dict(zip(body["columns"], row, strict=True)) for row in body["results"]]


def every_query_text() -> list[str]:
    """Every text the tool can send: the default windows, the short window a timed-out query falls back to,
    and other windows a configuration may choose."""
    texts = []
    for days in sorted({queries.WINDOW_DAYS, SHORT_WINDOW_DAYS, 14, queries.REPLAY_WINDOW_DAYS}):
        texts += [queries.cube_sql(days), queries.identity_sql(days), queries.replay_sql(days)]
    texts += list(queries.audit_queries().values())
    return list(dict.fromkeys(texts))


@pytest.mark.parametrize("text", every_query_text(), ids=lambda t: f"{t.split()[1]}…{len(t)}")
def test_every_query_parses_with_posthogs_parser_and_runs(text):
    ast = parse(text)  # PostHog's own parser (hogql-parser); a syntax error raises
    assert ast["node"] in ("SelectQuery", "SelectSetQuery")
    assert "OFFSET" not in text.upper()  # PostHog refuses OFFSET in queries made with a personal API key
    for types in ({}, TYPED):
        run(text, demo_events(), "Europe/London", types)  # raises QueryFailed if ClickHouse refuses it


def test_the_printer_models_what_posthog_refuses():
    """The rules that broke the old queries, shown on the engine, so a test here can fail as PostHog would."""
    data = demo_events()
    compare_bool = "SELECT countIf(properties.$is_identified = true) AS n FROM events LIMIT 1"
    with pytest.raises(QueryFailed, match="no supertype for types String, Bool"):
        run(compare_bool, data)  # untyped: a String compared with a Bool
    assert run(compare_bool, data, types={"$is_identified": "Boolean"})[0]["n"] > 0
    date_of_aggregate = ("SELECT toDate(start) AS d FROM (SELECT min(min_first_timestamp) AS start "
                         "FROM raw_session_replay_events GROUP BY session_id) LIMIT 1")
    with pytest.raises(QueryFailed, match="Code: 43"):
        run(date_of_aggregate, data)  # HogQL does not know min()'s type: toDateOrNull, refused for a DateTime
    with pytest.raises(QueryFailed, match="Unsupported function"):
        run("SELECT secretFunction(event) FROM events LIMIT 1", data)
    printer = Printer(timezone="UTC", now="2026-11-01 12:00:00.000000")
    assert printer.print("SELECT event FROM events").endswith("LIMIT 100")  # PostHog's default without LIMIT
    assert printer.print("SELECT event FROM events LIMIT 900000").endswith("LIMIT 50000")  # and its cap


def test_booleans_count_the_same_typed_or_not():
    for text in (queries.cube_sql(), queries.identity_sql()):
        assert run(text, demo_events(), types={}) == run(text, demo_events(), types=TYPED)
    totals = next(r for r in run(queries.identity_sql(), demo_events()) if r["kind"] == "totals")
    assert 0 < totals["extra"] < totals["distinct_ids"]  # identified distinct ids were counted


def test_events_without_a_session_are_not_a_session():
    server = EventData(tuple(event("file uploaded", f"user-{i % 7}", 3_600 + i, {"$lib": "posthog-node"})
                             for i in range(1_327)))
    cube = run(queries.cube_sql(), server)
    assert cube[0]["sessions"] == 0 and cube[0]["session_events"] == 0 and cube[0]["distinct_ids"] == 7
    totals = next(r for r in run(queries.identity_sql(), server) if r["kind"] == "totals")
    assert totals["sessions"] == 0 and totals["events"] == 1_327


def test_absent_properties_come_back_null():
    data = EventData((event("signed up", "u1", 60, {"plan": "pro"}),
                      event("$feature_flag_called", "u1", 60, {"$lib": "posthog-python", "$feature_flag": "beta"})))
    cube = {r["event"]: r for r in run(queries.cube_sql(), data)}
    assert cube["signed up"]["lib"] is None and cube["signed up"]["lib_version"] is None
    flags = [r for r in run(queries.identity_sql(), data) if r["kind"] == "flag"]
    assert flags == [{"kind": "flag", "key": "beta", "lib": "posthog-python", "flag_locally_evaluated": None,
                      "events": 1, "distinct_ids": 1, "sessions": 0, "extra": 0, "last_event": None}]


def test_a_recording_over_several_rows_counts_once_and_deleted_ones_not_at_all():
    start = 2 * DAY
    rows = (
        ReplayRow("rec-a", "u1", start, start - 60, 1_000), ReplayRow("rec-a", "u1", start - 60, start - 120, 2_500),
        ReplayRow("rec-a", "u1", start - 120, start - 180, 2_500),  # 6 s in all: not short
        ReplayRow("rec-b", "u2", start, start - 20, 800),  # short
        ReplayRow("rec-c", "u3", start, start - 30, 9_000), ReplayRow("rec-c", "u3", start, start, 0, is_deleted=1),
    )
    [day] = run(queries.replay_sql(), EventData(replay=rows))
    assert (day["recordings"], day["short_recordings"]) == (2, 1)


def test_dates_and_times_are_the_projects():
    # 11:30 UTC on 1 November is 00:30 on 2 November in Auckland (UTC+13).
    data = EventData((event("$pageview", "u1", 30 * 60, {"$lib": "web"}),),
                     (ReplayRow("rec", "u1", 30 * 60, 20 * 60, 10_000),))
    [day] = run(queries.replay_sql(), data, "Pacific/Auckland")
    assert day["day"] == "2026-11-02" and day["last_start"] == "2026-11-02T00:30:00+13:00"
    [day] = run(queries.replay_sql(), data, "UTC")
    assert day["day"] == "2026-11-01" and day["last_start"] == "2026-11-01T11:30:00Z"
    [totals] = [r for r in run(queries.identity_sql(), data, "America/New_York") if r["kind"] == "totals"]
    assert totals["last_event"] == "2026-11-01T06:30:00-05:00"


def test_the_window_keeps_older_events_out():
    data = EventData((event("$pageview", "u1", 29 * DAY, {}), event("$pageview", "u1", 31 * DAY, {})))
    assert run(queries.cube_sql(), data)[0]["events"] == 1
    assert run(queries.cube_sql(SHORT_WINDOW_DAYS), data) == []


def test_the_committed_demo_answers_are_what_the_current_queries_compute():
    committed = json.loads(DEMO_ANSWERS.read_text(encoding="utf-8"))
    assert committed == json.loads(demo_answers.render(demo_answers.compute())), \
        "the demo's answers are stale: run python -m tests.demo_answers"


def test_demo_answers_move_to_the_audit_clock():
    later = demo_answers.CLOCK + timedelta(days=3, hours=5)
    text = queries.combined_sql()
    moved = queries.split_combined(*_body(precomputed_answer(demo_scenario(later), text)))
    fresh = queries.split_combined(*_body(engine().hogql(text, demo_events(), timezone="Europe/London", now=later,
                                                         property_types=TYPED)))
    assert max(r[0] for r in moved["replay"][1]) == max(r[0] for r in fresh["replay"][1])  # today is today
    at = queries.IDENTITY_COLUMNS.index("last_event")
    [last_event] = [datetime.fromisoformat(r[at]) for r in moved["identity"][1] if r[0] == "totals"]
    assert timedelta(0) < later - last_event < timedelta(hours=1)


def _body(answer: dict) -> tuple[list, list]:
    return answer["columns"], answer["results"]


def test_the_combined_query_answers_what_the_separate_ones_do():
    """One query per audit must not cost correctness: each part of the combined answer is what the part's own
    query gives, typed or untyped, in any timezone."""
    for tz, types in (("Europe/London", TYPED), ("Pacific/Auckland", {})):
        body = engine().hogql(queries.combined_sql(), demo_events(), timezone=tz, now=NOW, property_types=types)
        combined = queries.split_combined(body["columns"], body["results"])
        for part, text in (("cube", queries.cube_sql()), ("identity", queries.identity_sql()),
                           ("replay", queries.replay_sql())):
            alone = engine().hogql(text, demo_events(), timezone=tz, now=NOW, property_types=types)
            assert combined[part][0] == alone["columns"]
            assert sorted(map(repr, combined[part][1])) == sorted(map(repr, alone["results"])), part


def old_replay_branches(window_days: int = 90, short_ms: int = 5_000) -> list[str]:
    """The replay part as it was before: the date taken on the subquery's min(), a type HogQL does not know."""
    select = queries._select("replay", (queries.EMPTY,) * 3, ["count()", f"countIf(active_ms < {short_ms})"],
                             day="toDate(start_time)", at="max(start_time)")
    return [f"{select} FROM (SELECT session_id, min(min_first_timestamp) AS start_time, "
            "sum(active_milliseconds) AS active_ms FROM raw_session_replay_events "
            f"WHERE min_first_timestamp >= now() - INTERVAL {window_days} DAY GROUP BY session_id) GROUP BY day"]


def test_a_query_posthog_refuses_is_an_error_with_its_message_never_a_pass(standin, scenario, monkeypatch):
    """The replay part as it was before: PostHog refuses the combined query (400 with ClickHouse's message), so
    each part runs on its own; the replay fact and every check built on it are errors with that message, the
    other parts are judged, and the customer is not ready."""
    from auditor.audit import evaluate, gather_facts
    from auditor.config import Settings
    from auditor.registry import load_registry
    from tests.conftest import fast_client

    monkeypatch.setattr(queries, "replay_branches", old_replay_branches)
    registry = load_registry(plugins=False)
    checks = list(registry.checks.values())
    with fast_client(standin.url, standin.api_key) as client:
        facts = gather_facts(client, scenario.project_id, checks, registry.catalogue)
    assert facts.status("replay") == "error"
    assert "400" in facts.reason("replay") and "Illegal type DateTime64" in facts.reason("replay")
    assert facts.ok("cube") and facts.ok("identity") and "the combined query was refused" in facts.get("cube")["query"]
    assert standin.count(r"/query/$", "POST") == 4  # the combined query, then each part on its own
    run = evaluate(facts, registry, checks, Settings())
    active = next(r for r in run["results"] if r["id"] == "session_replay.recording-active")
    assert active["status"] == "error" and "Illegal type" in active["error"]
    assert not run["readiness"]["ready"]


def audit_through_standin(standin, scenario) -> dict[str, dict]:
    from auditor.audit import evaluate, gather_facts
    from auditor.config import Settings
    from auditor.registry import load_registry
    from tests.conftest import fast_client

    registry = load_registry(plugins=False)
    checks = list(registry.checks.values())
    with fast_client(standin.url, standin.api_key) as client:
        facts = gather_facts(client, scenario.project_id, checks, registry.catalogue)
    return {r["id"]: r for r in evaluate(facts, registry, checks, Settings())["results"]}


@pytest.mark.parametrize("scenario", ["untyped_booleans"], indirect=True)
def test_a_project_without_boolean_definitions_is_judged_like_one_with_them(standin, scenario):
    untyped = audit_through_standin(standin, scenario)
    scenario.property_types = dict(TYPED)
    typed = audit_through_standin(standin, scenario)
    assert {k: (r["status"], r["summary"]) for k, r in untyped.items()} == \
        {k: (r["status"], r["summary"]) for k, r in typed.items()}
    assert untyped["product_analytics.identify-used"]["status"] == "pass"


@pytest.mark.parametrize("scenario", ["server_only"], indirect=True)
def test_a_server_only_project_has_no_sessions_to_judge_per_session(standin, scenario):
    results = audit_through_standin(standin, scenario)
    volume = results["feature_flags.call-volume"]
    assert volume["status"] == "pass" and "not judged per session" in volume["summary"]
    assert volume["evidence"]["metrics"]["sessions"] == 0


@pytest.mark.parametrize("scenario", ["far_timezone"], indirect=True)
def test_replay_days_are_counted_in_the_projects_timezone(standin, scenario):
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Pacific/Auckland")
    today = scenario.now.astimezone(tz).date()
    starts: dict[str, float] = {}
    for row in scenario.raw_events().replay:  # a recording starts at its earliest row
        starts[row.session_id] = max(starts.get(row.session_id, 0.0), row.first_seconds_ago)
    local_days = [(scenario.now - timedelta(seconds=ago)).astimezone(tz).date() for ago in starts.values()]
    expected = sum(1 for d in local_days if (today - d).days < 7)
    active = audit_through_standin(standin, scenario)["session_replay.recording-active"]
    assert active["status"] == "pass"
    assert active["evidence"]["metrics"]["recordings_7d"] == expected
    assert active["evidence"]["metrics"]["last_recording"] == max(local_days).isoformat()


def test_a_property_type_posthog_does_not_know_reads_as_text():
    text = queries.identity_sql()
    assert run(text, demo_events(), types={"$is_identified": "Sparkly"}) == run(text, demo_events(), types={})
