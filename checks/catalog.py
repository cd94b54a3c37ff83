"""The product catalogue: every category of checks, with its title, its weight in readiness, how the customer pays
for it (billing product type, Vitally "Paying for …" label) and how to tell it is used. The engine knows products
only through this list (and what plugins add to it); adding a product is a module of checks plus an entry here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from auditor.model import Product
from checks.common import cube, event_total, parse_time, since, total
from checks.handover import ATTESTATION_ITEMS

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    from auditor.facts import Facts

DAYS = 30  # "used" means used in the last 30 days


def _cube_shows(event: str | None = None) -> Callable[[Facts], bool | None]:
    """A usage detector on the event cube: any event at all, or any of one event."""
    def used(facts: Facts) -> bool | None:
        if not facts.ok("cube"):
            return None
        df = cube(facts)
        return (total(df) if event is None else event_total(df, event)) > 0

    return used


def _replay_used(facts: Facts) -> bool | None:
    if facts.ok("replay"):
        return int(since(facts, DAYS)["recordings"].sum()) > 0
    if facts.ok("project"):  # without the recordings, the switch is the best sign there is
        return bool(facts.require("project").get("session_recording_opt_in"))
    return None


def _warehouse_used(facts: Facts) -> bool | None:
    if not facts.ok("warehouse_sources"):
        return None
    cutoff = facts.as_of - timedelta(days=DAYS)
    return any((parse_time(schema.get("last_synced_at")) or cutoff) > cutoff
               for source in facts.require("warehouse_sources") if isinstance(source, dict)
               for schema in source.get("schemas") or [] if isinstance(schema, dict))


CUBE = ("cube",)

CATALOG: tuple[Product, ...] = (
    Product("platform", "Platform", weight=15, always_in_scope=True),
    Product("product_analytics", "Product analytics", weight=30, billing_type="product_analytics",
            vitally_label="Product Analytics", used=_cube_shows(), used_facts=CUBE),
    Product("session_replay", "Session replay", weight=20, billing_type="session_replay",
            vitally_label="Session Replay", used=_replay_used, used_facts=("replay", "project")),
    Product("feature_flags", "Feature flags", weight=15, billing_type="feature_flags", vitally_label="Feature Flags",
            used=_cube_shows("$feature_flag_called"), used_facts=CUBE),
    Product("surveys", "Surveys", weight=5, billing_type="surveys", vitally_label="Surveys",
            used=_cube_shows("survey shown"), used_facts=CUBE),
    Product("data_warehouse", "Data warehouse", weight=5, billing_type="data_warehouse",
            vitally_label="Data Warehouse", used=_warehouse_used, used_facts=("warehouse_sources",)),
    Product("error_tracking", "Error tracking", weight=10, billing_type="error_tracking",
            vitally_label="Error Tracking", used=_cube_shows("$exception"), used_facts=CUBE),
    # The preconditions of a handover: gated (each must pass), never scored, not part of a health check.
    Product("handover", "Handover", weight=0, always_in_scope=True, preconditions=True, handover_only=True,
            attestations=ATTESTATION_ITEMS),
)
