"""What the audit reads from Vitally (the account, its users, notes and `Paying for …` traits) and what it
writes back (its own traits and one note per run)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

from auditor.catalogue import Catalogue
from auditor.clients.posthog_api import ApiError
from auditor.clients.vitally_api import VitallyClient
from auditor.errors import UsageError
from auditor.outputs.render import category_label, category_score_text, impact_text, savings_headline
from auditor.text import neutralise

# The only traits the tool writes (besides New Owner, with `allocate --apply`).
OWN_TRAIT_PREFIX = "vitally.custom.posthogAudit"
NOTE_TAG = "posthog-audit"


@dataclass
class VitallySettings:
    region: str = "eu"
    subdomain: str | None = None
    api_key_env: str = "VITALLY_API_KEY"
    min_arr: float = 20_000
    paying_for_prefix: str = "Paying for "
    new_owner_label: str = "New Owner"
    invoices_paid_label: str | None = None
    country_traits: list[str] = field(default_factory=lambda: ["country", "$geoip_country_code",
                                                               "vitally.custom.country", "geoip_country_code"])
    timezone_traits: list[str] = field(default_factory=lambda: ["timezone", "$geoip_time_zone",
                                                                "vitally.custom.timezone", "time_zone"])


def truthy(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    return str(value).strip().lower() in ("true", "yes", "y", "1", "paying")


def label_paths(client: VitallyClient) -> dict[str, str]:
    """Trait label -> key (e.g. 'Paying for Session Replay' -> 'vitally.custom.payingForSessionReplay')."""
    return {str(f.get("label")): str(f.get("path")) for f in client.custom_fields("accounts")
            if f.get("label") and f.get("path")}


def trait(traits: dict[str, Any], paths: dict[str, str], label: str) -> Any:
    return traits.get(paths.get(label, label), traits.get(label))


def paid_products(traits: dict[str, Any], paths: dict[str, str], settings: VitallySettings,
                  catalogue: Catalogue) -> list[str] | None:
    """Products whose `Paying for <label>` trait is true (labels from the catalogue, as PostHog's handbook names
    them; keys resolved via /customFields); None when the account carries none of those traits."""
    return catalogue.paid_from_vitally(lambda label: truthy(trait(traits, paths, settings.paying_for_prefix + label)))


def read_account(client: VitallyClient, account_id: str, settings: VitallySettings, catalogue: Catalogue,
                 paths: dict[str, str] | None = None) -> dict[str, Any]:
    """The `vitally` fact of an audit: everything later steps need, nothing secret."""
    account = client.account(account_id)
    paths = label_paths(client) if paths is None else paths
    traits = account.get("traits") or {}
    vitally_id = str(account.get("id") or account_id)
    users = client.account_users(vitally_id)
    notes = client.account_notes(vitally_id)
    mrr = account.get("mrr")
    invoices = trait(traits, paths, settings.invoices_paid_label) if settings.invoices_paid_label else None
    return {
        "account_id": vitally_id,
        "external_id": account.get("externalId"),
        "name": account.get("name"),
        "mrr": mrr,
        "arr": round(float(mrr) * 12, 2) if mrr is not None else None,
        "account_owner_id": account.get("accountOwnerId"),
        "csm_id": account.get("csmId"),
        "health_score": account.get("healthScore"),
        "last_inbound_message": account.get("lastInboundMessageTimestamp"),
        "last_outbound_message": account.get("lastOutboundMessageTimestamp"),
        "new_owner": trait(traits, paths, settings.new_owner_label),
        "paid_products": paid_products(traits, paths, settings, catalogue),
        "invoices_paid": truthy(invoices),
        "users": [user_summary(u, settings) for u in users if isinstance(u, dict)],
        "notes": [{"subject": n.get("subject"), "noteDate": n.get("noteDate"), "createdAt": n.get("createdAt"),
                   "externalId": n.get("externalId")} for n in notes if isinstance(n, dict)],
    }


def user_summary(user: dict[str, Any], settings: VitallySettings) -> dict[str, Any]:
    traits = user.get("traits") or {}
    country = next((traits[k] for k in settings.country_traits if traits.get(k)), None)
    timezone = next((traits[k] for k in settings.timezone_traits if traits.get(k)), None)
    return {"email": user.get("email") or user.get("externalId"), "country": country, "timezone": timezone,
            "last_seen": user.get("lastSeenTimestamp"), "deactivated": bool(user.get("deactivatedAt"))}


# ---- writing a run back ------------------------------------------------------------------------

def own_traits(run: Mapping[str, Any], report_url: str | None) -> dict[str, Any]:
    readiness = run["readiness"]
    traits: dict[str, Any] = {
        f"{OWN_TRAIT_PREFIX}Readiness": readiness["score"],
        f"{OWN_TRAIT_PREFIX}Ready": readiness["ready"],
        f"{OWN_TRAIT_PREFIX}Date": run["started_at"][:10],
        f"{OWN_TRAIT_PREFIX}Mode": run.get("mode", "handover"),
    }
    for category in run["categories"]:
        name = "".join(part.capitalize() for part in category["id"].split("_"))
        traits[f"{OWN_TRAIT_PREFIX}{name}Score"] = category["score"]
    if report_url:
        traits[f"{OWN_TRAIT_PREFIX}ReportUrl"] = report_url
    return traits


def _html(value: Any) -> str:
    """Escaped, and with control and bidi characters shown as escapes: names in a note are data."""
    return escape(neutralise(str(value), keep_lines=True))


def note_for(run: Mapping[str, Any], account_id: str, report_url: str | None) -> dict[str, Any]:
    readiness = run["readiness"]
    score = "unknown" if readiness["score"] is None else f"{readiness['score']:.0f}/100"
    verdict = ("healthy" if readiness["ready"] else readiness.get("band", "not healthy").lower()) \
        if run.get("mode") == "health" else ("ready" if readiness["ready"] else "not ready")
    parts = [f"<p><strong>{_html(verdict.capitalize())}</strong> — readiness {_html(score)} for "
             f"{_html(str(run['target'].get('project_name') or run['target'].get('project_id')))}.</p>"]
    headline = savings_headline(run.get("savings"))
    if headline:  # worded as the HTML and Markdown reports open
        parts.append(f"<p><strong>{_html(headline)}</strong></p>")
    if readiness["reasons"]:
        parts.append("<ul>" + "".join(f"<li>{_html(r)}</li>" for r in readiness["reasons"][:8]) + "</ul>")
    parts.append("<p>" + ", ".join(  # worded as in the HTML and Markdown reports
        f"{_html(category_label(c))}: {_html(category_score_text(c))}"
        for c in run["categories"] if c["in_scope"]) + "</p>")
    recs = run.get("brief", {}).get("top_recommendations") or []
    if recs:
        parts.append("<ol>" + "".join(f"<li><strong>{_html(r['title'])}</strong>: {_html(r['summary'])}"
                                      f"{_recommendation_extras(r)} "
                                      f"(<a href=\"{_html(r['docs_url'])}\">docs</a>)</li>" for r in recs) + "</ol>")
    if report_url:
        parts.append(f"<p><a href=\"{_html(report_url)}\">Full report</a></p>")
    return {
        # Derived from the account and the run: pushing the same run again updates this note.
        "externalId": f"posthog-audit-{account_id}-{run['run_id']}",
        "subject": f"PostHog audit: {score}, {verdict}",
        "note": "".join(parts),
        "noteDate": run["started_at"],
        "tags": [NOTE_TAG],
    }


def _recommendation_extras(rec: dict[str, Any]) -> str:
    """What a recommendation costs, and where in PostHog it is fixed."""
    text = f" Costs {_html(impact_text(rec['impact']))}." if rec.get("impact") else ""
    links = [link for link in rec.get("links") or [] if link.get("url", "").startswith(("https://", "http://"))]
    if links:
        text += f" <a href=\"{_html(links[0]['url'])}\">Open in PostHog</a>"
    return text


def push_run(client: VitallyClient, run: Mapping[str, Any], account_id: str, report_url: str | None = None,
             unresolved: list[str] | None = None) -> str:
    """Set the tool's own traits and create or update this run's note. Returns the Vitally account id.

    A dry run needs Vitally only to look things up (the account's id, whether this run's note exists): when it
    cannot, it still records every payload it would send, and adds what it could not resolve to `unresolved`.
    """
    try:
        account = client.account(account_id)
    except ApiError as exc:
        if not client.dry_run:
            raise
        _note(unresolved, f"the Vitally account '{account_id}' ({exc}): its id is shown as given, and the note's "
                          "externalId is derived from it")
        account = {}
    vitally_id = str(account.get("id") or account_id)
    client.update_account_traits(vitally_id, own_traits(run, report_url))
    note = note_for(run, vitally_id, report_url)
    try:
        client.upsert_note(vitally_id, note)
    except ApiError as exc:
        if not client.dry_run:
            raise
        _note(unresolved, f"whether this run's note already exists ({exc}): shown as a new note")
        client.writes.append({"method": "POST", "path": "/notes", "body": {**note, "accountId": vitally_id}})
    return vitally_id


def _note(unresolved: list[str] | None, text: str) -> None:
    if unresolved is not None:
        unresolved.append(text)


def accounts_to_allocate(client: VitallyClient, settings: VitallySettings, catalogue: Catalogue, min_arr: float,
                         only: list[str]) -> list[dict[str, Any]]:
    """What allocation reads for each account: the ones named, else every active account at or above `min_arr`
    ARR that has no owner yet (no New Owner trait, no CSM)."""
    paths = label_paths(client)
    if only:
        return [read_account(client, account_id, settings, catalogue, paths) for account_id in only]
    chosen = []
    for account in client.accounts("active"):
        arr = float(account.get("mrr") or 0) * 12
        owner = (account.get("traits") or {}).get(paths.get(settings.new_owner_label, ""))
        if arr >= min_arr and not owner and not account.get("csmId"):
            chosen.append(read_account(client, str(account["id"]), settings, catalogue, paths))
    return chosen


def apply_new_owners(client: VitallyClient, rows: list[dict[str, Any]], label: str) -> list[str]:
    """Set the New Owner trait of each allocated account not flagged for review; the ids written."""
    key = label_paths(client).get(label)
    if not key:
        raise UsageError(f"Vitally has no account trait labelled '{label}' (set [vitally] new_owner_label)")
    done = []
    for row in rows:
        if row["new_owner"] and not row["review"]:
            client.update_account_traits(row["account_id"], {key: row["new_owner"]})
            done.append(row["account_id"])
    return done
