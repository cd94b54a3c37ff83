"""Built-in checks, one module per product, and the product catalogue. Each check is metadata plus a pure function
of the facts; the catalogue (checks/catalog.py) tells the engine what each product is; each finding is linked to
where it is fixed in the customer's PostHog (checks/links.py)."""

from checks import (
    data_warehouse,
    error_tracking,
    feature_flags,
    handover,
    platform,
    product_analytics,
    session_replay,
    surveys,
)
from checks.brief import BRIEF_FACTS, build_brief, recommendations
from checks.catalog import CATALOG
from checks.links import with_links

BUILTIN = tuple(with_links(c) for c in (
    *platform.CHECKS,
    *product_analytics.CHECKS,
    *session_replay.CHECKS,
    *feature_flags.CHECKS,
    *surveys.CHECKS,
    *data_warehouse.CHECKS,
    *error_tracking.CHECKS,
    *handover.CHECKS,
))

__all__ = ["BRIEF_FACTS", "BUILTIN", "CATALOG", "build_brief", "recommendations"]
