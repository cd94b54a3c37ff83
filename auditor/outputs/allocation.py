"""Who should own an account next (PostHog handbook, "Account allocation and handover").

Accounts at or above $20k ARR get a dedicated owner. Paying for 1–2 primary products -> a TAM, 3 or more ->
a CSM. The region is where most of the account's active users are: US, EU, or APAC (served from Singapore).
There is a Singapore TAM but no Singapore CSM: an APAC account that needs a CSM goes to whichever of US and
EU is nearer by time zone, flagged for review. A country the tables below do not place is "unknown", never
guessed; when such users could decide the region, the account is flagged for a person to place.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# ISO country codes by region. A country in none of these lists is not guessed: its users count as "unknown"
# and the account is flagged for a person to place (it used to fall through to APAC).
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
APAC = {
    "JP", "CN", "KR", "TW", "HK", "MO", "MN", "IN", "PK", "BD", "LK", "NP", "BT", "MV", "SG", "MY", "ID", "PH",
    "TH", "VN", "KH", "LA", "MM", "BN", "TL", "AU", "NZ", "PG", "FJ", "SB", "VU", "NC", "PF", "WS", "TO", "KI",
    "FM", "MH", "PW", "NR", "TV", "GU", "MP"
}
UNKNOWN_REGION = "unknown"
COUNTRY_NAMES = {"united states": "US", "usa": "US", "canada": "CA", "brazil": "BR", "mexico": "MX",
                 "united kingdom": "GB", "uk": "GB", "germany": "DE", "france": "FR", "spain": "ES",
                 "netherlands": "NL", "ireland": "IE", "italy": "IT", "sweden": "SE", "poland": "PL",
                 "india": "IN", "singapore": "SG", "australia": "AU", "japan": "JP", "new zealand": "NZ",
                 "israel": "IL", "south africa": "ZA", "nigeria": "NG", "indonesia": "ID", "philippines": "PH"}
# Representative UTC offsets of the two CSM hubs, for "nearer by time zone".
HUB_OFFSETS = {"US": -6.0, "EU": 1.0}
# Standard UTC offsets used without the system's time zone database (and before it: the answer never depends
# on the machine for these).
TIMEZONE_OFFSETS = {"Asia/Kolkata": 5.5, "Asia/Dubai": 4, "Asia/Singapore": 8, "Asia/Tokyo": 9, "Asia/Shanghai": 8,
                    "Asia/Jakarta": 7, "Asia/Manila": 8, "Asia/Seoul": 9, "Australia/Sydney": 10,
                    "Australia/Melbourne": 10, "Australia/Perth": 8, "Pacific/Auckland": 12,
                    "Pacific/Honolulu": -10, "Pacific/Pago_Pago": -11, "Pacific/Galapagos": -6,
                    "Atlantic/Bermuda": -4, "Atlantic/Azores": -1, "Atlantic/Reykjavik": 0}
# Time zone areas that lie in one region whatever the city; the others (Asia, Pacific, Atlantic, Indian) span
# regions and are placed by their UTC offset: Pacific/Honolulu is in the Americas, Asia/Dubai in EMEA.
AREA_REGIONS = {"America": "US", "US": "US", "Canada": "US", "Brazil": "US", "Mexico": "US", "Chile": "US",
                "Europe": "EU", "Africa": "EU", "Australia": "APAC", "NZ": "APAC"}
OFFSET_AREAS = ("Asia", "Pacific", "Atlantic", "Indian", "Antarctica", "Arctic")


def region_of_country(value: Any) -> str | None:
    """US, EU or APAC for a country we can place; None for anything else (no guess)."""
    if not value:
        return None
    text = str(value).strip()
    code = COUNTRY_NAMES.get(text.lower(), text.upper())
    if code in AMERICAS:
        return "US"
    if code in EMEA:
        return "EU"
    return "APAC" if code in APAC else None


def utc_offset(value: Any) -> float | None:
    """The zone's standard UTC offset in hours (the smaller of January's and July's), if it is known."""
    name = str(value or "")
    if name in TIMEZONE_OFFSETS:
        return float(TIMEZONE_OFFSETS[name])
    try:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(name)
        offsets = [datetime(2026, month, 15, tzinfo=zone).utcoffset() for month in (1, 7)]
    except (ImportError, ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return None
    return min(o.total_seconds() for o in offsets if o is not None) / 3600


def region_of_offset(offset: float) -> str:
    if offset <= -3:
        return "US"  # the Americas, and the Pacific east of the date line (Hawaii, Samoa)
    return "EU" if offset < 5 else "APAC"  # EMEA reaches the Gulf (+4); South Asia starts at +5


def region_of_timezone(value: Any) -> str | None:
    if not value or "/" not in str(value):
        return None
    area = str(value).split("/", 1)[0]
    if area in AREA_REGIONS:
        return AREA_REGIONS[area]
    if area not in OFFSET_AREAS:
        return None  # Etc/GMT+5 and the like say an offset, not a place
    offset = utc_offset(value)
    return None if offset is None else region_of_offset(offset)


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


def region_of_user(user: dict[str, Any]) -> str | None:
    """By country, else by time zone. A country we cannot place, with no time zone that can, is "unknown"."""
    region = region_of_country(user.get("country")) or region_of_timezone(user.get("timezone"))
    if region is None and user.get("country"):
        return UNKNOWN_REGION
    return region


def region_of_users(users: list[dict[str, Any]]) -> tuple[str | None, dict[str, int]]:
    """Where most active users are: by country, else by time zone."""
    tally: Counter[str] = Counter()
    for user in users:
        if user.get("deactivated"):
            continue
        region = region_of_user(user)
        if region:
            tally[region] += 1
    if not tally:
        return None, {}
    ranked = tally.most_common()
    return ranked[0][0], dict(ranked)


def nearer_hub(users: list[dict[str, Any]]) -> str:
    offsets = [o for o in (utc_offset(u["timezone"]) for u in users if u.get("timezone")) if o is not None]
    offset = sum(offsets) / len(offsets) if offsets else 8.0  # Singapore when nothing says otherwise

    def distance(hub: str) -> float:
        gap = abs(offset - HUB_OFFSETS[hub]) % 24
        return min(gap, 24 - gap)

    return min(HUB_OFFSETS, key=distance)


def allocate(vitally: dict[str, Any]) -> Allocation:
    products = list(vitally.get("paid_products") or [])
    region, tally = region_of_users(vitally.get("users") or [])
    review = []
    role = "CSM" if len(products) >= 3 else "TAM"
    if not products:
        review.append("no 'Paying for …' trait is set")
    unplaced = tally.get(UNKNOWN_REGION, 0)
    if unplaced:
        users = [u for u in vitally.get("users") or [] if not u.get("deactivated")]
        countries = sorted({str(u.get("country")) for u in users if region_of_user(u) == UNKNOWN_REGION})
        known = [*sorted((n for r, n in tally.items() if r != UNKNOWN_REGION), reverse=True), 0, 0]
        # Flag when those users could decide the region: they lead, or they outnumber the lead's margin.
        if region == UNKNOWN_REGION or unplaced >= known[0] - known[1]:
            review.append(f"{unplaced} user(s) in countries with no region mapping ({', '.join(countries)}): "
                          "place the account by hand")
            region = None if region == UNKNOWN_REGION else region
    if region is None:
        if not unplaced:
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


def allocation_table(rows: list[dict[str, Any]], suffix: str) -> str:
    """The allocations as a file's text: `.json`, or CSV (one row per account, lists space-separated)."""
    if suffix == ".json":
        return json.dumps(rows, indent=2)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["account_id", "name", "arr", "paid_products", "region", "users_by_region", "new_owner",
                     "handoff", "review"])
    for r in rows:
        writer.writerow([r["account_id"], r["name"], r["arr"], " ".join(r["paid_products"]), r["region"],
                         json.dumps(r["users_by_region"]), r["new_owner"], r["handoff"], r["review"]])
    return buffer.getvalue()
