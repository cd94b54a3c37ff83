"""The HogQL an audit runs. PostHog allows about 120 HogQL queries an hour per key, so an audit runs at most
three: the cube, the identity query and the replay query; everything else is derived locally.

Written for PostHog's printer, not for ClickHouse directly (shared/reference/hogql_semantics.md):
- an absent property is NULL, not '' (`properties.$x` is a Nullable(String) JSON extraction);
- a property compared as text (`toString(properties.$x) = 'true'`) counts the same whether or not the project
  has typed it Boolean; comparing an untyped property with `true` fails the whole query in ClickHouse;
- `$session_id` is '' (never NULL) on events without a session, so sessions are counted where it is not '';
- typed conversions (`toDate`) go on fields, never on the result of an aggregate, whose type HogQL does not
  know (`toDate(min(x))` prints as toDateOrNull, which ClickHouse refuses for a DateTime);
- dates and DateTimes come back in the project's timezone (DateTimes with their offset);
- no OFFSET: PostHog refuses it in queries made with a personal API key.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

WINDOW_DAYS = 30
SHORT_WINDOW_DAYS = 7  # what a query PostHog stopped for time runs over instead
ROW_LIMIT = 50_000  # PostHog's cap; without LIMIT it returns only 100 rows

# PostHog refuses to merge persons on these ids (nodejs/src/common/persons/person-utils.ts).
ILLEGAL_IDS_CASE_INSENSITIVE = (
    "anonymous", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email", "undefined", "true",
    "false",
)  # fmt: skip
ILLEGAL_IDS_CASE_SENSITIVE = ("[object Object]", "NaN", "None", "none", "null", "0", "undefined")

# SDK bookkeeping keys that sit in event properties without a `$` (posthog-js puts the project token and
# distinct id there; server SDKs add `locally_evaluated` to flag calls): they are not custom properties.
SDK_PLAIN_PROPERTY_KEYS = ("token", "distinct_id", "locally_evaluated", "timestamp", "uuid")

# Columns of the cube, in query order. Counts are events unless the name says otherwise.
CUBE_COLUMNS = (
    "event", "lib", "lib_version", "events", "distinct_ids", "sessions", "session_events", "events_24h", "events_7d",
    "identified", "personless", "proxied", "illegal_id_events", "test_host_events", "with_custom_properties",
    "with_groups",
)  # fmt: skip


def hogql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _in_list(values: list[str]) -> str:
    return "(" + ", ".join(hogql_string(v) for v in values) + ")"


def _quoted_variants(values: tuple[str, ...]) -> list[str]:
    return [form for v in values for form in (v, f"'{v}'", f'"{v}"')]


def illegal_id_condition(column: str = "distinct_id") -> str:
    lowered = _in_list(_quoted_variants(ILLEGAL_IDS_CASE_INSENSITIVE))
    exact = _in_list(_quoted_variants(ILLEGAL_IDS_CASE_SENSITIVE))
    # trim(x) with one argument: PostHog's 2023 parser refused the `trim(BOTH ' ' FROM x)` form.
    return f"(lower({column}) IN {lowered} OR {column} IN {exact} OR trim({column}) = '')"


TEST_HOST_PATTERN = r"^(localhost|127\.0\.0\.1)(:|$)|\.local(:|$)|staging|(^|\.)dev\."
# Sessions: `$session_id` is '' on events without one (server SDKs), and that '' must not count as a session.
SESSIONS = "uniqIf($session_id, $session_id != '')"
IS_IDENTIFIED = "toString(properties.$is_identified) = 'true'"


# ---- one query per audit ----------------------------------------------------------------------------------
#
# PostHog allows about 120 HogQL queries an hour per key, so the cube, the identity rows and the replay days travel
# in ONE query: a UNION ALL of branches that share one row layout, told apart by `kind`. The separate queries
# (run only when PostHog stops the combined one for time or refuses it) are views over the same branches, so the
# two forms cannot drift apart.
#
# The layout: kind, three text keys, thirteen counts, a date and a time. ClickHouse takes each column's name from
# the first branch and a common supertype per column (a NULL beside a Date is a Nullable(Date)).
NUMBERS = 13
UNIFIED_COLUMNS = ("kind", "k1", "k2", "k3", *(f"v{i}" for i in range(1, NUMBERS + 1)), "day", "at")
PARTS = ("cube", "identity", "replay")
# Where each part's columns sit in the layout.
LAYOUT: dict[str, dict[str, str]] = {
    "cube": {"event": "k1", "lib": "k2", "lib_version": "k3",
             **{name: f"v{i}" for i, name in enumerate(CUBE_COLUMNS[3:], 1)}},
    "identity": {"kind": "kind", "key": "k1", "lib": "k2", "flag_locally_evaluated": "k3", "events": "v1",
                 "distinct_ids": "v2", "sessions": "v3", "extra": "v4", "last_event": "at"},
    "replay": {"day": "day", "recordings": "v1", "short_recordings": "v2", "last_start": "at"},
}
IDENTITY_COLUMNS = tuple(LAYOUT["identity"])  # in query order, as the part alone returns them
REPLAY_COLUMNS = tuple(LAYOUT["replay"])


EMPTY = "''"


def _select(kind: str, keys: tuple[str, str, str], counts: list[str], day: str = "NULL", at: str = "NULL") -> str:
    """One branch's SELECT list in the shared layout (counts it does not have are 0)."""
    counts = counts + ["0"] * (NUMBERS - len(counts))
    exprs = [hogql_string(kind), *keys, *counts, day, at]
    return "SELECT " + ", ".join(f"{expr} AS {name}" for expr, name in zip(exprs, UNIFIED_COLUMNS, strict=True))


