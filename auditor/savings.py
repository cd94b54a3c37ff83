"""The run's total of what its findings cost each month: arithmetic over the `impact` each check stated, nothing
more (what a unit costs, and what counts as waste, is the checks' knowledge).

Two findings about the same waste (e.g. replay's minimum duration and its short recordings) carry the same
impact `key`: the total counts that waste once, at the larger figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auditor.result import Savings


def _figure(impact: Mapping[str, Any]) -> tuple[float, float]:
    return (float(impact.get("usd_per_month") or 0), float(impact.get("units_per_month") or 0))


def distinct_impacts(results: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Each waste once: per key, the impact with the larger dollar figure (then the larger number of units)."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for i, result in enumerate(results):
        impact = result.get("impact")
        if not isinstance(impact, dict):
            continue
        key = str(impact.get("key") or f"{result.get('project_id', '')}:{result.get('id')}:{i}")
        if key not in chosen or _figure(impact) > _figure(chosen[key]):
            chosen[key] = impact
    return list(chosen.values())


def total(results: Sequence[Mapping[str, Any]]) -> Savings:
    """{usd_per_month, share_of_bill, priced, unpriced, unpriced_units [{unit, units_per_month}], reasons}.

    usd_per_month sums the priced impacts (None when none is priced); share_of_bill sums their shares (each is a
    share of the same monthly bill; None when a priced one has no share). Unpriced impacts are summed per unit,
    with the reasons they could not be priced."""
    impacts = distinct_impacts(results)
    priced = [i for i in impacts if i.get("usd_per_month") is not None]
    unpriced = [i for i in impacts if i.get("usd_per_month") is None]
    units: dict[str, float] = {}
    for impact in unpriced:
        unit = str(impact.get("unit") or "unit")
        units[unit] = units.get(unit, 0) + float(impact.get("units_per_month") or 0)
    shares = [float(i["share_of_bill"]) for i in priced if i.get("share_of_bill") is not None]
    return {
        "usd_per_month": round(sum(float(i["usd_per_month"]) for i in priced), 2) if priced else None,
        "share_of_bill": round(sum(shares), 4) if priced and len(shares) == len(priced) else None,
        "findings": len(impacts),
        "priced": len(priced),
        "unpriced": len(unpriced),
        "unpriced_units": [{"unit": unit, "units_per_month": round(n)} for unit, n in
                           sorted(units.items(), key=lambda kv: -kv[1])],
        "unpriced_reasons": list(dict.fromkeys(str(i["unpriced_reason"]) for i in unpriced
                                               if i.get("unpriced_reason"))),
    }
