"""Shared helpers for checks: the cube and identity facts as polars frames, shares, formatting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from auditor.model import EVIDENCE_ROW_CAP, Finding, Status, Table
from auditor.queries import CUBE_COLUMNS, IDENTITY_COLUMNS, REPLAY_COLUMNS, SHORT_WINDOW_DAYS

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    import polars as pl

    from auditor.facts import Facts
else:
    from auditor.lazy import polars as pl

# Column types by name ("str" or "int"): polars types are looked up when a frame is built, not at import.
CUBE_SCHEMA: dict[str, str] = {
    name: ("str" if name in ("event", "lib", "lib_version") else "int") for name in CUBE_COLUMNS
}
IDENTITY_SCHEMA: dict[str, str] = {
    name: ("str" if name in ("kind", "key", "lib", "flag_locally_evaluated", "last_event") else "int")
    for name in IDENTITY_COLUMNS
}
REPLAY_SCHEMA: dict[str, str] = {"day": "str", "recordings": "int", "short_recordings": "int", "last_start": "str"}
SURVEY_EVENTS = ("survey shown", "survey sent", "survey dismissed")
SERVER_LIBS = ("posthog-node", "posthog-python", "posthog-ruby", "posthog-go", "posthog-php", "posthog-java",
               "posthog-dotnet", "posthog-elixir")


def frame(fact: dict[str, Any], columns: tuple[str, ...], schema: dict[str, str]) -> pl.DataFrame:
    """A HogQL result as a typed frame, built column by column (50,000 rows in milliseconds). Columns are
    found by the names the response gives, so a reordered response still lands right; numbers may arrive as
    numbers or numeric strings, and a missing count is 0."""
    rows = fact.get("rows") or []
    if not rows:
        return pl.DataFrame(schema={name: polars_type(kind) for name, kind in schema.items()})
    index = {name: i for i, name in enumerate(fact.get("columns") or columns)}
    by_column = transposed(rows)
    missing = (None,) * len(rows)
    series = []
    for name in columns:
        i = index.get(name)
        values = by_column[i] if i is not None and i < len(by_column) else missing
        series.append(_text_series(name, values) if schema[name] == "str" else _count_series(name, values))
    return pl.DataFrame(series)


def transposed(rows: list[Any]) -> list[tuple[Any, ...]]:
    """The rows' columns. Rows of one width (PostHog's always are) are transposed in C; a short row reads as
    None where it has no value."""
    widths = set(map(len, rows))
    if len(widths) == 1:
        return list(zip(*rows, strict=True))
    return [tuple(row[i] if i < len(row) else None for row in rows) for i in range(max(widths))]


def _text_series(name: str, values: tuple[Any, ...]) -> pl.Series:
    try:
        return pl.Series(name, values, dtype=pl.Utf8)  # text and None only: the usual answer
    except TypeError:
        return pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.Utf8)


def _count_series(name: str, values: tuple[Any, ...]) -> pl.Series:
    try:
        return pl.Series(name, values, dtype=pl.Int64).fill_null(0)  # whole numbers and None: the usual answer
    except TypeError:  # numeric strings, floats, or numbers beyond 64 bits
        raw = pl.Series(name, values, strict=False)
        if raw.dtype == pl.Utf8:
            raw = raw.str.strip_chars().replace("", None)
        return raw.cast(pl.Float64, strict=False).fill_null(0).cast(pl.Int64)


def frame_table(columns: list[str], df: pl.DataFrame) -> Table | None:
    """A frame as an evidence table (None when empty): only the rows shown leave polars, so 20,000 custom events
    build 50 rows, not 20,000."""
    if not df.height:
        return None
    return Table(columns=list(columns), rows=[list(r) for r in df.head(EVIDENCE_ROW_CAP).iter_rows()],
                 total_rows=df.height)


def polars_type(kind: str) -> Any:
    return pl.Utf8 if kind == "str" else pl.Int64


def cube(facts: Facts) -> pl.DataFrame:
    """The 30-day event aggregate: one row per (event, $lib, $lib_version)."""
    df: pl.DataFrame = facts.memo("cube", lambda: frame(facts.require("cube"), CUBE_COLUMNS, CUBE_SCHEMA))
    return df


def identity(facts: Facts) -> pl.DataFrame:
    df: pl.DataFrame = facts.memo("identity",
                                  lambda: frame(facts.require("identity"), IDENTITY_COLUMNS, IDENTITY_SCHEMA))
    return df


def _totals_row(facts: Facts) -> dict[str, Any] | None:
    """The identity part's one `totals` row (None when the answer has none)."""
    rows = identity(facts).filter(pl.col("kind") == "totals").to_dicts()
    return rows[0] if rows else None


def identity_totals(facts: Facts) -> dict[str, int]:
    r = _totals_row(facts)
    if r is None:
        return {"events": 0, "distinct_ids": 0, "sessions": 0, "identified_ids": 0}
    return {"events": r["events"], "distinct_ids": r["distinct_ids"], "sessions": r["sessions"],
            "identified_ids": r["extra"]}


def last_event(facts: Facts) -> datetime | None:
    """When the window's last event happened (the identity totals; None when the window has none)."""
    r = _totals_row(facts)
    if r is None or not r["events"]:
        return None
    return parse_time(r["last_event"], project_timezone(facts))


