"""Data warehouse checks: sources sync, large tables sync incrementally, and the data is modelled and joined."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from auditor.model import Finding, Severity, Status, Table, check
from checks import impact as pricing
from checks.common import date_or_never, num, parse_time, records
from checks.impact import ROWS_SYNCED, Charge
from checks.links import source_links

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    from auditor.facts import Facts

DOCS = "https://posthog.com/docs/data-warehouse"
# The API reports BillingLimitReached / BillingLimitTooLow as these strings; fixtures also show "Error".
BROKEN_STATUSES = {"failed", "error", "billing limits", "billing limits too low", "billinglimitreached",
                   "billinglimittoolow"}
FREQUENCY_HOURS = {"1min": 1 / 60, "5min": 5 / 60, "15min": 0.25, "30min": 0.5, "1hour": 1, "6hour": 6,
                   "12hour": 12, "24hour": 24, "7day": 168, "30day": 720}
# Column names that usually make a good incremental (or append) field when a table is on full refresh.
INCREMENTAL_CANDIDATES = ("updated_at", "updated", "modified_at", "last_modified", "created_at", "created",
                          "inserted_at", "timestamp")


def sources(facts: Facts) -> list[dict[str, Any]]:
    return records(facts.require("warehouse_sources"))


def full_schemas(facts: Facts) -> dict[str, dict[str, Any]]:
    """Schemas in full by id (`external_data_schemas/`): the source list trims away sync_frequency,
    incremental_field and the table's columns. Empty when that list could not be read."""
    return {str(s["id"]): s for s in records(facts.get("warehouse_schemas")) if s.get("id")}


def syncing_schemas(facts: Facts) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(source, schema) for every schema that syncs, the schema as complete as PostHog tells it: the list's
    fields, with the full record's over them (older PostHog embedded full schemas in the list itself)."""
    full = full_schemas(facts)
    return [(src, {**sch, **full.get(str(sch.get("id")), {})}) for src in sources(facts)
            for sch in src.get("schemas") or [] if isinstance(sch, dict) and sch.get("should_sync")]


def not_in_full(facts: Facts, schemas: list[tuple[dict[str, Any], dict[str, Any]]], needed: str) -> Finding | None:
    """An error naming the schemas whose `needed` field PostHog did not give: never judged as if it were fine."""
    missing = [label(src, sch) for src, sch in schemas if needed not in sch]
    if not missing:
        return None
    why = f" ({facts.reason('warehouse_schemas')})" if not facts.ok("warehouse_schemas") else ""
    return Finding(Status.ERROR, f"{needed} unknown for {len(missing)} schema(s) ({', '.join(missing[:3])}): "
                   f"external_data_schemas/ did not give them{why}.", {"schemas_not_judged": len(missing)})


def label(source: dict[str, Any], schema: dict[str, Any]) -> str:
    return f"{source.get('source_type') or 'source'} · {schema.get('name')}"


def rows_per_sync(schema: dict[str, Any], jobs: list[dict[str, Any]]) -> int | None:
    """Mean rows of this schema's recent completed jobs, else the table's row count (a full refresh re-reads
    it all)."""
    mine = [int(j.get("rows_synced") or 0) for j in jobs
            if _job_schema(j) == schema.get("id") and str(j.get("status", "")).lower() == "completed"]
    if mine:
        return sum(mine) // len(mine)
    count = (schema.get("table") or {}).get("row_count")
    return int(count) if count is not None else None


def _job_schema(job: dict[str, Any]) -> Any:
    schema = job.get("schema")
    return schema.get("id") if isinstance(schema, dict) else schema


def incremental_candidate(schema: dict[str, Any]) -> str | None:
    if schema.get("incremental_field"):
        return str(schema["incremental_field"])
    columns = {str(c.get("name") or c.get("key")): str(c.get("type") or "")
               for c in (schema.get("table") or {}).get("columns") or [] if isinstance(c, dict)}
    for name in INCREMENTAL_CANDIDATES:
        if name in columns:
            return name
    return None


def syncs_per_month(frequency: str | None) -> float | None:
    hours = FREQUENCY_HOURS.get(frequency or "")
    return 30 * 24 / hours if hours else None


