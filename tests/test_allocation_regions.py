"""Owner allocation (issue 13, item 11): countries the tables cannot place are an unknown region, flagged for a
person, never APAC / Singapore; time zones are placed by where they are, not by the name of their area."""

from __future__ import annotations

import pytest

from auditor.outputs.allocation import allocate, region_of_country, region_of_timezone, region_of_user


@pytest.mark.parametrize("country", ["RU", "ZW", "CM", "XX", "Narnia"])
def test_unmapped_countries_are_not_guessed(country):
    assert region_of_country(country) is None
    assert region_of_user({"country": country}) == "unknown"
    result = allocate({"account_id": "a", "name": "A", "arr": 30_000, "paid_products": ["product_analytics"],
                       "users": [{"country": country}, {"country": country}]})
    assert result.new_owner is None and result.region is None
    assert "no region mapping" in result.review and country in result.review
    assert result.users_by_region == {"unknown": 2}


def test_an_unknown_minority_that_cannot_change_the_region_does_not_flag():
    users = [{"country": "DE"}] * 5 + [{"country": "US"}] + [{"country": "RU"}]
    result = allocate({"account_id": "a", "name": "A", "arr": 30_000, "paid_products": ["product_analytics"],
                       "users": users})
    assert result.new_owner == "EU TAM" and result.review == ""


def test_an_unknown_group_that_could_change_the_region_flags_but_still_recommends():
    users = [{"country": "DE"}] * 3 + [{"country": "US"}] * 2 + [{"country": "CM"}]
    result = allocate({"account_id": "a", "name": "A", "arr": 30_000, "paid_products": ["product_analytics"],
                       "users": users})
    assert result.new_owner == "EU TAM" and "1 user(s) in countries with no region mapping (CM)" in result.review


def test_known_apac_countries_still_go_to_singapore():
    assert region_of_country("JP") == "APAC" and region_of_country("au") == "APAC"


@pytest.mark.parametrize(("zone", "region"), [
    ("Pacific/Honolulu", "US"), ("Pacific/Pago_Pago", "US"), ("Pacific/Galapagos", "US"),
    ("Pacific/Auckland", "APAC"), ("Atlantic/Bermuda", "US"), ("Atlantic/Azores", "EU"),
    ("Asia/Dubai", "EU"), ("Asia/Kolkata", "APAC"), ("Asia/Tokyo", "APAC"), ("America/Anchorage", "US"),
    ("Europe/Moscow", "EU"), ("Africa/Harare", "EU"), ("Australia/Perth", "APAC"),
    ("Etc/GMT+5", None), ("UTC", None), ("Mars/Olympus", None),
])
def test_time_zones_map_by_where_they_are(zone, region):
    assert region_of_timezone(zone) == region


def test_honolulu_users_get_a_us_owner():
    result = allocate({"account_id": "a", "name": "A", "arr": 30_000, "paid_products": ["product_analytics"],
                       "users": [{"timezone": "Pacific/Honolulu"}, {"timezone": "Pacific/Honolulu"}]})
    assert result.new_owner == "US TAM" and result.review == ""