def cube_branches(window_days: int = WINDOW_DAYS) -> list[str]:
    """Events of the window by (event, $lib, $lib_version), with the counts the checks read."""
    plain_keys = _in_list(list(SDK_PLAIN_PROPERTY_KEYS))
    custom = f"arrayExists(k -> NOT startsWith(k, '$') AND k NOT IN {plain_keys}, JSONExtractKeys(properties))"
    groups = " OR ".join(f"notEmpty($group_{i})" for i in range(5))
    counts = [
        "count()",  # events
        "uniq(distinct_id)",  # distinct_ids
        SESSIONS,  # sessions
        "countIf($session_id != '')",  # session_events
        "countIf(timestamp >= now() - INTERVAL 1 DAY)",  # events_24h
        "countIf(timestamp >= now() - INTERVAL 7 DAY)",  # events_7d
        f"countIf({IS_IDENTIFIED})",  # identified
        "countIf(toString(properties.$process_person_profile) = 'false')",  # personless
        "countIf(notEmpty(toString(properties.$lib_custom_api_host)))",  # proxied
        f"countIf({illegal_id_condition()})",  # illegal_id_events
        f"countIf(match(lower(toString(properties.$host)), {hogql_string(TEST_HOST_PATTERN)}))",  # test_host_events
        f"countIf({custom})",  # with_custom_properties
        f"countIf({groups})",  # with_groups
    ]
    keys = ("event", "toString(properties.$lib)", "toString(properties.$lib_version)")
    return [f"{_select('cube', keys, counts)} FROM events "
            f"WHERE timestamp >= now() - INTERVAL {int(window_days)} DAY GROUP BY k1, k2, k3"]


def identity_branches(window_days: int = WINDOW_DAYS) -> list[str]:
    """Totals that cannot be summed from the cube (distinct ids, sessions, the time of the last event), flag calls
    by key/lib/local evaluation, the illegal distinct ids themselves, the ids seen only in flag calls, and survey
    events per survey (key = $survey_id, lib = the event).

    The last event is a total, not a figure per cube row: a time on each of 50,000 rows was a quarter of the
    answer's bytes. Over a window without events, max() gives ClickHouse's default (1970): read it only when the
    totals count events."""
    window = f"timestamp >= now() - INTERVAL {int(window_days)} DAY"
    people = ["count()", "uniq(distinct_id)", SESSIONS]
    flag = ("toString(properties.$feature_flag)", "toString(properties.$lib)", "toString(properties.locally_evaluated)")
    survey = ("toString(properties.$survey_id)", "event", EMPTY)
    flag_only = (f"FROM (SELECT distinct_id, count() AS n FROM events WHERE {window} "
                 "GROUP BY distinct_id HAVING countIf(event != '$feature_flag_called') = 0)")
    totals = _select("totals", (EMPTY,) * 3, [*people, f"uniqIf(distinct_id, {IS_IDENTIFIED})"], at="max(timestamp)")
    return [
        f"{totals} FROM events WHERE {window}",
        f"{_select('flag', flag, people)} FROM events WHERE {window} AND event = '$feature_flag_called' "
        "GROUP BY k1, k2, k3",
        f"{_select('illegal_id', ('distinct_id', EMPTY, EMPTY), ['count()', '1', SESSIONS])} "
        f"FROM events WHERE {window} AND {illegal_id_condition()} GROUP BY k1",
        f"{_select('survey', survey, people)} "
        f"FROM events WHERE {window} AND event IN ('survey shown', 'survey sent') GROUP BY k1, k2",
        f"{_select('flag_only_ids', (EMPTY,) * 3, ['sum(n)', 'count()'])} {flag_only}",
    ]


