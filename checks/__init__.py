"""Built-in checks, one module per product. Each check is metadata plus a pure function of the facts."""

from checks import platform, product_analytics

BUILTIN = (*platform.CHECKS, *product_analytics.CHECKS)