def truncation_note(facts: Facts, *names: str) -> dict[str, Any]:
    """Evidence flag for a HogQL result that hit its row limit: never silently treated as complete."""
    notes = {}
    for name in names or ("cube",):
        value = facts.get(name) or {}
        if value.get("truncated"):
            notes[f"{name}_truncated"] = f"{name} result hit its {value.get('limit')} row limit; figures are a floor"
        if str(value.get("query") or "").startswith("on its own"):
            notes[f"{name}_query"] = f"the {name} query ran {value['query']}"
        if value.get("window_days") == SHORT_WINDOW_DAYS:
            notes[f"{name}_window"] = (f"the {name} query timed out over its full window and was run over the last "
                                       f"{SHORT_WINDOW_DAYS} days: figures cover those days")
    return notes


def skip_if_unreadable(facts: Facts, name: str, what: str, missing_scope_too: bool = False) -> Finding | None:
    """For facts some PostHog versions or keys cannot serve: `skip` saying why; a real failure still raises
    (the check becomes `error`); None when the fact is there."""
    if facts.ok(name):
        return None
    reason = facts.reason(name)
    if facts.status(name) == "unavailable" or (missing_scope_too and "missing scope" in reason):
        return Finding(Status.SKIP, f"{what} cannot be read with this key or PostHog version ({reason}).", {})
    facts.require(name)  # raises: the runner reports the failure
    return None


def replay(facts: Facts) -> pl.DataFrame:
    """Recordings per day of the last 90 days (the replay HogQL fact), days in the project's timezone."""
    df: pl.DataFrame = facts.memo("replay", lambda: frame(facts.require("replay"), REPLAY_COLUMNS, REPLAY_SCHEMA))
    return df


def since(facts: Facts, days: int) -> pl.DataFrame:
    """Replay rows of the last `days` calendar days, today included. HogQL's days are the project's, so today is
    too."""
    cutoff = (today(facts) - timedelta(days=days)).isoformat()
    return replay(facts).filter(pl.col("day") > cutoff)


def records(items: Any) -> list[dict[str, Any]]:
    """The objects of a list PostHog answered (a fact already checked to be a list; anything in it that is not an
    object, which PostHog never sends, is left out rather than crashing a check)."""
    return [item for item in items or [] if isinstance(item, dict)]


def warning_counts(items: Any) -> dict[str, int]:
    """Ingestion warnings (the last 7 days' list) counted by type."""
    counts: dict[str, int] = {}
    for item in records(items):
        if item.get("type"):
            counts[item["type"]] = counts.get(item["type"], 0) + int(item.get("count") or 0)
    return counts


LEVEL_NAMES = {15: "owner", 8: "admin", 1: "member"}  # OrganizationMembership.Level


def member_last_login(member: dict[str, Any]) -> Any:
    """Newer member payloads carry last_login on the membership, older ones on the user."""
    return member.get("last_login") or (member.get("user") or {}).get("last_login")


def member_name(member: dict[str, Any]) -> str:
    user = member.get("user") or {}
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    return name or user.get("email") or "?"


def total(df: pl.DataFrame, column: str = "events") -> int:
    return int(df[column].sum()) if df.height else 0


def event_total(df: pl.DataFrame, event: str, column: str = "events") -> int:
    return total(df.filter(pl.col("event") == event), column)


def web(df: pl.DataFrame) -> pl.DataFrame:
    """posthog-js reports $lib = "web", not "posthog-js"."""
    return df.filter(pl.col("lib") == "web")


def share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def pct(x: float) -> str:
    if x == 0:
        return "0%"
    if x < 0.001:
        return "<0.1%"
    return f"{x * 100:.1f}%" if x < 0.1 else f"{x * 100:.0f}%"


def num(n: float) -> str:
    return f"{n:,.0f}"


def parse_time(value: Any, tz: tzinfo = UTC) -> datetime | None:
    """An ISO time from PostHog. HogQL gives DateTimes with the project's offset; a time without one is read in
    `tz` (the project's timezone for HogQL values, UTC for REST fields)."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def project_timezone(facts: Facts) -> tzinfo:
    """The project's timezone: HogQL dates and times are in it."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # here: ~4 ms that listing the checks need not pay

    name = (facts.get("project") or {}).get("timezone") or "UTC"
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def latest_time(values: Any, tz: tzinfo = UTC) -> datetime | None:
    """The latest of some ISO times (compared as moments: offsets differ across a DST change)."""
    moments = [m for m in (parse_time(v, tz) for v in values) if m is not None]
    return max(moments) if moments else None


def today(facts: Facts) -> date:
    """The audit's day in the project's timezone (HogQL's dates are in it)."""
    return facts.as_of.astimezone(project_timezone(facts)).date()


def within(value: Any, as_of: datetime, days: float) -> bool:
    moment = parse_time(value)
    return moment is not None and moment >= as_of - timedelta(days=days)


def date_or_never(value: Any) -> str:
    moment = value if isinstance(value, datetime) else parse_time(value)
    return moment.strftime("%Y-%m-%d") if moment else "never"


def event_mix(df: pl.DataFrame) -> dict[str, str]:
    """Shares of the events a reader of the report cares about, for evidence."""
    all_events = total(df)
    named = ("$autocapture", "$pageview", "$pageleave", "$rageclick", "$web_vitals", "$feature_flag_called",
             "$identify", "$set", "$exception")
    mix = {name: pct(share(event_total(df, name), all_events)) for name in named}
    custom = total(df.filter(~pl.col("event").str.starts_with("$") & ~pl.col("event").is_in(SURVEY_EVENTS)))
    mix["custom events"] = pct(share(custom, all_events))
    return mix
