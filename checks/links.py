"""Where a finding is fixed in the customer's PostHog: URLs as PostHog's frontend builds them.

Every path below mirrors a URL builder of PostHog's frontend (repository PostHog/posthog; see
/work/notes/research_16.md for the versions read):
- `frontend/src/scenes/urls.ts`: `settings(section, setting)` = combineUrl(`/settings/${section}`, undefined,
  setting) → `/settings/<section>#<setting>`; `sqlEditor(query)` sets `open_query` with URLSearchParams →
  `/sql?open_query=…`; `ingestionWarnings()` → `/data-management/ingestion-warnings`; `organizationBilling()` →
  `/organization/billing`; `project(id, path)` → `/project/${id}` + path.
- product manifests (`products/*/manifest.tsx`, gathered into `frontend/src/products.tsx`): `featureFlag(id)` →
  `/feature_flags/${id}`, `featureFlags()` → `/feature_flags`, `dataWarehouseSource(id)` →
  `/data-management/sources/${id}/schemas`, `sources()` → `/data-management/sources`, `actions()` →
  `/data-management/actions`, `experiment(id)` → `/experiments/${id}`, `replay()` → `/replay/home`,
  `replayPlaylist`/playlists → `/replay/playlists`, `surveys()` → `/surveys`, `errorTracking()` →
  `/error_tracking`, `dashboards()` → `/dashboard`, `cohorts()` → `/cohorts`, `persons()` → `/persons`.
- `frontend/src/lib/utils/router-utils.ts` `addProjectIdIfMissing`: every path is prefixed `/project/<team id>`
  except those whose first segment is in `pathsWithoutProjectId` (below). A link without the prefix would open the
  logged-in user's *current* project, which may not be the audited one: links always carry it.
- Settings section ids are `environment-*` in `frontend/src/scenes/settings/SettingsMap.tsx`; `settingsLogic`
  shows them as `project-*` and `settingsSceneLogic.canonicalSettingsSection` redirects `environment-…` there, so
  the canonical `project-*` ids are used (`environment-*` would work too).
- SDK Doctor is a side panel (`SidePanelTab.SdkDoctor`), opened by the hash `#panel=sdk-doctor`.

On PostHog Cloud the app lives on the API's host (https://us.posthog.com, https://eu.posthog.com); a self-hosted
instance serves both from its base URL.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from auditor.model import Check, Finding, Link, Status
from auditor.queries import PART_QUERIES

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    from auditor.facts import Facts

# router-utils.ts `pathsWithoutProjectId`: paths the router never prefixes with /project/<id>.
PATHS_WITHOUT_PROJECT_ID = ("api", "me", "instance", "organization", "preflight", "login", "signup",
                            "create-organization", "account", "oauth", "shared", "embedded", "interview", "cli",
                            "render_query")
# The legacy US app host moved to us.posthog.com; the ingestion hosts serve no app.
APP_HOSTS = {"https://app.posthog.com": "https://us.posthog.com", "https://us.i.posthog.com": "https://us.posthog.com",
             "https://eu.i.posthog.com": "https://eu.posthog.com"}


# ---- path builders: one per PostHog builder ------------------------------------------------------------------

def settings(section: str, setting: str | None = None) -> str:
    """urls.settings(section, setting)."""
    return f"/settings/{section}" + (f"#{setting}" if setting else "")


def feature_flags() -> str:
    return "/feature_flags"


def feature_flag(flag_id: Any) -> str:
    return f"/feature_flags/{quote(str(flag_id), safe='')}"


def experiments() -> str:
    return "/experiments"


def experiment(experiment_id: Any) -> str:
    return f"/experiments/{quote(str(experiment_id), safe='')}"


def data_warehouse_sources() -> str:
    return "/data-management/sources"


def data_warehouse_source(source_id: Any, tab: str = "schemas") -> str:
    """urls.dataWarehouseSource(id, tab = 'schemas'); the older /data-warehouse/sources/<id> redirects here."""
    return f"/data-management/sources/{quote(str(source_id), safe='')}/{tab}"


def actions() -> str:
    return "/data-management/actions"


def ingestion_warnings() -> str:
    return "/data-management/ingestion-warnings"


def sql_editor(query: str | None = None) -> str:
    """urls.sqlEditor(query): URLSearchParams encoding (spaces as '+')."""
    return "/sql" + (f"?{urlencode({'open_query': query})}" if query else "")


def replay_home() -> str:
    return "/replay/home"


def replay_playlists() -> str:
    return "/replay/playlists"


def surveys() -> str:
    return "/surveys"


def error_tracking() -> str:
    return "/error_tracking"


def error_tracking_symbol_sets() -> str:
    """errorTrackingConfiguration with the symbol sets setting selected (the legacy paths redirect here)."""
    return "/error_tracking?activeTab=configuration#selectedSetting=error-tracking-symbol-sets"


def dashboards() -> str:
    return "/dashboard"


def cohorts() -> str:
    return "/cohorts"


def persons() -> str:
    return "/persons"


def organization_billing(products: list[str] | None = None) -> str:
    return "/organization/billing" + (f"?products={','.join(products)}" if products else "")


def sdk_doctor() -> str:
    """The SDK Doctor side panel, opened over the project's home."""
    return "#panel=sdk-doctor"


