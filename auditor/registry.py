"""Which checks exist: the built-in tuple in `checks/`, plus third-party checks registered under the
entry-point group `posthog_auditor.checks` (an entry point names a Check, an iterable of Checks, or a
callable returning either). Each plugin loads on its own; one that fails is recorded, never a crash."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from auditor.model import CATEGORY_TITLES, CHECK_ID_RE, Check

ENTRY_POINT_GROUP = "posthog_auditor.checks"


@dataclass(frozen=True)
class PluginFailure:
    name: str  # entry point name
    distribution: str
    error: str


@dataclass
class Registry:
    checks: dict[str, Check] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def add(self, check: Check) -> None:
        problem = validate(check)
        if problem:
            raise ValueError(problem)
        if check.id in self.checks:
            raise ValueError(f"check id {check.id} is already registered by {self.checks[check.id].source}")
        self.checks[check.id] = check

    def select(self, only: Iterable[str] = (), categories: Iterable[str] = ()) -> list[Check]:
        only, categories = set(only), set(categories)
        unknown = sorted(only - set(self.checks))
        if unknown:
            raise KeyError(f"no such check: {unknown[0]}")
        return [
            c for c in self.checks.values()
            if (not only or c.id in only) and (not categories or c.meta.category in categories)
        ]


def validate(check: Any) -> str | None:
    if not isinstance(check, Check):
        return f"{check!r} is not a Check (declare it with auditor.model.check)"
    meta = check.meta
    if not CHECK_ID_RE.match(meta.id):
        return f"check id {meta.id!r} must look like '<category>.<kebab-name>'"
    if meta.category not in CATEGORY_TITLES:
        return f"check {meta.id}: unknown category {meta.category!r}"
    for attr in ("title", "failure_title", "description", "docs_url"):
        if not getattr(meta, attr):
            return f"check {meta.id}: {attr} is missing"
    if not meta.docs_url.startswith("https://"):
        return f"check {meta.id}: docs_url must be an https link"
    return None


def _checks_of(obj: Any) -> list[Check]:
    if callable(obj) and not isinstance(obj, Check):
        obj = obj()
    if isinstance(obj, Check):
        return [obj]
    if isinstance(obj, Iterable):
        return list(obj)
    raise TypeError(f"entry point gave {type(obj).__name__}, expected a Check or an iterable of Checks")


def load_registry(*, plugins: bool = True) -> Registry:
    from checks import BUILTIN  # explicit tuple: works from a raw checkout too

    registry = Registry()
    for c in BUILTIN:
        registry.add(c)
    if not plugins:
        return registry
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "unknown"
        try:
            loaded = _checks_of(ep.load())
            staged = Registry(checks=dict(registry.checks))
            for c in loaded:
                staged.add(Check(meta=c.meta, fn=c.fn, source=dist) if isinstance(c, Check) else c)
        except Exception as exc:  # a broken plugin must not take the audit down
            registry.failures.append(PluginFailure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
            continue
        registry.checks = staged.checks
    return registry
