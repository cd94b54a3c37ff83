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

WINDOW_DAYS = 30
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
    "with_groups", "last_seen",
)  # fmt: skip
IDENTITY_COLUMNS = ("kind", "key", "lib", "flag_locally_evaluated", "events", "distinct_ids", "sessions", "extra")


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


def is_illegal_distinct_id(value: str) -> bool:
    """The same rule in Python, for scenario data and tests."""
    if value.strip(" ") == "":
        return True
    return value.lower() in _quoted_variants(ILLEGAL_IDS_CASE_INSENSITIVE) or value in _quoted_variants(
        ILLEGAL_IDS_CASE_SENSITIVE
    )


TEST_HOST_PATTERN = r"^(localhost|127\.0\.0\.1)(:|$)|\.local(:|$)|staging|(^|\.)dev\."
# Sessions: `$session_id` is '' on events without one (server SDKs), and that '' must not count as a session.
SESSIONS = "uniqIf($session_id, $session_id != '')"
IS_IDENTIFIED = "toString(properties.$is_identified) = 'true'"


def cube_sql(window_days: int = WINDOW_DAYS, limit: int = ROW_LIMIT) -> str:
    plain_keys = _in_list(list(SDK_PLAIN_PROPERTY_KEYS))
    return f"""
SELECT
    event,
    toString(properties.$lib) AS lib,
    toString(properties.$lib_version) AS lib_version,
    count() AS events,
    uniq(distinct_id) AS distinct_ids,
    {SESSIONS} AS sessions,
    countIf($session_id != '') AS session_events,
    countIf(timestamp >= now() - INTERVAL 1 DAY) AS events_24h,
    countIf(timestamp >= now() - INTERVAL 7 DAY) AS events_7d,
    countIf({IS_IDENTIFIED}) AS identified,
    countIf(toString(properties.$process_person_profile) = 'false') AS personless,
    countIf(notEmpty(toString(properties.$lib_custom_api_host))) AS proxied,
    countIf({illegal_id_condition()}) AS illegal_id_events,
    countIf(match(lower(toString(properties.$host)), {hogql_string(TEST_HOST_PATTERN)})) AS test_host_events,
    countIf(arrayExists(k -> NOT startsWith(k, '$') AND k NOT IN {plain_keys},
        JSONExtractKeys(properties))) AS with_custom_properties,
    countIf(notEmpty($group_0) OR notEmpty($group_1) OR notEmpty($group_2) OR notEmpty($group_3)
        OR notEmpty($group_4)) AS with_groups,
    max(timestamp) AS last_seen
FROM events
WHERE timestamp >= now() - INTERVAL {int(window_days)} DAY
GROUP BY event, lib, lib_version
ORDER BY events DESC
LIMIT {int(limit)}
""".strip()


def identity_sql(window_days: int = WINDOW_DAYS, limit: int = ROW_LIMIT) -> str:
    """Totals that cannot be summed from the cube (distinct ids, sessions), flag calls by key/lib/local
    evaluation, the illegal distinct ids themselves, the ids seen only in flag calls, and survey events per
    survey (key = $survey_id, lib = the event)."""
    window = f"timestamp >= now() - INTERVAL {int(window_days)} DAY"
    return f"""
SELECT kind, key, lib, flag_locally_evaluated, events, distinct_ids, sessions, extra FROM (
    SELECT 'totals' AS kind, '' AS key, '' AS lib, '' AS flag_locally_evaluated,
        count() AS events, uniq(distinct_id) AS distinct_ids, {SESSIONS} AS sessions,
        uniqIf(distinct_id, {IS_IDENTIFIED}) AS extra
    FROM events WHERE {window}
    UNION ALL
    SELECT 'flag', toString(properties.$feature_flag), toString(properties.$lib),
        toString(properties.locally_evaluated), count(), uniq(distinct_id), {SESSIONS}, 0
    FROM events WHERE {window} AND event = '$feature_flag_called'
    GROUP BY toString(properties.$feature_flag), toString(properties.$lib), toString(properties.locally_evaluated)
    UNION ALL
    SELECT 'illegal_id', distinct_id, '', '', count(), 1, {SESSIONS}, 0
    FROM events WHERE {window} AND {illegal_id_condition()}
    GROUP BY distinct_id
    UNION ALL
    SELECT 'survey', toString(properties.$survey_id), event, '', count(), uniq(distinct_id), {SESSIONS}, 0
    FROM events WHERE {window} AND event IN ('survey shown', 'survey sent')
    GROUP BY toString(properties.$survey_id), event
    UNION ALL
    SELECT 'flag_only_ids', '', '', '', sum(n), count(), 0, 0
    FROM (SELECT distinct_id, count() AS n FROM events WHERE {window}
          GROUP BY distinct_id HAVING countIf(event != '$feature_flag_called') = 0)
)
ORDER BY events DESC
LIMIT {int(limit)}
""".strip()


REPLAY_COLUMNS = ("day", "recordings", "short_recordings", "last_start")
REPLAY_WINDOW_DAYS = 90  # long enough to say "stopped since <date>" rather than only "none in 30 days"


def replay_sql(window_days: int = REPLAY_WINDOW_DAYS, short_ms: int = 5_000) -> str:
    """Recordings per day (by session start, in the project's timezone), with those under `short_ms` of active
    time. A recording is stored as several rows (one per ingestion batch): they are summed per session, and a
    recording with any deleted row is left out."""
    return f"""
SELECT day, recordings, short_recordings, last_start FROM (
    SELECT start_day AS day, count() AS recordings,
        countIf(active_ms < {int(short_ms)}) AS short_recordings, max(start_time) AS last_start
    FROM (
        SELECT session_id, min(min_first_timestamp) AS start_time, min(toDate(min_first_timestamp)) AS start_day,
            sum(active_milliseconds) AS active_ms
        FROM raw_session_replay_events
        WHERE min_first_timestamp >= now() - INTERVAL {int(window_days)} DAY
        GROUP BY session_id
        HAVING max(is_deleted) = 0
    )
    GROUP BY day
)
ORDER BY day
LIMIT 1000
""".strip()


def audit_queries(window_days: int = WINDOW_DAYS, replay_window_days: int = REPLAY_WINDOW_DAYS) -> dict[str, str]:
    """The text of every query an audit sends, by fact (the demo keeps precomputed answers to these)."""
    return {"cube": cube_sql(window_days), "identity": identity_sql(window_days),
            "replay": replay_sql(replay_window_days)}