@check(
    id="data_warehouse.sources-healthy",
    title="Sources are connected and syncing",
    failure_title="Warehouse sources are failing",
    description="Warehouse data is only useful when it is fresh: a failed or billing-limited schema silently "
    "serves stale tables to every query and dashboard built on it.",
    severity=Severity.BLOCKER,
    docs_url=f"{DOCS}/setup",
    requires=("warehouse_sources",),
    uses=("warehouse_schemas",),
)
def sources_healthy(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    srcs = sources(facts)
    if not srcs:
        return Finding(Status.FAIL, "No warehouse source is connected.", {"sources": 0},
                       remediation="Connect the sources the customer needs (Stripe, Postgres, Hubspot…) under "
                       "Data pipeline → Sources.")
    schemas = syncing_schemas(facts)
    broken, late, unknown, troubled = [], [], [], []
    for src, sch in schemas:
        status = str(sch.get("status") or "")
        if status.lower() in BROKEN_STATUSES:
            error = (sch.get("latest_error") or "")[:200]
            broken.append([label(src, sch), status, error, date_or_never(sch.get("last_synced_at"))])
            troubled.append(src)
            continue
        if "sync_frequency" not in sch:
            unknown.append((src, sch))  # whether it is late cannot be told without its frequency
            continue
        hours = FREQUENCY_HOURS.get(sch.get("sync_frequency") or "")
        last = parse_time(sch.get("last_synced_at"))
        overdue = last is None or last < facts.as_of - timedelta(hours=2 * hours) if hours else False
        if overdue and status.lower() != "paused":
            late.append([label(src, sch), f"late (syncs every {sch.get('sync_frequency')})", "",
                         date_or_never(sch.get("last_synced_at"))])
            troubled.append(src)
    metrics = {"sources": len(srcs), "syncing_schemas": len(schemas), "broken": len(broken), "late": len(late)}
    table = Table.of(["schema", "status", "latest error", "last synced"], broken + late) if broken or late else None
    not_judged = not_in_full(facts, unknown, "sync_frequency")
    if not_judged and not broken:
        return not_judged
    if broken or late:
        return Finding(Status.FAIL, f"{len(broken)} schema(s) failing or billing-limited and {len(late)} behind "
                       f"schedule, of {len(schemas)} syncing.", metrics, table,
                       "Open each schema under Data pipeline → Sources, fix the error (credentials, permissions, "
                       "a raised billing limit) and resync.", links=source_links(facts, troubled))
    return Finding(Status.PASS, f"{len(srcs)} source(s), {len(schemas)} schema(s) syncing on schedule.", metrics)


@check(
    id="data_warehouse.full-refresh-on-large-tables",
    title="Large tables sync incrementally",
    failure_title="Large tables are re-synced in full",
    description="A full refresh re-reads (and bills) every row of a table on every sync. On large tables an "
    "incremental or append-only sync costs a fraction.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/cutting-costs",
    requires=("warehouse_sources",),
    uses=("warehouse_jobs", "warehouse_schemas", "billing"),
    thresholds={"large_rows": 1_000_000, "huge_rows": 10_000_000},
)
def full_refresh_large(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    jobs_by_source = facts.get("warehouse_jobs") or {}
    schemas = syncing_schemas(facts)
    full = [(src, sch) for src, sch in schemas if sch.get("sync_type") == "full_refresh"]
    if not full:
        return Finding(Status.PASS if schemas else Status.SKIP,
                       "No schema syncs with full refresh." if schemas else "No syncing schemas.", {})
    unknown = not_in_full(facts, full, "sync_frequency")  # no frequency: no full record, no incremental field
    if unknown:
        return unknown
    rows: list[list[Any]] = []
    failing, listed, resynced = False, [], 0
    for src, sch in full:
        per_sync = rows_per_sync(sch, jobs_by_source.get(str(src.get("id"))) or [])
        if per_sync is None or per_sync <= thresholds["large_rows"]:
            continue
        per_month = syncs_per_month(sch.get("sync_frequency"))
        candidate = incremental_candidate(sch)
        failing = failing or candidate is not None or per_sync > thresholds["huge_rows"]
        rows.append([label(src, sch), per_sync, sch.get("sync_frequency"),
                     int(per_sync * per_month) if per_month else None, candidate or "none found"])
        listed.append(src)
        if candidate and per_month:
            resynced += int(per_sync * per_month)
    metrics = {"full_refresh_schemas": len(full), "large_full_refresh": len(rows),
               "rows_source": "recent jobs" if jobs_by_source else "table row counts"}
    if not rows:
        return Finding(Status.PASS, f"{len(full)} full-refresh schema(s), none over "
                       f"{num(thresholds['large_rows'])} rows per sync.", metrics)
    rows.sort(key=lambda r: -(r[3] or r[1]))
    table = Table.of(["schema", "rows per sync", "frequency", "rows per month", "incremental field"], rows)
    total_month = sum(r[3] or 0 for r in rows)
    summary = f"{len(rows)} large table(s) on full refresh re-sync about {num(total_month)} rows a month."
    fix = ("Switch these schemas to incremental (or append-only) sync on the field named, under Data pipeline → "
           "Sources → schema → Sync method; where no field exists, sync less often.")
    # Rows re-read by full refreshes of tables that could sync incrementally. An incremental sync still reads the
    # new and changed rows, which the API does not tell: the saving is up to this, and the basis says so.
    charge = Charge(ROWS_SYNCED, resynced, "rows", "re-synced in full from tables with an incremental field")
    cost = pricing.impact(facts, [charge], pricing.key(facts, "warehouse-full-refresh"),
                          caveat="an incremental sync would still read the new and changed rows (not measured), "
                          "so the saving is up to this")
    return Finding(Status.FAIL if failing else Status.WARN, summary, metrics, table, fix,
                   links=source_links(facts, listed), impact=cost)


@check(
    id="data_warehouse.sync-frequency",
    title="Full refreshes are not run needlessly often",
    failure_title="Full refreshes run more than daily",
    description="Every full refresh re-bills the whole table: syncing a full-refresh table every few hours "
    "multiplies cost for data that rarely needs to be that fresh.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/cutting-costs",
    requires=("warehouse_sources",),
    uses=("warehouse_schemas",),
    thresholds={"min_hours": 24},
)
def sync_frequency(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    full = [(src, sch) for src, sch in syncing_schemas(facts) if sch.get("sync_type") == "full_refresh"]
    if not full:
        return Finding(Status.SKIP, "No schema syncs with full refresh.", {})
    unknown = not_in_full(facts, full, "sync_frequency")
    if unknown:
        return unknown
    frequent = [(src, sch) for src, sch in full
                if FREQUENCY_HOURS.get(sch.get("sync_frequency") or "", 1e9) < thresholds["min_hours"]]
    often = [[label(src, sch), sch.get("sync_frequency")] for src, sch in frequent]
    metrics = {"full_refresh_schemas": len(full), "more_than_daily": len(often)}
    if not often:
        return Finding(Status.PASS, f"{len(full)} full-refresh schema(s), none more often than daily.", metrics)
    return Finding(Status.WARN, f"{len(often)} full-refresh schema(s) sync more often than every "
                   f"{thresholds['min_hours']} h.", metrics, Table.of(["schema", "frequency"], often),
                   "Sync full-refresh tables daily (or weekly) unless the customer needs fresher data; better, "
                   "switch them to incremental.", links=source_links(facts, [src for src, _ in frequent]))


@check(
    id="data_warehouse.views-and-joins",
    title="SQL views and person joins are used",
    failure_title="Warehouse data is not modelled",
    description="Training proxy: saved views and joins to persons show the team can query warehouse data "
    "alongside product data rather than just landing tables.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/join",
    requires=("saved_queries", "view_links"),
)
def views_and_joins(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    views = [v for v in facts.require("saved_queries") if isinstance(v, dict) and not v.get("deleted")]
    links = [link for link in facts.require("view_links") if isinstance(link, dict) and not link.get("deleted")]
    person_joins = [link for link in links
                    if "persons" in (link.get("source_table_name"), link.get("joining_table_name"))]
    metrics = {"saved_views": len(views), "joins": len(links), "joins_to_persons": len(person_joins)}
    fix = "Save the SQL the team reuses as views, and join warehouse tables to persons (e.g. Stripe customer " \
          "email → person email) under Data warehouse → Joins."
    if views and person_joins:
        return Finding(Status.PASS, f"{len(views)} saved view(s) and {len(person_joins)} join(s) to persons.", metrics)
    if views or person_joins:
        return Finding(Status.WARN, f"{len(views)} saved view(s), {len(person_joins)} join(s) to persons.", metrics,
                       remediation=fix)
    return Finding(Status.FAIL, "No saved views and no joins to persons.", metrics, remediation=fix)


CHECKS = (sources_healthy, full_refresh_large, sync_frequency, views_and_joins)