REPLAY_WINDOW_DAYS = 90  # long enough to say "stopped since <date>" rather than only "none in 30 days"
SHORT_RECORDING_MS = 5_000


def replay_branches(window_days: int = REPLAY_WINDOW_DAYS, short_ms: int = SHORT_RECORDING_MS) -> list[str]:
    """Recordings per day (by session start, in the project's timezone), with those under `short_ms` of active
    time. A recording is stored as several rows (one per ingestion batch): they are summed per session, and a
    recording with any deleted row is left out. The date is taken on the field, not on min(): HogQL does not
    know an aggregate's type and would print toDateOrNull, which ClickHouse refuses for a DateTime."""
    recordings = ("FROM (SELECT session_id, min(min_first_timestamp) AS start_time, "
                  "min(toDate(min_first_timestamp)) AS start_day, sum(active_milliseconds) AS active_ms "
                  "FROM raw_session_replay_events "
                  f"WHERE min_first_timestamp >= now() - INTERVAL {int(window_days)} DAY "
                  "GROUP BY session_id HAVING max(is_deleted) = 0)")
    counts = ["count()", f"countIf(active_ms < {int(short_ms)})"]
    return [f"{_select('replay', (EMPTY,) * 3, counts, day='start_day', at='max(start_time)')} {recordings} "
            "GROUP BY day"]


def _union(branches: list[str]) -> str:
    return "\n    UNION ALL\n    ".join(branches)


def _view(part: str, branches: list[str], order: str, limit: int) -> str:
    """A part on its own: its columns, from its branches."""
    columns = ", ".join(f"{slot} AS {name}" for name, slot in LAYOUT[part].items())
    return f"SELECT {columns} FROM (\n    {_union(branches)}\n)\nORDER BY {order}\nLIMIT {int(limit)}"


def cube_sql(window_days: int = WINDOW_DAYS, limit: int = ROW_LIMIT) -> str:
    return _view("cube", cube_branches(window_days), "events DESC", limit)


def identity_sql(window_days: int = WINDOW_DAYS, limit: int = ROW_LIMIT) -> str:
    return _view("identity", identity_branches(window_days), "events DESC", limit)


def replay_sql(window_days: int = REPLAY_WINDOW_DAYS, short_ms: int = SHORT_RECORDING_MS) -> str:
    return _view("replay", replay_branches(window_days, short_ms), "day", 1000)


# Each part alone (what runs when PostHog stops the combined query), and the window it covers.
PART_QUERIES: dict[str, tuple[Callable[[int], str], int]] = {
    "cube": (cube_sql, WINDOW_DAYS),
    "identity": (identity_sql, WINDOW_DAYS),
    "replay": (replay_sql, REPLAY_WINDOW_DAYS),
}


def combined_sql(window_days: int = WINDOW_DAYS, replay_window_days: int = REPLAY_WINDOW_DAYS,
                 limit: int = ROW_LIMIT) -> str:
    """The cube, the identity rows and the replay days in one query. The small parts come first and the cube's
    rows by volume, so if the row limit is reached only the cube's smallest rows are cut."""
    branches = cube_branches(window_days) + identity_branches(window_days) + replay_branches(replay_window_days)
    columns = ", ".join(UNIFIED_COLUMNS)
    return f"SELECT {columns} FROM (\n    {_union(branches)}\n)\nORDER BY kind = 'cube', v1 DESC, kind, k1\n" \
           f"LIMIT {int(limit)}"


def split_combined(columns: list[str], rows: list[list[Any]]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The combined answer as each part would have come alone: {part: (its columns, its rows)}. Columns are found
    by name, so a response that reorders them still lands right."""
    index = {name: i for i, name in enumerate(columns)}
    missing = [c for c in UNIFIED_COLUMNS if c not in index]
    if missing:
        raise ValueError(f"the combined query's answer lacks columns {missing}")
    out: dict[str, tuple[list[str], list[list[Any]]]] = {part: (list(LAYOUT[part]), []) for part in PARTS}
    # Each part's positions in a row, and an itemgetter to take them: 50,000 rows split in milliseconds.
    take = {part: operator.itemgetter(*(index[slot] for slot in LAYOUT[part].values())) for part in PARTS}
    kind_at = index["kind"]
    for row in rows:
        kind = row[kind_at]
        part = kind if kind in ("cube", "replay") else "identity"  # identity rows carry their own kinds
        out[part][1].append(list(take[part](row)))
    return out


def audit_queries(window_days: int = WINDOW_DAYS, replay_window_days: int = REPLAY_WINDOW_DAYS) -> dict[str, str]:
    """The text of every query an audit sends when PostHog answers it (the demo keeps precomputed answers)."""
    return {"combined": combined_sql(window_days, replay_window_days)}
