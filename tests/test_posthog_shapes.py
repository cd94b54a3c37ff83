"""REST answers as PostHog's current serializers give them: the trimmed warehouse source list, billing that answers
for the key user's current organization, and the scope each fact needs (the README's table)."""

from __future__ import annotations

import re

import pytest

from auditor.audit import evaluate, gather_facts
from auditor.config import Settings
from auditor.facts import GATHERERS
from auditor.registry import load_registry
from tests.conftest import ROOT, fast_client

OTHER_ORG = {"id": "0191b5c1-9999-0000-0000-00000000beef", "name": "Another Customer Ltd", "slug": "another",
             "membership_level": 8, "customer_id": "cus_AnotherCustomer"}


def audited(standin, scenario) -> dict:
    registry = load_registry(plugins=False)
    checks = list(registry.checks.values())
    with fast_client(standin.url, standin.api_key) as client:
        facts = gather_facts(client, scenario.project_id, checks, registry.catalogue)
    run = evaluate(facts, registry, checks, Settings())
    run["_facts"] = facts
    return run


def test_the_source_list_is_trimmed_and_the_schema_list_fills_it_in(standin, scenario):
    with fast_client(standin.url, standin.api_key) as client:
        sources = client.project_list(scenario.project_id, "external_data_sources/")
    assert all(set(schema) <= {"id", "name", "label", "should_sync", "status", "sync_type", "last_synced_at",
                               "latest_error", "table"} for schema in sources[0]["schemas"])
    run = audited(standin, scenario)
    results = {r["id"]: r for r in run["results"]}
    # What only the full schemas say is found: Charge re-synced in full every 6 hours, on a table with `created`.
    full = results["data_warehouse.full-refresh-on-large-tables"]
    assert full["status"] == "fail" and full["evidence"]["table"]["rows"][0][2] == "6hour"
    assert full["evidence"]["table"]["rows"][0][4] == "created"
    assert results["data_warehouse.sync-frequency"]["status"] == "warn"


def test_old_posthog_without_the_schema_list_reads_each_source(standin, scenario):
    scenario.missing.update({"external_data_schemas/"})
    run = audited(standin, scenario)
    assert run["_facts"].ok("warehouse_schemas")
    assert standin.count(r"/external_data_sources/[^/]+/$") == 1  # the one source's detail, in full
    assert {r["id"]: r["status"] for r in run["results"]}["data_warehouse.sync-frequency"] == "warn"


def test_billing_of_the_key_users_other_organization_is_never_used(standin, scenario):
    """The key's user is currently in another organization: /api/billing/ answers for that one."""
    scenario.user_organization = OTHER_ORG
    scenario.plain["/api/billing/"] = {**scenario.plain["/api/billing/"], "customer_id": OTHER_ORG["customer_id"],
                                       "products": [{"type": "data_warehouse", "subscribed": True,
                                                     "current_amount_usd": "9000.00"}]}
    run = audited(standin, scenario)
    billing = run["facts"]["billing"]
    assert billing["status"] == "unavailable" and OTHER_ORG["id"] in billing["error"]
    assert run["scope"]["source"] == "usage"  # the fallback: what this project uses, not what another pays for
    paid = next(r for r in run["results"] if r["id"] == "handover.paid-products-used")
    assert paid["status"] == "manual" and "9,000" not in str(paid)


def test_billing_is_trusted_by_customer_id_when_the_key_cannot_read_its_user(standin, scenario):
    scenario.key_scopes = [s.split(":")[0] + ":read" for s in {g.scope for g in GATHERERS.values()}]
    run = audited(standin, scenario)
    assert standin.count(r"^/api/users/") == 0  # no user:read: not even asked
    assert run["facts"]["billing"]["status"] == "ok" and run["scope"]["source"] == "billing"


def test_billing_of_an_unknown_owner_is_not_trusted(standin, scenario):
    scenario.key_scopes = [g.scope for g in GATHERERS.values()]
    scenario.plain["/api/billing/"] = {**scenario.plain["/api/billing/"], "customer_id": None}
    run = audited(standin, scenario)
    assert run["facts"]["billing"]["status"] == "unavailable"
    assert "user:read" in run["facts"]["billing"]["error"]


def readme_scope_table() -> dict[str, set[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|$", text, re.M)
    return {fact: set(re.findall(r"`([a-z_]+:[a-z]+)`", scopes)) for fact, scopes in rows}


@pytest.mark.parametrize("name", sorted(GATHERERS))
def test_the_readme_names_the_scopes_every_fact_needs(name):
    """The README's table is a copy of what the gatherers declare: a key made from it reads every fact."""
    table = readme_scope_table()
    gatherer = GATHERERS[name]
    assert name in table, f"README's scope table has no row for {name}"
    assert table[name] == {gatherer.scope, *gatherer.also}, f"README's scopes for {name} differ from the code"


def test_the_readme_table_has_no_fact_the_code_does_not_gather():
    assert set(readme_scope_table()) <= set(GATHERERS)
