"""The auditor's HogQL as PostHog would run it: parsed by PostHog's own parser, printed into ClickHouse SQL by
PostHog's printing rules (shared/reference/hogql_semantics.md), for execution on embedded ClickHouse.

What the printer models, each rule from PostHog's source (repo PostHog/posthog):
- `properties.$x` is a JSON extraction of the String blob, a Nullable(String): absent → NULL
  (posthog/hogql/printer.py); typed by the project's property definitions
  (posthog/hogql/transforms/property_types.py `_field_type_to_property_call`: Numeric → toFloat,
  Boolean → toBool(transform(toString(…), ['true','false'], [1,0], NULL)), DateTime → parsed).
- DateTime fields are wrapped in toTimeZone(field, project timezone); `now()` is the clock in that timezone.
- `toDate(x)` prints as toDate only when x is known to be a Date or DateTime, else as toDateOrNull
  (posthog/hogql/functions/clickhouse/conversions.py `overloads`); aggregates such as min/max carry no return
  type (posthog/hogql/functions/aggregations.py), so neither do subquery columns built on them.
- `$session_id` and `$group_0…4` are materialized columns of events; events without a session have ''.
- A top-level LIMIT is capped at 50,000 (MAX_SELECT_RETURNED_ROWS); a SELECT without LIMIT returns 100 rows.
- Only functions PostHog exposes are printed; any other is refused, as PostHog refuses it.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

MAX_SELECT_RETURNED_ROWS = 50_000  # posthog/hogql/constants.py
DEFAULT_RETURNED_ROWS = 100

DATETIME, DATE, STRING, INTEGER, FLOAT, BOOLEAN, ARRAY = "DateTime", "Date", "String", "Integer", "Float", \
    "Boolean", "Array"

# PostHog's table layout (posthog/hogql/database/schema/events.py, session_replay_events.py): HogQL field → type.
TABLES: dict[str, dict[str, str]] = {
    "events": {
        "uuid": STRING, "event": STRING, "properties": STRING, "timestamp": DATETIME, "distinct_id": STRING,
        "elements_chain": STRING, "created_at": DATETIME, "$session_id": STRING, "$window_id": STRING,
        "person_id": STRING, **{f"$group_{i}": STRING for i in range(5)},
    },
    "raw_session_replay_events": {
        "session_id": STRING, "distinct_id": STRING, "min_first_timestamp": DATETIME,
        "max_last_timestamp": DATETIME, "first_url": STRING, "click_count": INTEGER, "keypress_count": INTEGER,
        "mouse_activity_count": INTEGER, "active_milliseconds": INTEGER, "console_log_count": INTEGER,
        "console_warn_count": INTEGER, "console_error_count": INTEGER, "size": INTEGER, "event_count": INTEGER,
        "message_count": INTEGER, "snapshot_source": STRING, "is_deleted": INTEGER,
    },
}

# Functions PostHog's HogQL exposes (posthog/hogql/functions/), with the return type where one is known.
# None: no signature (aggregates), so the printer knows nothing of the result's type.
FUNCTIONS: dict[str, str | None] = {
    # aggregations.py
    "count": INTEGER, "countIf": INTEGER, "uniq": INTEGER, "uniqIf": INTEGER, "uniqExact": INTEGER,
    "min": None, "max": None, "sum": None, "sumIf": None, "minIf": None, "maxIf": None, "any": None,
    "argMax": None, "argMin": None, "avg": None, "groupArray": ARRAY,
    # clickhouse/conversions.py, datetime.py
    "toString": STRING, "toDate": DATE, "toInt": INTEGER, "toFloat": FLOAT, "toTimeZone": DATETIME,
    "now": DATETIME, "toIntervalDay": None, "toIntervalHour": None, "dateDiff": INTEGER, "toBool": BOOLEAN,
    # clickhouse/strings.py, json.py, arrays.py, core
    "lower": STRING, "upper": STRING, "trim": STRING, "match": BOOLEAN, "startsWith": BOOLEAN,
    "endsWith": BOOLEAN, "notEmpty": BOOLEAN, "empty": BOOLEAN, "JSONExtractKeys": ARRAY,
    "JSONExtractRaw": STRING, "replaceRegexpAll": STRING, "arrayExists": BOOLEAN, "length": INTEGER,
    "coalesce": None, "ifNull": None, "if": None, "multiIf": None, "isNull": BOOLEAN, "isNotNull": BOOLEAN,
    "round": FLOAT, "greatest": None, "least": None, "transform": None,
}
COMPARE_OPS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "in": "IN",
               "not in": "NOT IN", "like": "LIKE", "not like": "NOT LIKE", "ilike": "ILIKE", "not ilike": "NOT ILIKE"}


class HogQLError(Exception):
    """A query PostHog would refuse before running it (syntax, unknown function or table)."""


def _parser() -> Any:
    """PostHog's own HogQL parser (PyPI `hogql-parser`). Its extension imports PostHog's `posthog.hogql` error
    classes when loaded; the JSON entry points used here never raise them, so empty stand-ins satisfy the import
    (the `posthog` package installed here is PostHog's SDK, not PostHog itself)."""
    for name in ("posthog.hogql", "posthog.hogql.errors", "posthog.hogql.ast", "posthog.hogql.base"):
        sys.modules.setdefault(name, types.ModuleType(name))
    errors = sys.modules["posthog.hogql.errors"]
    for name in ("BaseHogQLError", "SyntaxError", "NotImplementedError", "ParsingError", "ExposedHogQLError",
                 "InternalHogQLError", "QueryError"):
        if not hasattr(errors, name):
            setattr(errors, name, type(name, (Exception,), {}))
    import hogql_parser

    return hogql_parser


def parse(text: str) -> dict[str, Any]:
    """The JSON AST PostHog's parser gives, or HogQLError with the parser's message."""
    ast = json.loads(_parse_json(text))
    if ast.get("error"):
        raise HogQLError(f"Syntax error: {ast.get('message') or ast}")
    return ast


@lru_cache(maxsize=256)
def _parse_json(text: str) -> str:
    """PostHog's parser takes most of a second on the audit's longest query: parse each text once."""
    return str(_parser().parse_select_json(text, is_internal=True))


def ch_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ch_identifier(name: str) -> str:
    return name if name.replace("_", "a").isalnum() and not name[0].isdigit() else "`" + name.replace("`", "") + "`"


@dataclass
class Scope:
    """What a SELECT can name: its table's fields, its own aliases, and the columns of a subquery."""

    table: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)  # subquery column → type
    aliases: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Printer:
    timezone: str  # the project's timezone
    now: str  # the clock, as 'YYYY-MM-DD hh:mm:ss.ffffff' in UTC
    property_types: Mapping[str, str] = field(default_factory=dict)  # property name → Numeric|Boolean|DateTime
    database: str = "posthog"
    physical: Mapping[str, str] = field(default_factory=lambda: {"events": "events",
                                                                  "raw_session_replay_events": "session_replay"})
    # Every DateTime field is printed shifted by this much (the stand-in keeps its rows on a fixed epoch).
    shift_micros: int = 0

    def print(self, text: str) -> str:
        ast = parse(text)
        sql, _ = self.select(ast, top_level=True)
        return sql

    # ---- queries ------------------------------------------------------------------------------------------

    def select(self, node: dict[str, Any], top_level: bool = False) -> tuple[str, dict[str, str | None]]:
        """A SELECT or UNION ALL; returns the SQL and its output columns with their types."""
        if node["node"] == "SelectSetQuery":
            first, columns = self.select(node["initial_select_query"])
            parts = [first]
            for item in node.get("subsequent_select_queries") or []:
                op = item.get("set_operator") or "UNION ALL"
                sql, _ = self.select(item["select_query"])
                parts.append(f"{op} {sql}")
            return " ".join(parts), columns
        if node["node"] != "SelectQuery":
            raise HogQLError(f"unsupported query node {node['node']}")
        scope = Scope()
        from_sql = ""
        join = node.get("select_from")
        if join:
            if join.get("next_join"):
                raise HogQLError("joins are not modelled by this printer")
            table = join["table"]
            if table["node"] == "Field":
                name = ".".join(table["chain"])
                if name not in TABLES:
                    raise HogQLError(f"Unknown table `{name}`.")
                scope.table = name
                from_sql = f" FROM {self.database}.{self.physical[name]} AS {name}"
            else:
                sub_sql, scope.columns = self.select(table)
                from_sql = f" FROM ({sub_sql})" + (f" AS {ch_identifier(join['alias'])}" if join.get("alias") else "")
        items, columns = [], {}
        for i, expr in enumerate(node.get("select") or []):
            sql, kind = self.expr(expr, scope)
            name = expr.get("alias") if expr["node"] == "Alias" else \
                (expr["chain"][-1] if expr["node"] == "Field" else f"_{i}")
            items.append(sql)
            columns[str(name)] = kind
            if expr["node"] == "Alias":
                scope.aliases[expr["alias"]] = kind
        sql = "SELECT " + ("DISTINCT " if node.get("distinct") else "") + ", ".join(items) + from_sql
        if node.get("where"):
            sql += f" WHERE {self.expr(node['where'], scope)[0]}"
        if node.get("group_by"):
            sql += " GROUP BY " + ", ".join(self.expr(e, scope)[0] for e in node["group_by"])
        if node.get("having"):
            sql += f" HAVING {self.expr(node['having'], scope)[0]}"
        if node.get("order_by"):
            sql += " ORDER BY " + ", ".join(f"{self.expr(o['expr'], scope)[0]} {o.get('order') or 'ASC'}"
                                            for o in node["order_by"])
        limit = node.get("limit")
        if top_level:
            wanted = DEFAULT_RETURNED_ROWS if limit is None else int(limit["value"])
            sql += f" LIMIT {min(wanted, MAX_SELECT_RETURNED_ROWS)}"
        elif limit is not None:
            sql += f" LIMIT {int(limit['value'])}"
        return sql, columns

    # ---- expressions --------------------------------------------------------------------------------------

    def expr(self, node: dict[str, Any], scope: Scope) -> tuple[str, str | None]:
        kind = node["node"]
        if kind == "Alias":
            sql, t = self.expr(node["expr"], scope)
            return f"{sql} AS {ch_identifier(node['alias'])}", t
        if kind == "Constant":
            return self.constant(node["value"])
        if kind == "Field":
            return self.field(node["chain"], scope)
        if kind == "Call":
            return self.call(node, scope)
        if kind == "CompareOperation":
            left, _ = self.expr(node["left"], scope)
            right, _ = self.expr(node["right"], scope)
            return f"({left} {COMPARE_OPS[node['op']]} {right})", BOOLEAN
        if kind == "ArithmeticOperation":
            left, lt = self.expr(node["left"], scope)
            right, _ = self.expr(node["right"], scope)
            return f"({left} {node['op']} {right})", lt if lt in (DATETIME, DATE) else None
        if kind in ("And", "Or"):
            joiner = " AND " if kind == "And" else " OR "
            return "(" + joiner.join(self.expr(e, scope)[0] for e in node["exprs"]) + ")", BOOLEAN
        if kind == "Not":
            return f"(NOT {self.expr(node['expr'], scope)[0]})", BOOLEAN
        if kind in ("Tuple", "Array"):
            inner = ", ".join(self.expr(e, scope)[0] for e in node["exprs"])
            return (f"({inner})" if kind == "Tuple" else f"[{inner}]"), None
        if kind == "Lambda":
            names = list(node["args"])
            inner = Scope(scope.table, scope.columns, {**scope.aliases, **{n: STRING for n in names}})
            body, _ = self.expr(node["expr"], inner)
            return f"(({', '.join(names)}) -> {body})", None
        if kind == "SelectQuery" or kind == "SelectSetQuery":
            sql, _ = self.select(node)
            return f"({sql})", None
        raise HogQLError(f"unsupported expression {kind}")

    def constant(self, value: Any) -> tuple[str, str | None]:
        if value is None:
            return "NULL", None
        if isinstance(value, bool):
            return ("true" if value else "false"), BOOLEAN
        if isinstance(value, int):
            return str(value), INTEGER
        if isinstance(value, float):
            return repr(value), FLOAT
        if isinstance(value, list):
            return "[" + ", ".join(self.constant(v)[0] for v in value) + "]", ARRAY
        return ch_string(str(value)), STRING

    def field(self, chain: list[Any], scope: Scope) -> tuple[str, str | None]:
        name = str(chain[0])
        if len(chain) == 1 and name in scope.aliases:
            return ch_identifier(name), scope.aliases[name]
        if scope.table is None:
            if len(chain) == 1 and name in scope.columns:
                return ch_identifier(name), scope.columns[name]
            raise HogQLError(f"Unable to resolve field: {name}")
        fields = TABLES[scope.table]
        if name == "properties" and len(chain) == 2 and scope.table == "events":
            return self.property(str(chain[1]))
        if len(chain) != 1 or name not in fields:
            raise HogQLError(f"Unable to resolve field: {'.'.join(map(str, chain))}")
        column = f"{scope.table}.{ch_identifier(name)}"
        if fields[name] == DATETIME:
            if self.shift_micros:
                column = f"({column} + toIntervalMicrosecond({int(self.shift_micros)}))"
            return f"toTimeZone({column}, {ch_string(self.timezone)})", DATETIME
        return column, fields[name]

    def property(self, name: str) -> tuple[str, str | None]:
        raw = (f"replaceRegexpAll(nullIf(nullIf(JSONExtractRaw(events.properties, {ch_string(name)}), ''), "
               f"'null'), '^\"|\"$', '')")
        typed = self.property_types.get(name)
        if typed == "Numeric":
            return f"toFloat64OrNull({raw})", FLOAT
        if typed == "Boolean":
            return f"toBool(transform(toString({raw}), ['true', 'false'], [1, 0], NULL))", BOOLEAN
        if typed == "DateTime":
            return f"parseDateTime64BestEffortOrNull({raw}, 6, {ch_string(self.timezone)})", DATETIME
        return raw, STRING  # untyped or String; any other type name behaves as PostHog's String

    def call(self, node: dict[str, Any], scope: Scope) -> tuple[str, str | None]:
        name = node["name"]
        if name == "NOT":  # `NOT (x)` parses as a call
            return f"(NOT {self.expr(node['args'][0], scope)[0]})", BOOLEAN
        if name not in FUNCTIONS:
            raise HogQLError(f"Unsupported function call '{name}(...)'")
        args = [self.expr(a, scope) for a in node.get("args") or []]
        sqls = [a[0] for a in args]
        if name == "now":
            # The clock, in the project's timezone: PostHog prints now64(6, tz).
            return f"toTimeZone(toDateTime64({ch_string(self.now)}, 6, 'UTC'), {ch_string(self.timezone)})", DATETIME
        if name == "toDate":
            if args and args[0][1] in (DATETIME, DATE):
                return f"toDate({sqls[0]})", DATE
            return f"toDateOrNull({sqls[0]})", DATE
        if name == "toFloat":
            return f"toFloat64OrNull({sqls[0]})", FLOAT
        if name == "toInt":
            return f"toInt64OrNull({sqls[0]})", INTEGER
        distinct = "DISTINCT " if node.get("distinct") else ""
        return f"{name}({distinct}{', '.join(sqls)})", FUNCTIONS[name]
