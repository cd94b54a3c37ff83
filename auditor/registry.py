"""Which checks and products exist: the built-in ones in `checks/` (an explicit tuple of checks and the product
catalogue), plus what third-party packages register under the entry-point group `posthog_auditor.checks` (an entry
point names a Check, a Product, an iterable of them, or a callable returning either). A plugin may bring a whole
new product: its Product entry and its checks are scored, scoped and shown like built-in ones. Each plugin loads
on its own; one that fails is recorded, never a crash."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from auditor.catalogue import Catalogue
from auditor.model import CHECK_ID_RE, Check, Product

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
    catalogue: Catalogue = field(default_factory=Catalogue)

    def add(self, check: Check) -> None:
        problem = validate(check, self.catalogue)
        if problem:
            raise ValueError(problem)
        owners = {name: c for c in self.checks.values() for name in (c.id, *c.meta.aliases)}
        for name in (check.id, *check.meta.aliases):
            if name in owners:
                raise ValueError(f"check id {name} is already registered by {owners[name].source}")
        self.checks[check.id] = check
        if check.meta.required:
            self.catalogue.required = (*self.catalogue.required, check.meta)

    def select(self, only: Iterable[str] = (), categories: Iterable[str] = ()) -> list[Check]:
        only, categories = {self.current_id(name) for name in only}, set(categories)
        unknown = sorted(only - set(self.checks))
        if unknown:
            raise KeyError(f"no such check: {unknown[0]}")
        return [
            c for c in self.checks.values()
            if (not only or c.id in only) and (not categories or c.meta.category in categories)
        ]

    def current_id(self, check_id: str) -> str:
        """The id a check has now, given any id it was recorded under (its aliases)."""
        return self.renamed().get(check_id, check_id)

    def renamed(self) -> dict[str, str]:
        """Each former id of a renamed check (its `aliases`) -> its id now: history, settings and --check given
        an old id mean the check it became."""
        return {alias: c.id for c in self.checks.values() for alias in c.meta.aliases}


def validate(check: Any, catalogue: Catalogue) -> str | None:
    if not isinstance(check, Check):
        return f"{check!r} is not a Check (declare it with auditor.model.check)"
    meta = check.meta
    if not CHECK_ID_RE.match(meta.id):
        return f"check id {meta.id!r} must look like '<category>.<kebab-name>'"
    if meta.category not in catalogue.products:
        return (f"check {meta.id}: unknown category {meta.category!r} (declare it with a Product beside the "
                "checks)")
    for attr in ("title", "failure_title", "description", "docs_url"):
        if not getattr(meta, attr):
            return f"check {meta.id}: {attr} is missing"
    if not meta.docs_url.startswith("https://"):
        return f"check {meta.id}: docs_url must be an https link"
    return None


def _items_of(obj: Any) -> list[Any]:
    if callable(obj) and not isinstance(obj, Check | Product):
        obj = obj()
    if isinstance(obj, Check | Product):
        return [obj]
    if isinstance(obj, Iterable):
        return list(obj)
    raise TypeError(f"entry point gave {type(obj).__name__}, expected a Check, a Product or an iterable of them")


def builtin_registry() -> Registry:
    import checks  # explicit tuples: works from a raw checkout too

    registry = Registry(catalogue=Catalogue(brief=checks.build_brief, recommend=checks.recommendations,
                                            brief_facts=checks.BRIEF_FACTS))
    for product in checks.CATALOG:
        registry.catalogue.add(product)
    for c in checks.BUILTIN:
        registry.add(c)
    return registry


def may_have_plugins(path: list[str] | None = None) -> bool:
    """A quick look before importlib.metadata does the real discovery: does any installed distribution declare
    our entry-point group? Only entry_points.txt files are read; whatever cannot be looked into this way (a zip
    or an egg on the path) counts as yes, so no plugin is ever missed, only the common case made fast."""
    import os

    for entry in sys.path if path is None else path:
        folder = entry or "."
        if not os.path.isdir(folder):
            if os.path.exists(folder):
                return True
            continue
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(folder, name, "entry_points.txt"), encoding="utf-8") as declared:
                        if ENTRY_POINT_GROUP in declared.read():
                            return True
                except (OSError, UnicodeDecodeError):
                    continue
    return False


def load_registry(*, plugins: bool = True) -> Registry:
    registry = builtin_registry()
    if not plugins or not may_have_plugins():
        return registry
    from importlib import metadata  # here, and only when a plugin may be installed: importing it takes ~40 ms

    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "unknown"
        try:
            items = _items_of(ep.load())
            # Staged on a copy: a plugin is taken whole or not at all.
            staged = Registry(checks=dict(registry.checks), catalogue=registry.catalogue.copy())
            for product in (i for i in items if isinstance(i, Product)):
                staged.catalogue.add(product)
            for c in (i for i in items if not isinstance(i, Product)):
                staged.add(Check(meta=c.meta, fn=c.fn, source=dist) if isinstance(c, Check) else c)
        except Exception as exc:  # a broken plugin must not take the audit down
            registry.failures.append(PluginFailure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
            continue
        registry.checks, registry.catalogue = staged.checks, staged.catalogue
    return registry
