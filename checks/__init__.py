"""Built-in checks, one module per product. Each check is metadata plus a pure function of the facts."""

from checks import feature_flags, platform, product_analytics, session_replay

BUILTIN = (*platform.CHECKS, *product_analytics.CHECKS, *session_replay.CHECKS, *feature_flags.CHECKS)
