"""What the customer pays for, read from `GET /api/billing/` (every field optional: the shape drifts)."""

from __future__ import annotations

from typing import Any


def group_analytics_paid(billing: Any) -> bool | None:
    """Group analytics is an add-on of product analytics."""
    if not isinstance(billing, dict) or not isinstance(billing.get("products"), list):
        return None
    for product in billing["products"]:
        for addon in (product or {}).get("addons") or []:
            if isinstance(addon, dict) and addon.get("type") == "group_analytics":
                return bool(addon.get("subscribed"))
    return False


def monthly_amount(billing: Any, product_type: str) -> str | None:
    if not isinstance(billing, dict):
        return None
    for product in billing.get("products") or []:
        if isinstance(product, dict) and product.get("type") == product_type:
            amount = product.get("current_amount_usd")
            return f"${float(amount):,.2f}" if amount not in (None, "") else None
    return None
