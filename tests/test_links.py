"""Links into the customer's PostHog (checks/links.py): each path is what PostHog's own frontend URL builders
produce (PostHog/posthog `frontend/src/scenes/urls.ts`, the product manifests, `router-utils.ts`, the settings
ids of `SettingsMap.tsx`; see /work/notes/research_16.md), for US, EU and self-hosted hosts."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from auditor.facts import Fact, Facts
from auditor.model import Finding, Status
from auditor.queries import cube_sql, identity_sql, replay_sql
from auditor.registry import load_registry
from checks import links

# What PostHog's builders return (verbatim from the builders' source, with the arguments shown).
POSTHOG_BUILDERS = {
    "urls.settings('project-replay', 'replay-masking')": (links.settings("project-replay", "replay-masking"),
                                                          "/settings/project-replay#replay-masking"),
    "urls.settings('project-replay')": (links.settings("project-replay"), "/settings/project-replay"),
    "urls.featureFlag(123)": (links.feature_flag(123), "/feature_flags/123"),
    "urls.featureFlags()": (links.feature_flags(), "/feature_flags"),
    "urls.experiment(9)": (links.experiment(9), "/experiments/9"),
    "urls.experiments()": (links.experiments(), "/experiments"),
    "urls.dataWarehouseSource('0191-ab')": (links.data_warehouse_source("0191-ab"),
                                            "/data-management/sources/0191-ab/schemas"),
    "urls.sources()": (links.data_warehouse_sources(), "/data-management/sources"),
    "urls.actions()": (links.actions(), "/data-management/actions"),
    "urls.ingestionWarnings()": (links.ingestion_warnings(), "/data-management/ingestion-warnings"),
    "urls.sqlEditor()": (links.sql_editor(), "/sql"),
    "urls.sqlEditor('SELECT 1')": (links.sql_editor("SELECT 1"), "/sql?open_query=SELECT+1"),
    "urls.replay()": (links.replay_home(), "/replay/home"),
    "urls.replay(ReplayTabs.Playlists)": (links.replay_playlists(), "/replay/playlists"),
    "urls.surveys()": (links.surveys(), "/surveys"),
    "urls.errorTracking()": (links.error_tracking(), "/error_tracking"),
    "configurationRedirect('error-tracking-symbol-sets')": (
        links.error_tracking_symbol_sets(),
        "/error_tracking?activeTab=configuration#selectedSetting=error-tracking-symbol-sets"),
    "urls.dashboards()": (links.dashboards(), "/dashboard"),
    "urls.cohorts()": (links.cohorts(), "/cohorts"),
    "urls.persons()": (links.persons(), "/persons"),
    "urls.organizationBilling()": (links.organization_billing(), "/organization/billing"),
    "urls.organizationBilling(['session_replay'])": (links.organization_billing(["session_replay"]),
                                                     "/organization/billing?products=session_replay"),
    "SidePanelTab.SdkDoctor": (links.sdk_doctor(), "#panel=sdk-doctor"),
}

# SettingsMap.tsx (newest read): section id (as settingsLogic shows it) -> its setting ids.
SETTINGS_MAP = {
    "project-replay": {"replay", "replay-log-capture", "replay-canvas-capture", "replay-triggers", "replay-masking",
                       "replay-network", "replay-network-headers-payloads", "replay-authorized-domains",
                       "replay-retention", "replay-integrations"},
    "project-autocapture": {"autocapture", "autocapture-data-attributes", "web-vitals-autocapture",
                            "dead-clicks-autocapture"},
    "project-error-tracking": {"banner", "error-tracking-exception-autocapture", "error-tracking-integrations"},
    "project-web-analytics": {"web-analytics-authorized-urls", "channel-type", "cookieless-server-hash-mode",
                              "bounce-rate-duration", "web-vitals-autocapture"},
    "project-product-analytics": {"group-analytics", "persons-on-events", "person-display-name"},
    "project-surveys": {"surveys-interface", "surveys-default-appearance"},
    "project-feature-flags": {"feature-flags-interface", "feature-flag-confirmation",
                              "feature-flag-default-release-conditions", "feature-flag-secure-api-key"},
    "project-customization": {"display-name", "date-and-time", "internal-user-filtering", "business-model",
                              "base-currency"},
    "organization-proxy": {"organization-proxy"},
    "organization-members": {"invites", "members", "member-notifications"},
}


@pytest.mark.parametrize("builder", sorted(POSTHOG_BUILDERS))
def test_each_path_is_what_posthogs_builder_makes(builder):
    ours, posthogs = POSTHOG_BUILDERS[builder]
    assert ours == posthogs


@pytest.mark.parametrize("name", sorted(links.SETTINGS))
def test_every_setting_link_names_a_real_section_and_setting(name):
    section, setting = links.SETTINGS[name]
    assert setting in SETTINGS_MAP[section], f"{section}#{setting} is not in PostHog's SettingsMap"


@pytest.mark.parametrize(("host", "base"), [
    ("https://us.posthog.com", "https://us.posthog.com"),
    ("https://eu.posthog.com", "https://eu.posthog.com"),
    ("https://us.i.posthog.com", "https://us.posthog.com"),
    ("https://app.posthog.com", "https://us.posthog.com"),
    ("https://posthog.example.com", "https://posthog.example.com"),
    ("http://localhost:8000/", "http://localhost:8000"),
])
def test_links_open_the_audited_project_on_its_host(host, base):
    assert links.absolute(host, 4242, links.setting("replay-masking")) == \
        f"{base}/project/4242/settings/project-replay#replay-masking"
    # router-utils.ts pathsWithoutProjectId: /organization/… is never project-prefixed; /settings/organization-… is.
    assert links.absolute(host, 4242, links.organization_billing()) == f"{base}/organization/billing"
    assert links.absolute(host, 4242, links.setting("reverse-proxy")) == \
        f"{base}/project/4242/settings/organization-proxy#organization-proxy"
    assert links.absolute(host, 4242, links.sdk_doctor()) == f"{base}/project/4242#panel=sdk-doctor"


def test_no_link_without_a_known_host_or_project():
    assert links.absolute(None, 4242, "/feature_flags") is None
    assert links.absolute("https://us.posthog.com", None, "/feature_flags") is None
    assert links.absolute("javascript:alert(1)", 1, "/x") is None


def test_ids_from_the_customers_data_cannot_break_out_of_their_path_segment():
    assert links.feature_flag("../../organization/billing?x=<y>") == \
        "/feature_flags/..%2F..%2Forganization%2Fbilling%3Fx%3D%3Cy%3E"


def facts(**parts):
    values = {name: Fact("ok", value) for name, value in parts.items()}
    return Facts(values=values, as_of=datetime(2026, 11, 1, tzinfo=UTC),
                 target={"host": "https://eu.posthog.com", "project_id": "12345"})


@pytest.mark.parametrize(("part", "build", "days"), [("cube", cube_sql, 30), ("identity", identity_sql, 30),
                                                     ("replay", replay_sql, 90), ("cube", cube_sql, 7)])
def test_query_links_open_the_parts_own_query_in_the_sql_editor(part, build, days):
    value = {"columns": [], "rows": [], **({"window_days": days} if days == 7 else {})}
    (made,) = links.query_links(facts(**{part: value}), (part,))
    url = urlsplit(made.url)
    assert made.label.startswith("Open this query in PostHog") and f"{days} days" in made.label
    assert (url.scheme, url.netloc, url.path) == ("https", "eu.posthog.com", "/project/12345/sql")
    assert parse_qs(url.query) == {"open_query": [build(days)]}  # exactly the text the audit sends


def test_every_check_links_to_where_it_is_fixed_or_to_its_query():
    for check_id, check in load_registry(plugins=False).checks.items():
        if check.meta.audience == "internal" and check.id != "handover.paid-products-used":
            continue  # the Account Plan, invoices and attestations live outside PostHog
        parts = set(check.meta.requires + check.meta.uses) & set(links.QUERY_PARTS)
        assert check_id in links.FIX_LINKS or parts, f"{check_id} links nowhere"


def test_skipped_and_errored_findings_get_no_links():
    registry = load_registry(plugins=False)
    check = registry.checks["session_replay.privacy-masking"]
    off = check.fn(facts(project={"session_recording_opt_in": False}), {})
    assert off.status == Status.SKIP and off.links == ()
    on = check.fn(facts(project={"session_recording_opt_in": True}), {})
    assert isinstance(on, Finding) and next(link.url for link in on.links) == \
        "https://eu.posthog.com/project/12345/settings/project-replay#replay-masking"
