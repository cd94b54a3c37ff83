"""Built-in checks, one module per product. Each check is metadata plus a pure function of the facts."""

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

BUILTIN = (
    *platform.CHECKS,
    *product_analytics.CHECKS,
    *session_replay.CHECKS,
    *feature_flags.CHECKS,
    *surveys.CHECKS,
    *data_warehouse.CHECKS,
    *error_tracking.CHECKS,
    *handover.CHECKS,
)