# Settings (section id, setting id) as SettingsMap.tsx names them (project-* form, see the module docstring).
SETTINGS = {
    "replay": ("project-replay", "replay"),
    "replay-triggers": ("project-replay", "replay-triggers"),  # minimum duration, sampling, flag, URL/event triggers
    "replay-masking": ("project-replay", "replay-masking"),
    "replay-network": ("project-replay", "replay-network"),
    # Deprecated and shown only while recording_domains is non-empty (allowForTeam); URL triggers replace it.
    "replay-authorized-domains": ("project-replay", "replay-authorized-domains"),
    "autocapture": ("project-autocapture", "autocapture"),
    "exception-autocapture": ("project-error-tracking", "error-tracking-exception-autocapture"),
    "web-analytics-authorized-urls": ("project-web-analytics", "web-analytics-authorized-urls"),
    "group-analytics": ("project-product-analytics", "group-analytics"),
    "surveys": ("project-surveys", "surveys-interface"),
    "feature-flag-secure-api-key": ("project-feature-flags", "feature-flag-secure-api-key"),
    "internal-user-filtering": ("project-customization", "internal-user-filtering"),
    "reverse-proxy": ("organization-proxy", "organization-proxy"),
    "members": ("organization-members", "members"),
}


def setting(name: str) -> str:
    return settings(*SETTINGS[name])


# ---- absolute URLs for the audited project ------------------------------------------------------------------

def app_base(host: str | None) -> str | None:
    """The app's base URL for an API host (us/eu Cloud, or a self-hosted base URL); None when unknown."""
    if not host or not str(host).lower().startswith(("https://", "http://")):
        return None
    base = str(host).rstrip("/")
    return APP_HOSTS.get(base.lower(), base)


def absolute(host: str | None, project_id: Any, path: str) -> str | None:
    """The URL of `path` in project `project_id` on `host`, prefixed as PostHog's router does."""
    base = app_base(host)
    if base is None:
        return None
    first = path.lstrip("/").split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if first in PATHS_WITHOUT_PROJECT_ID:
        return base + path
    if project_id in (None, ""):
        return None
    return f"{base}/project/{quote(str(project_id), safe='')}{path}"


def link(facts: Facts, label: str, path: str, kind: str = "fix") -> Link | None:
    url = absolute(facts.target.get("host"), facts.target.get("project_id"), path)
    return Link(label, url, kind) if url else None


def links(facts: Facts, *items: tuple[str, str]) -> tuple[Link, ...]:
    """Links (label, path) for the audited project; none when the project's host or id is unknown."""
    return tuple(made for label, path in items if (made := link(facts, label, path)) is not None)


# ---- where each check's finding is fixed ---------------------------------------------------------------------

FIX_LINKS: dict[str, tuple[tuple[str, str], ...]] = {
    "platform.owners-and-admins": (("Organization members", setting("members")),),
    "platform.sdk-versions": (("SDK Doctor", sdk_doctor()),),
    "platform.reverse-proxy": (("Managed reverse proxy", setting("reverse-proxy")),),
    "platform.authorized-urls": (("Authorized URLs", setting("web-analytics-authorized-urls")),),
    "platform.ingestion-warnings": (("Ingestion warnings", ingestion_warnings()),),
    "platform.test-traffic": (("Filter out internal and test users", setting("internal-user-filtering")),),
    "product_analytics.illegal-distinct-ids": (("Ingestion warnings", ingestion_warnings()),),
    "product_analytics.merge-conflicts": (("Ingestion warnings", ingestion_warnings()),),
    "product_analytics.group-analytics": (("Group analytics settings", setting("group-analytics")),),
    "product_analytics.autocapture-tuned": (("Autocapture settings", setting("autocapture")),
                                            ("Actions", actions())),
    "product_analytics.person-properties": (("Persons", persons()),),
    "product_analytics.actions-defined": (("Actions", actions()),),
    "product_analytics.dashboards-in-use": (("Dashboards", dashboards()),),
    "product_analytics.team-adoption": (("Organization members", setting("members")),),
    "product_analytics.cohorts-defined": (("Cohorts", cohorts()),),
    "session_replay.recording-active": (("Session replay settings", setting("replay")),),
    "session_replay.minimum-duration": (("Recording conditions (minimum duration)", setting("replay-triggers")),),
    "session_replay.recording-controls": (("Recording conditions", setting("replay-triggers")),),
    "session_replay.privacy-masking": (("Privacy and masking", setting("replay-masking")),
                                       ("Network capture", setting("replay-network"))),
    # The authorized-domains setting is shown only while domains are set, and PostHog now points to URL triggers.
    "session_replay.authorized-domains": (("Recording conditions (URL triggers)", setting("replay-triggers")),),
    "session_replay.short-recordings": (("Recording conditions (minimum duration)", setting("replay-triggers")),),
    "session_replay.saved-playlists": (("Replay collections", replay_playlists()),),
    "feature_flags.flags-in-use": (("Feature flags", feature_flags()),),
    "feature_flags.call-volume": (("Feature flags", feature_flags()),),
    "feature_flags.server-local-evaluation": (("Feature flags secure API key",
                                               setting("feature-flag-secure-api-key")),),
    "feature_flags.stale-rollouts": (("Feature flags", feature_flags()),),
    "feature_flags.uncalled-flags": (("Feature flags", feature_flags()),),
    "feature_flags.targeting": (("Feature flags", feature_flags()),),
    "feature_flags.experiments": (("Experiments", experiments()),),
    "surveys.launched": (("Surveys", surveys()), ("Surveys settings", setting("surveys"))),
    "surveys.response-rate": (("Surveys", surveys()),),
    "data_warehouse.sources-healthy": (("Data warehouse sources", data_warehouse_sources()),),
    "data_warehouse.full-refresh-on-large-tables": (("Data warehouse sources", data_warehouse_sources()),),
    "data_warehouse.sync-frequency": (("Data warehouse sources", data_warehouse_sources()),),
    "data_warehouse.views-and-joins": (("SQL editor", sql_editor()),),
    "error_tracking.exceptions-captured": (("Exception autocapture", setting("exception-autocapture")),),
    "error_tracking.web-sdk": (("Exception autocapture", setting("exception-autocapture")),),
    "error_tracking.source-maps": (("Symbol sets (source maps)", error_tracking_symbol_sets()),),
    "error_tracking.issues-triaged": (("Error tracking issues", error_tracking()),),
    "handover.paid-products-used": (("Billing", organization_billing()),),
}

