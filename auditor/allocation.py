"""Who should own an account next (PostHog handbook, "Account allocation and handover").

Accounts at or above $20k ARR get a dedicated owner. Paying for 1–2 primary products -> a TAM, 3 or more ->
a CSM. The region is where most of the account's active users are: US, EU, or APAC (served from Singapore).
There is a Singapore TAM but no Singapore CSM: an APAC account that needs a CSM goes to whichever of US and
EU is nearer by time zone, flagged for review.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from auditor.model import PRODUCTS

NEW_OWNER_VALUES = ("US TAM", "US CSM", "EU TAM", "EU CSM", "Singapore TAM")

# ISO country codes by region; anything in neither list (Asia, Oceania) counts as APAC.
AMERICAS = {
    "US", "CA", "MX", "BR", "AR", "CL", "CO", "PE", "UY", "PY", "BO", "EC", "VE", "CR", "PA", "GT", "HN", "SV",
    "NI", "DO", "PR", "JM", "TT", "BS", "BB"
}
EMEA = {
    "GB", "IE", "FR", "DE", "ES", "PT", "IT", "NL", "BE", "LU", "CH", "AT", "DK", "SE", "NO", "FI", "IS", "PL",
    "CZ", "SK", "HU", "RO", "BG", "GR", "HR", "SI", "RS", "BA", "ME", "MK", "AL", "EE", "LV", "LT", "UA", "BY",
    "MD", "TR", "CY", "MT", "IL", "AE", "SA", "QA", "KW", "BH", "OM", "JO", "LB", "EG", "MA", "TN", "DZ", "NG",
    "KE", "ZA", "GH", "ET", "TZ", "UG", "RW", "SN", "CI"
}
COUNTRY_NAMES = {"united states": "US", "usa": "US", "canada": "CA", "brazil": "BR", "mexico": "MX",
                 "united kingdom": "GB", "uk": "GB", "germany": "DE", "france": "FR", "spain": "ES",
                 "netherlands": "NL", "ireland": "IE", "italy": "IT", "sweden": "SE", "poland": "PL",
                 "india": "IN", "singapore": "SG", "australia": "AU", "japan": "JP", "new zealand": "NZ",
                 "israel": "IL", "south africa": "ZA", "nigeria": "NG", "indonesia": "ID", "philippines": "PH"}
# Representative UTC offsets of the two CSM hubs, for "nearer by time zone".
HUB_OFFSETS = {"US": -6.0, "EU": 1.0}
TIMEZONE_OFFSETS = {"Asia/Kolkata": 5.5, "Asia/Dubai": 4, "Asia/Singapore": 8, "Asia/Tokyo": 9, "Asia/Shanghai": 8,
                    "Asia/Jakarta": 7, "Asia/Manila": 8, "Asia/Seoul": 9, "Australia/Sydney": 10,
                    "Australia/Melbourne": 10, "Australia/Perth": 8, "Pacific/Auckland": 12}


def region_of_country(value: Any) -> str | None:
    if not value:
        return None
    text = str(value).strip()
    code = COUNTRY_NAMES.get(text.lower(), text.upper())
    if len(code) != 2:
        return None
    if code in AMERICAS:
        return "US"
    return "EU" if code in EMEA else "APAC"


def region_of_timezone(value: Any) -> str | None:
    if not value or "/" not in str(value):
        return None
    area = str(value).split("/", 1)[0]
    return {"America": "US", "US": "US", "Canada": "US", "Europe": "EU", "Africa": "EU", "Atlantic": "EU",
            "Asia": "APAC", "Australia": "APAC", "Pacific": "APAC", "Indian": "APAC"}.get(area)


@dataclass
class Allocation:
    account_id: str
    name: str
    arr: float | None
    paid_products: list[str]
    region: str | None
    users_by_region: dict[str, int]
    new_owner: str | None
    handoff: str | None
    review: str  # why a person should look, or ""

    def to_dict(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "name": self.name, "arr": self.arr,
                "paid_products": self.paid_products, "product_count": len(self.paid_products),
                "region": self.region, "users_by_region": self.users_by_region, "new_owner": self.new_owner,
                "handoff": self.handoff, "review": self.review}


def region_of_users(users: list[dict[str, Any]]) -> tuple[str | None, dict[str, int]]:
    """Where most active users are: by country, else by time zone."""
    tally: Counter[str] = Counter()
    for user in users:
        if user.get("deactivated"):
            continue
        region = region_of_country(user.get("country")) or region_of_timezone(user.get("timezone"))
        if region:
            tally[region] += 1
    if not tally:
        return None, {}
    ranked = tally.most_common()
    return ranked[0][0], dict(ranked)


def nearer_hub(users: list[dict[str, Any]]) -> str:
    offsets = [TIMEZONE_OFFSETS[u["timezone"]] for u in users if u.get("timezone") in TIMEZONE_OFFSETS]
    offset = sum(offsets) / len(offsets) if offsets else 8.0  # Singapore when nothing says otherwise

    def distance(hub: str) -> float:
        gap = abs(offset - HUB_OFFSETS[hub]) % 24
        return min(gap, 24 - gap)

    return min(HUB_OFFSETS, key=distance)


def allocate(vitally: dict[str, Any]) -> Allocation:
    products = [p for p in PRODUCTS if p in (vitally.get("paid_products") or [])]
    region, tally = region_of_users(vitally.get("users") or [])
    review = []
    role = "CSM" if len(products) >= 3 else "TAM"
    if not products:
        review.append("no 'Paying for …' trait is set")
    if region is None:
        review.append("no user country or time zone to place the account")
        new_owner = None
    elif region == "APAC" and role == "CSM":
        hub = nearer_hub(vitally.get("users") or [])
        new_owner = f"{hub} CSM"
        review.append(f"APAC account needing a CSM: {hub} is the nearer hub by time zone")
    else:
        new_owner = f"{'Singapore' if region == 'APAC' else region} {role}"
    return Allocation(
        account_id=str(vitally.get("account_id")), name=str(vitally.get("name") or ""), arr=vitally.get("arr"),
        paid_products=products, region=region, users_by_region=tally, new_owner=new_owner,
        handoff=f"TAE → {role}" if new_owner else None, review="; ".join(review),
    )
