"""What a finding's wasted units cost, at the customer's own prices.

The checks count the units they find wasted (events, recordings, rows) per month and name the billing meter;
this module prices them from `GET /api/billing/` — only when the `billing` fact is ok, which the gatherer allows
only for billing shown to be the audited organization's. The price is the marginal one: what this period's bill
would lose without those units, cost(usage) − cost(usage − units), over the customer's graduated tiers. Never an
average, never a list price, never a guess: without readable billing, units only and "$ unknown".

How PostHog bills, from its source (PostHog/posthog, see /work/notes/research_16.md):
- `frontend/src/types.ts` `BillingProductV2Type` / `BillingProductV2AddonType` / `BillingTierType`: money as
  decimal strings (`unit_amount_usd`, `flat_amount_usd`), usage as numbers (`current_usage`, `projected_usage`,
  `free_allocation`, `up_to`); each product has one `type` and one `usage_key`; add-ons (`enhanced_persons`,
  `group_analytics`, …) sit under a product's `addons` with tiers of their own.
- `frontend/src/scenes/billing/billing-utils.ts` `convertUsageToAmount`: graduated tiers — `up_to` is the
  cumulative upper bound (null: the last, open tier), each unit priced at the rate of the tier it falls in, a
  tier's `flat_amount_usd` added, then `discount_percent` off. `calculateFreeTier`: when the first tier is free
  it is the free allocation, else `free_allocation`.
- `posthog/tasks/usage_report.py`: billed events exclude `$feature_flag_called`, survey events, `$exception` and AI
  events; events with `person_mode` full/force_upgrade are also counted as identified events, which the
  `enhanced_persons` add-on prices on top of the base event rate. Feature flags are billed per `/flags` request
  (`billable_feature_flag_requests_count_in_period`, local evaluation ×10), not per `$feature_flag_called` event.
- Group analytics (`group_analytics` add-on) is priced on the product's event volume, on its own tiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from auditor.model import Impact
from checks.common import num

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    from auditor.facts import Facts

DAYS_PER_MONTH = 30
NOT_READABLE = "billing not readable"


@dataclass(frozen=True)
class Meter:
    """A billing meter: a product (and add-on) of `GET /api/billing/`, the usage key it counts and its unit."""

    product: str  # BillingProductV2Type.type
    addon: str | None  # BillingProductV2AddonType.type, or None for the product itself
    usage_key: str  # as in usage_summary / quota limiting (the add-on's own key where it has one)
    unit: str
    title: str
    # An add-on billed on its product's usage (group analytics on all events) when it states none of its own.
    product_usage: bool = False

    @property
    def name(self) -> str:
        return self.addon or self.product


EVENTS = Meter("product_analytics", None, "events", "event", "Product analytics")
PERSON_PROFILES = Meter("product_analytics", "enhanced_persons", "enhanced_persons_events", "event",
                        "Person profiles (identified events)")
GROUP_ANALYTICS = Meter("product_analytics", "group_analytics", "events", "event", "Group analytics",
                        product_usage=True)
RECORDINGS = Meter("session_replay", None, "recordings", "recording", "Session replay")
ROWS_SYNCED = Meter("data_warehouse", None, "rows_synced", "row", "Data warehouse")
FLAG_REQUESTS = Meter("feature_flags", None, "feature_flag_requests", "request", "Feature flags")
PRODUCT_METERS = {m.product: m for m in (EVENTS, RECORDINGS, ROWS_SYNCED, FLAG_REQUESTS)} | {
    "surveys": Meter("surveys", None, "survey_responses", "survey response", "Surveys"),
    "error_tracking": Meter("error_tracking", None, "exceptions", "exception", "Error tracking"),
}


@dataclass(frozen=True)
class Charge:
    """Units a finding would remove from one meter each month, and what they are in words."""

    meter: Meter
    units: float
    what: str  # e.g. "$autocapture events"
    which: str = ""  # which of them, e.g. "beyond 50% of events, used by no action"

    def words(self) -> str:
        return f"{num(self.units)} {self.what}/month" + (f" ({self.which})" if self.which else "")


# ---- reading billing -----------------------------------------------------------------------------------------

def decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def billing(facts: Facts) -> dict[str, Any] | None:
    """Billing that may be used: the fact is ok (the gatherer made it unavailable unless it is the audited
    organization's) and has a product list."""
    value = facts.get("billing") if facts.ok("billing") else None
    return value if isinstance(value, dict) and isinstance(value.get("products"), list) else None


def find(bill: dict[str, Any], meter: Meter) -> dict[str, Any] | None:
    """The billing entry of a meter: the product, or its add-on (looked up by type, then by usage key)."""
    for product in bill.get("products") or []:
        if not isinstance(product, dict) or product.get("type") != meter.product:
            continue
        if meter.addon is None:
            return product
        for addon in product.get("addons") or []:
            if isinstance(addon, dict) and (addon.get("type") == meter.addon or
                                            (addon.get("usage_key") and addon.get("usage_key") == meter.usage_key
                                             and meter.usage_key != product.get("usage_key"))):
                return addon
    return None


def parent(bill: dict[str, Any], meter: Meter) -> dict[str, Any] | None:
    return find(bill, Meter(meter.product, None, "", meter.unit, meter.title))


def subscribed(bill: dict[str, Any], meter: Meter, entry: dict[str, Any]) -> bool:
    """Whether the meter is billed: a subscribed product; an add-on subscribed, or included with its subscribed
    product (`included_with_main_product`, or `inclusion_only` add-ons such as person profiles)."""
    if meter.addon is None:
        return bool(entry.get("subscribed"))
    owner = parent(bill, meter) or {}
    if not owner.get("subscribed"):
        return False
    return bool(entry.get("subscribed") or entry.get("included_with_main_product") or entry.get("inclusion_only"))


def tiers(entry: dict[str, Any]) -> list[tuple[Decimal | None, Decimal, Decimal]]:
    """(up_to, unit price, flat fee) per tier, in order; empty when the entry has no usable tier table."""
    out = []
    for tier in entry.get("tiers") or []:
        if not isinstance(tier, dict):
            return []
        price = decimal(tier.get("unit_amount_usd"))
        if price is None:
            return []
        up_to = decimal(tier.get("up_to"))
        out.append((up_to, price, decimal(tier.get("flat_amount_usd")) or Decimal(0)))
    return out


def graduated_cost(table: list[tuple[Decimal | None, Decimal, Decimal]], usage: Decimal) -> Decimal:
    """PostHog's convertUsageToAmount: each unit at the rate of the tier it falls in; a tier's flat fee counts
    once usage reaches it (Stripe's graduated tiers)."""
    amount, previous, remaining = Decimal(0), Decimal(0), max(usage, Decimal(0))
    for up_to, price, flat in table:
        width = (up_to - previous) if up_to is not None else remaining
        used = min(remaining, max(width, Decimal(0)))
        if used > 0:
            amount += price * used + flat
        remaining -= used
        previous = up_to if up_to is not None else previous
        if remaining <= 0:
            break
    return amount


def rates_between(table: list[tuple[Decimal | None, Decimal, Decimal]], low: Decimal, high: Decimal) -> list[Decimal]:
    """The unit prices of the tiers the usage between low and high falls in."""
    found, previous = [], Decimal(0)
    for up_to, price, _ in table:
        top = up_to if up_to is not None else Decimal("Infinity")
        if top > low and previous < high and price not in found:
            found.append(price)
        previous = top
    return found


@dataclass(frozen=True)
class Priced:
    usd: float | None  # per month; None: not priced
    words: str  # how, for the basis
    reason: str | None = None  # why not priced


def period_factor(bill: dict[str, Any]) -> int:
    """Months in the billing period: tiers apply to the period's usage (an annual plan's to the year's)."""
    interval = ((bill.get("billing_period") or {}).get("interval") or "month")
    return 12 if str(interval).lower() == "year" else 1


def period_usage(entry: dict[str, Any], fallback: dict[str, Any] | None = None) -> tuple[Decimal | None, str]:
    """This period's usage as billing projects it (else as it stands), and which one it is."""
    sources = (entry, fallback or {})
    for field, which in (("projected_usage", "projected"), ("current_usage", "current")):
        for source in sources:
            value = decimal(source.get(field))
            if value is not None:
                return value, which
    return None, ""


def price(bill: dict[str, Any], charge: Charge) -> Priced:
    """The marginal monthly price of removing `charge.units` from its meter's usage this period."""
    meter = charge.meter
    entry = find(bill, meter)
    if entry is None:
        return Priced(None, "", f"your billing has no {meter.title} charge")
    if not subscribed(bill, meter, entry):
        return Priced(0.0, f"{meter.title} is not on a paid plan: these units cost nothing today")
    months = period_factor(bill)
    usage, which = period_usage(entry, parent(bill, meter) if meter.product_usage else None)
    units = Decimal(str(round(charge.units))) * months
    table = tiers(entry)
    discount = decimal(bill.get("discount_percent")) or Decimal(0)
    if table:
        if usage is None:
            return Priced(None, "", f"billing gives no {meter.title} usage to price against")
        usage = max(usage, units)  # what this project wastes is part of the organization's usage
        low = usage - units
        free = decimal(entry.get("free_allocation")) or Decimal(0)
        if table[0][1] != 0 and free > 0:  # calculateFreeTier: a free first tier is the allocation, else this
            usage, low = max(usage - free, Decimal(0)), max(low - free, Decimal(0))
        amount = graduated_cost(table, usage) - graduated_cost(table, low)
        rates = rates_between(table, low, usage)
    else:
        unit_price = decimal(entry.get("unit_amount_usd"))
        if unit_price is None:
            return Priced(None, "", f"billing gives no {meter.title} price")
        free = decimal(entry.get("free_allocation")) or Decimal(0)
        usage = max(usage if usage is not None else units, units)
        billable = max(usage - free, Decimal(0)) - max(usage - units - free, Decimal(0))
        amount, rates = unit_price * billable, [unit_price]
    amount = amount * (1 - discount / 100) / months
    if amount == 0:
        where = "within your free allocation" if all(r == 0 for r in rates) else "at $0"
        return Priced(0.0, f"{where} of {meter.title} this period")
    shown = " to ".join(f"${_rate(r)}" for r in (rates if len(rates) <= 2 else [rates[0], rates[-1]]))
    tier = "at your current tier" if len(rates) == 1 else "across your tiers"
    words = f"× {shown} {tier} of {meter.title}"
    if discount:
        words += f", less your {_rate(discount)}% discount"
    if which == "current":
        words += " (priced on this period's usage so far: billing gives no projection)"
    if months == 12:
        words += " (annual plan: priced on the year's usage, shown per month)"
    return Priced(float(amount), words)


def _rate(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


def monthly_bill(bill: dict[str, Any]) -> float | None:
    """The period's bill per month, as billing projects it (after any discount), else as it stands."""
    for key in ("projected_total_amount_usd_after_discount", "projected_total_amount_usd",
                "current_total_amount_usd_after_discount", "current_total_amount_usd"):
        amount = decimal(bill.get(key))
        if amount is not None and amount > 0:
            return float(amount) / period_factor(bill)
    return None


# ---- impacts -------------------------------------------------------------------------------------------------

def per_month(count: float, facts: Facts, part: str, days: int = DAYS_PER_MONTH) -> float:
    """A count over a check's window as a count per month, when the HogQL part covered fewer days (a re-run over
    a shorter window says how many in `window_days`)."""
    value = facts.get(part)
    covered = value.get("window_days") if isinstance(value, dict) else None
    window = min(days, covered) if isinstance(covered, int) and covered > 0 else days
    return count * DAYS_PER_MONTH / window


def key(facts: Facts, name: str) -> str:
    """An impact's key for waste in this project (keys name what is wasted, so findings about the same waste
    count once in a total)."""
    return f"project:{facts.target.get('project_id') or '?'}:{name}"


def org_key(name: str) -> str:
    """An impact's key for waste billed organization-wide (the same in every project's audit)."""
    return f"organization:{name}"


def impact(facts: Facts, charges: list[Charge], impact_key: str, caveat: str = "") -> Impact | None:
    """The impact of removing these units: the first charge's units are the finding's; later charges are the
    same units on other meters (e.g. an identified event's person-profile charge on top of its event charge).
    Priced at the customer's marginal tiers when billing can be read; else units with "$ unknown"."""
    charges = [c for c in charges if c.units > 0]
    if not charges:
        return None
    main = charges[0]
    units = round(main.units)
    bill = billing(facts)
    described = [c.words() for c in charges]
    if bill is None:
        basis = f"{described[0]}; $ unknown ({NOT_READABLE})" + (f"; {caveat}" if caveat else "")
        return Impact(units, main.meter.unit, basis, meter=main.meter.usage_key, key=impact_key,
                      unpriced_reason=NOT_READABLE)
    priced = [(c, price(bill, c)) for c in charges]
    main_price = priced[0][1]
    if main_price.usd is None:
        basis = f"{described[0]}; $ unknown ({main_price.reason})" + (f"; {caveat}" if caveat else "")
        return Impact(units, main.meter.unit, basis, meter=main.meter.usage_key, key=impact_key,
                      unpriced_reason=main_price.reason)
    parts, total, notes = [], 0.0, []
    for (_charge, p), text in zip(priced, described, strict=True):
        if p.usd is None:
            notes.append(f"{text} not priced ({p.reason})")
            continue
        total += p.usd
        parts.append(f"{text} {p.words} = ${p.usd:,.2f}" if p.usd else f"{text}: {p.words}")
    bill_month = monthly_bill(bill)
    share = total / bill_month if bill_month else None
    basis = " + ".join(parts) + "".join(f"; {n}" for n in notes) + (f"; {caveat}" if caveat else "")
    return Impact(units, main.meter.unit, basis, round(total, 2), round(share, 4) if share is not None else None,
                  main.meter.usage_key, impact_key)


def unpriced(facts: Facts, units: float, unit: str, what: str, meter: Meter, impact_key: str,
             reason: str, which: str = "") -> Impact | None:
    """Units whose billing meter is not what the data counts (e.g. flag calls, where PostHog bills requests):
    never priced, the reason said."""
    if units <= 0:
        return None
    text = Charge(meter, units, what, which).words()
    return Impact(round(units), unit, f"{text}; $ not priced: {reason}", meter=meter.usage_key,
                  key=impact_key, unpriced_reason=reason)


def whole_charge(facts: Facts, meter: Meter, impact_key: str, why: str) -> Impact | None:
    """What a meter costs this period in full (an unused add-on or product: dropping it saves all of it), from its
    tiers over the period's usage, else from the amount billing states."""
    bill = billing(facts)
    if bill is None:
        return Impact(0, meter.unit, f"{why}; $ unknown ({NOT_READABLE})", meter=meter.usage_key, key=impact_key,
                      unpriced_reason=NOT_READABLE)
    entry = find(bill, meter)
    if entry is None:
        return None
    usage, which = period_usage(entry, parent(bill, meter) if meter.product_usage else None)
    months = period_factor(bill)
    table = tiers(entry)
    discount = decimal(bill.get("discount_percent")) or Decimal(0)
    if table and usage is not None:
        amount = graduated_cost(table, usage) * (1 - discount / 100) / months
        how = f"{num(float(usage) / months)} {meter.unit}s/month ({which}) on your {meter.title} tiers"
    else:
        stated = decimal(entry.get("projected_amount_usd")) or decimal(entry.get("current_amount_usd"))
        if stated is None:
            return Impact(0, meter.unit, f"{why}; $ unknown (billing states no amount for {meter.title})",
                          meter=meter.usage_key, key=impact_key, unpriced_reason="no amount in billing")
        amount = stated / months
        how = f"{meter.title} as billing states it this period"
    units = float(usage) / months if usage is not None else 0
    bill_month = monthly_bill(bill)
    usd = float(amount)
    share = usd / bill_month if bill_month else None
    return Impact(round(units), meter.unit, f"{why}: {how} = ${usd:,.2f}/month", round(usd, 2),
                  round(share, 4) if share is not None else None, meter.usage_key, impact_key)