# The HogQL parts an audit runs (auditor/queries.py PART_QUERIES), as a link to PostHog's SQL editor names them.
QUERY_PARTS = {
    "cube": "events by name and SDK",
    "identity": "identity, flag calls and surveys",
    "replay": "recordings per day",
}


def query_links(facts: Facts, parts: tuple[str, ...]) -> tuple[Link, ...]:
    """"Open this query in PostHog": each HogQL part the finding rests on, over the window it really covered."""
    made = []
    for part in dict.fromkeys(parts):
        if part not in QUERY_PARTS or not facts.ok(part):
            continue
        _, default_days = PART_QUERIES[part]
        what = QUERY_PARTS[part]
        value = facts.get(part)
        days = value.get("window_days") if isinstance(value, dict) else None
        days = days if isinstance(days, int) and days > 0 else default_days
        item = link(facts, f"Open this query in PostHog ({what}, {days} days)", query_path(part, days), "query")
        if item:
            made.append(item)
    return tuple(made)


@functools.lru_cache(maxsize=64)
def query_path(part: str, days: int) -> str:
    """The SQL editor path of one HogQL part over `days`: the same text for every finding and every account, so
    it is built and URL-encoded once (about a third of judging a small project was spent redoing it)."""
    build, _ = PART_QUERIES[part]
    return sql_editor(build(days))


def with_links(check: Check) -> Check:
    """The check, its findings linked to where they are fixed (after the links it made itself, e.g. one flag) and
    to the queries they rest on. Findings that did not apply (skip) or could not be judged get none."""
    meta = check.meta
    fn = check.fn

    def linked(facts: Facts, thresholds: Any) -> Finding:
        finding = fn(facts, thresholds)
        if not isinstance(finding, Finding) or Status(finding.status) in (Status.SKIP, Status.ERROR):
            return finding
        extra = links(facts, *FIX_LINKS.get(meta.id, ())) + query_links(facts, meta.requires + meta.uses)
        seen = {item.url for item in finding.links}
        added = tuple(item for item in extra if item.url not in seen)
        return dataclasses.replace(finding, links=finding.links + added)

    linked.__name__ = getattr(fn, "__name__", "check")
    linked.__module__ = getattr(fn, "__module__", __name__)
    return dataclasses.replace(check, fn=linked)


# ---- links to the very objects a finding names -------------------------------------------------------------------

OBJECT_LINKS = 5  # a finding links the first few objects it names; its table lists them all


def flag_links(facts: Facts, flags: list[dict[str, Any]]) -> tuple[Link, ...]:
    return links(facts, *[(f"Flag {f.get('key')}", feature_flag(f["id"])) for f in flags
                          if f.get("id") is not None][:OBJECT_LINKS])


def experiment_links(facts: Facts, items: list[dict[str, Any]]) -> tuple[Link, ...]:
    return links(facts, *[(f"Experiment {e.get('name')}", experiment(e["id"])) for e in items
                          if e.get("id") is not None][:OBJECT_LINKS])


def source_links(facts: Facts, sources: list[dict[str, Any]]) -> tuple[Link, ...]:
    """One link per warehouse source (its schemas tab, where sync method, frequency and resyncs are set)."""
    unique = list({str(s["id"]): s for s in sources if s.get("id") is not None}.values())
    def label(source: dict[str, Any]) -> str:
        prefix = f" ({source['prefix']})" if source.get("prefix") else ""
        return f"{source.get('source_type') or 'Warehouse'} source{prefix}"

    return links(facts, *[(label(s), data_warehouse_source(s["id"])) for s in unique][:OBJECT_LINKS])
