"""Embedded ClickHouse (chdb) holding raw events in PostHog's table layout, answering HogQL as PostHog's query
endpoint does: the query text is printed by PostHog's rules (tests/hogql_printer.py), executed, and the rows
come back in the shape of PostHog's HogQLQueryResponse. A query ClickHouse refuses is a 400 with its message.

Each dataset is loaded once per process into a database of its own, with timestamps on a fixed epoch; every
DateTime field is printed shifted to the asking scenario's clock, so one loaded copy serves every clock.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from auditor.demo import QueryRefused, Scenario
from auditor.demo.events import EventData
from auditor.queries import audit_queries
from tests.hogql_printer import HogQLError, Printer, parse

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

# posthog/models/event/sql.py: $session_id, $window_id and $group_N are materialized from the properties.
_MATERIALIZED = ["$session_id", "$window_id", *(f"$group_{i}" for i in range(5))]
EVENTS_DDL = """CREATE TABLE {db}.events (
    uuid UUID DEFAULT generateUUIDv4(), event String, properties String, timestamp DateTime64(6, 'UTC'),
    team_id Int64 DEFAULT 1, distinct_id String, elements_chain String DEFAULT '',
    created_at DateTime64(6, 'UTC') DEFAULT timestamp, person_id UUID DEFAULT generateUUIDv4(),
    {materialized}
) ENGINE = MergeTree ORDER BY (event, timestamp)"""
REPLAY_DDL = """CREATE TABLE {db}.session_replay (
    session_id String, team_id Int64 DEFAULT 1, distinct_id String, min_first_timestamp DateTime64(6, 'UTC'),
    max_last_timestamp DateTime64(6, 'UTC'), first_url Nullable(String), click_count Int64, keypress_count Int64,
    mouse_activity_count Int64, active_milliseconds Int64, console_log_count Int64, console_warn_count Int64,
    console_error_count Int64, size Int64, event_count Int64, message_count Int64, snapshot_source String,
    is_deleted UInt8
) ENGINE = MergeTree ORDER BY (session_id, min_first_timestamp)"""
SETTINGS = ("output_format_json_quote_64bit_integers=0, output_format_json_quote_64bit_floats=0, "
            "output_format_json_quote_decimals=0")


class QueryFailed(Exception):
    """ClickHouse refused the query: PostHog answers 400 with this message."""


def _moment(seconds_ago: float) -> str:
    return (EPOCH - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%d %H:%M:%S.%f")


class Engine:
    _lock = threading.RLock()

    def __init__(self) -> None:
        from chdb import session

        self._session = session.Session()
        self._loaded: set[str] = set()
        self._answers: dict[tuple[Any, ...], dict[str, Any]] = {}  # the same question gets the same answer

    def _query(self, sql: str, fmt: str = "CSV") -> str:
        with self._lock:
            try:
                result = self._session.query(sql, fmt)
            except Exception:
                # chdb keeps what a failed query had written and prepends it to the next answer: drain it.
                self._session.query("SELECT 1", fmt)
                raise
        return result.bytes().decode() if hasattr(result, "bytes") else str(result)

    def database(self, data: EventData) -> str:
        name = f"d_{data.key}"
        with self._lock:
            if name not in self._loaded:
                self._load(name, data)
                self._loaded.add(name)
        return name

    def _load(self, db: str, data: EventData) -> None:
        materialized = ",\n    ".join(
            f"`{c}` String MATERIALIZED replaceRegexpAll(JSONExtractRaw(properties, '{c}'), '^\"|\"$', '')"
            for c in _MATERIALIZED)
        self._query(f"DROP DATABASE IF EXISTS {db}")
        self._query(f"CREATE DATABASE {db}")
        self._query(EVENTS_DDL.format(db=db, materialized=materialized))
        self._query(REPLAY_DDL.format(db=db))
        if data.events:
            rows = "\n".join(json.dumps({"event": e.event, "distinct_id": e.distinct_id, "properties": e.properties,
                                         "timestamp": _moment(e.seconds_ago)}) for e in data.events)
            self._query(f"INSERT INTO {db}.events (event, distinct_id, properties, timestamp) FORMAT JSONEachRow\n"
                        + rows)
        if data.replay:
            rows = "\n".join(json.dumps({
                "session_id": r.session_id, "distinct_id": r.distinct_id,
                "min_first_timestamp": _moment(r.first_seconds_ago), "max_last_timestamp": _moment(r.last_seconds_ago),
                "first_url": r.first_url, "click_count": r.click_count, "keypress_count": 0, "mouse_activity_count": 0,
                "active_milliseconds": r.active_milliseconds, "console_log_count": 0, "console_warn_count": 0,
                "console_error_count": 0, "size": 1_000, "event_count": 10, "message_count": 1,
                "snapshot_source": "web", "is_deleted": r.is_deleted}) for r in data.replay)
            self._query(f"INSERT INTO {db}.session_replay FORMAT JSONEachRow\n" + rows)

    def hogql(self, text: str, data: EventData, *, timezone: str, now: datetime,
              property_types: dict[str, str] | None = None) -> dict[str, Any]:
        """PostHog's answer to a HogQLQuery: the response body, or QueryFailed with ClickHouse's message."""
        question = (text, data.key, timezone, now, tuple(sorted((property_types or {}).items())))
        if question not in self._answers:
            self._answers[question] = self._run(text, data, timezone=timezone, now=now,
                                                property_types=property_types)
        return copy.deepcopy(self._answers[question])

    def _run(self, text: str, data: EventData, *, timezone: str, now: datetime,
             property_types: dict[str, str] | None) -> dict[str, Any]:
        try:
            ast = parse(text)
            columns = _output_columns(ast)
            printer = Printer(timezone=timezone, now=now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                              property_types=property_types or {}, database=self.database(data),
                              shift_micros=round((now - EPOCH).total_seconds() * 1_000_000))
            sql = printer.print(text)
        except HogQLError as exc:
            raise QueryFailed(str(exc)) from None
        try:
            raw = json.loads(self._query(f"{sql} SETTINGS {SETTINGS}", "JSONCompact"))
        except Exception as exc:  # chdb raises its own error type with ClickHouse's message
            raise QueryFailed(_clickhouse_message(str(exc))) from None
        types = [m["type"] for m in raw["meta"]]
        results = [[_json_value(v, t) for v, t in zip(row, types, strict=True)] for row in raw["data"]]
        return {"columns": columns, "types": [[c, t] for c, t in zip(columns, types, strict=True)],
                "results": results, "hogql": text, "clickhouse": sql, "is_cached": False, "error": None}


def _output_columns(ast: dict[str, Any]) -> list[str]:
    query = ast["initial_select_query"] if ast["node"] == "SelectSetQuery" else ast
    names = []
    for i, expr in enumerate(query.get("select") or []):
        if expr["node"] == "Alias":
            names.append(expr["alias"])
        elif expr["node"] == "Field":
            names.append(str(expr["chain"][-1]))
        else:
            names.append(f"column_{i}")
    return names


_TZ_RE = re.compile(r"DateTime(?:64)?\((?:\d+,\s*)?'([^']+)'\)")


def _json_value(value: Any, ch_type: str) -> Any:
    """A value as PostHog's API serialises it (orjson with OPT_UTC_Z): a DateTime as ISO 8601 in its timezone with
    the offset (`Z` for UTC), microseconds only when not zero; a Date as YYYY-MM-DD."""
    if value is None or not isinstance(value, str):
        return value
    match = _TZ_RE.search(ch_type)
    if match and "DateTime" in ch_type:
        moment = datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(match.group(1)))
        text = moment.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return value


def _clickhouse_message(text: str) -> str:
    text = text.strip()
    match = re.search(r"(Code: \d+\. DB::Exception: .*?)(?:\s*\(version|\Z)", text, re.S)
    return (match.group(1) if match else text).strip()[:2_000]


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def engine() -> Engine:
    """One embedded ClickHouse per test process."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
        return _ENGINE


def answer(scenario: Scenario, text: str) -> dict[str, Any]:
    """A scenario's HogQL answered by executing the query on its raw events (the stand-in's answerer)."""
    try:
        return engine().hogql(text, scenario.raw_events(), timezone=scenario.project.get("timezone") or "UTC",
                              now=scenario.now, property_types=scenario.property_types)
    except QueryFailed as exc:
        raise QueryRefused(str(exc)) from None


def warm(scenario: Scenario) -> None:
    """Parse the audit's queries and load the scenario's rows before serving: PostHog's parser holds the GIL for
    most of a second on the longest query, which would otherwise stall every other request in flight."""
    for text in audit_queries().values():
        parse(text)
    for project in (scenario, *scenario.siblings.values()):
        engine().database(project.raw_events())
