"""Session replay checks: recording works, records what is worth watching, and never leaks private data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.model import Finding, Impact, Severity, Status, Table, check
from auditor.queries import SHORT_RECORDING_MS
from checks import impact as pricing
from checks.common import (
    date_or_never,
    latest_time,
    num,
    pct,
    project_timezone,
    records,
    replay,
    share,
    since,
    truncation_note,
)
from checks.impact import RECORDINGS, Charge
from checks.links import links, setting

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    from auditor.facts import Facts

DOCS = "https://posthog.com/docs/session-replay"


def recording_on(facts: Facts) -> bool:
    return bool(facts.require("project").get("session_recording_opt_in"))


def _not_recording(facts: Facts) -> Finding | None:
    """Settings checks do not apply to a project that does not record."""
    if not recording_on(facts):
        return Finding(Status.SKIP, "Session recording is off for this project.", {"session_recording_opt_in": False})
    return None


@check(
    id="session_replay.recording-active",
    title="Replay is recording",
    failure_title="Replay is not recording",
    description="Replay only helps if sessions are being recorded now: settings, SDK config and quotas can all "
    "stop it silently.",
    severity=Severity.BLOCKER,
    docs_url=f"{DOCS}/installation",
    requires=("project", "replay"),
    thresholds={"recent_days": 7},
)
def recording_active(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    on = recording_on(facts)
    df = replay(facts)
    recent = since(facts, thresholds["recent_days"])
    last = latest_time(df["last_start"].to_list(), project_timezone(facts))
    metrics = {"session_recording_opt_in": on,
               f"recordings_{thresholds['recent_days']}d": int(recent["recordings"].sum()),
               "recordings_30d": int(since(facts, 30)["recordings"].sum()), "last_recording": date_or_never(last),
               **truncation_note(facts, "replay")}
    table = Table.of(["day", "recordings"], [[r["day"], r["recordings"]] for r in df.tail(14).iter_rows(named=True)]) \
        if df.height else None
    history = f"stopped since {date_or_never(last)}" if last else "never recorded in the last 90 days"
    if not on:
        return Finding(Status.FAIL, f"Session recording is switched off ({history}).", metrics, table,
                       "Turn on session recording in Project settings → Session replay, and check posthog-js is "
                       "not initialised with `disable_session_recording: true`.")
    if recent.height == 0 or int(recent["recordings"].sum()) == 0:
        return Finding(Status.FAIL, f"Recording is on but nothing was recorded in {thresholds['recent_days']} days: "
                       f"{history}.", metrics, table,
                       "Check the posthog-js version and config (`disable_session_recording`, a linked flag or "
                       "triggers that never match), authorized domains, and the replay billing limit.")
    recent_count = int(recent["recordings"].sum())
    return Finding(Status.PASS, f"{num(recent_count)} recordings in the last {thresholds['recent_days']} days.",
                   metrics, table)


@check(
    id="session_replay.minimum-duration",
    title="Recordings skip bounce sessions",
    failure_title="Every bounce is recorded and billed",
    description="Without a minimum duration, sessions of a second or two are recorded and billed though nobody "
    "will watch them. PostHog recommends at least 2 seconds.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/how-to-control-which-sessions-you-record",
    requires=("project",),
    uses=("replay", "billing"),
    thresholds={"pass_ms": 2000},
)
def minimum_duration(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    off = _not_recording(facts)
    if off:
        return off
    project = facts.require("project")
    minimum = f"{thresholds['pass_ms'] / 1000:g} s"
    fix = (f"Set a minimum duration of at least {minimum} in Project settings → Session replay → Minimum session "
           "duration (posthog-js ≥ 1.89).")
    groups = trigger_groups(project)
    if groups:
        durations = [(group_name(g, i), int(g.get("minDurationMs") or 0)) for i, g in enumerate(groups)]
        table = Table.of(["trigger group", "minimum duration"], [[n, f"{ms / 1000:g} s"] for n, ms in durations])
        metrics = {"trigger_groups": len(groups), "shortest_minimum_ms": min(ms for _, ms in durations)}
        unset = [n for n, ms in durations if ms <= 0]
        short = [n for n, ms in durations if 0 < ms < thresholds["pass_ms"]]
        fix = fix.replace("Minimum session duration", "each trigger group's minimum duration")
        if unset:
            return Finding(Status.FAIL, f"{len(unset)} of {len(groups)} trigger group(s) record sessions of any "
                           f"length ({', '.join(unset[:3])}).", metrics, table, fix, impact=short_cost(facts))
        if short:
            return Finding(Status.WARN, f"{len(short)} trigger group(s) keep sessions under {minimum} "
                           f"({', '.join(short[:3])}).", metrics, table, fix, impact=short_cost(facts))
        return Finding(Status.PASS, f"Every trigger group skips sessions under {minimum}.", metrics,
                       table)
    ms = project.get("session_recording_minimum_duration_milliseconds") or 0
    metrics = {"minimum_duration_ms": ms}
    if ms >= thresholds["pass_ms"]:
        return Finding(Status.PASS, f"Minimum duration is {ms / 1000:g} s.", metrics)
    if ms > 0:
        return Finding(Status.WARN, f"Minimum duration is only {ms / 1000:g} s.", metrics, remediation=fix,
                       impact=short_cost(facts))
    return Finding(Status.FAIL, "No minimum duration: every session, however short, is recorded and billed.",
                   metrics, remediation=fix, impact=short_cost(facts))


def short_cost(facts: Facts, days: int = 30) -> Impact | None:
    """The recordings of the last 30 days with under 5 s of activity: billed, rarely watched. The replay data
    counts activity, not duration, so this is what a minimum duration and recording conditions together can
    skip; session_replay.short-recordings states the same waste under the same key (counted once)."""
    if not facts.ok("replay"):
        return None
    window = since(facts, days)
    short = int(window["short_recordings"].sum()) if window.height else 0
    return pricing.impact(facts, [Charge(RECORDINGS, pricing.per_month(short, facts, "replay", days),
                                         "recordings",
                                         f"under {SHORT_RECORDING_MS // 1000} s of activity")],
                          pricing.key(facts, "short-recordings"))


def trigger_groups(project: dict[str, Any]) -> list[dict[str, Any]]:
    """Replay's v2 configuration (`session_recording_trigger_groups`, {"version": 2, "groups": [...]}): SDKs that
    support it use each group's sample rate, minimum duration and conditions and ignore the v1 fields; with no
    groups they fall back to v1. A shape other than PostHog's is unknown, not "no groups" (ValueError)."""
    config = project.get("session_recording_trigger_groups")
    if config is None:
        return []
    groups = config.get("groups") if isinstance(config, dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError(f"session_recording_trigger_groups has an unexpected shape: {str(config)[:120]}")
    return groups


def group_name(group: dict[str, Any], index: int) -> str:
    return str(group.get("name") or group.get("id") or f"group {index + 1}")


def group_controls(group: dict[str, Any]) -> list[str]:
    """What narrows a trigger group: a sample rate under 1, or conditions on events, URLs or a flag (a group
    without conditions records every session at its sample rate)."""
    controls = []
    rate = group.get("sampleRate")
    if isinstance(rate, int | float) and rate < 1:
        controls.append(f"{rate:.0%} sampled")
    conditions = group.get("conditions") or {}
    if isinstance(conditions, dict):
        for key in ("events", "urls"):
            if conditions.get(key):
                controls.append(f"{len(conditions[key])} {key[:-1]} condition(s)")
        if conditions.get("flag"):
            flag = conditions["flag"]
            controls.append(f"flag {flag.get('key') if isinstance(flag, dict) else flag}")
    return controls


def recording_controls_in_use(project: dict[str, Any]) -> list[list[str]]:
    controls = []
    try:
        rate = float(project.get("session_recording_sample_rate") or 1)  # a decimal string, e.g. "0.50"
    except (TypeError, ValueError):
        rate = 1.0
    if rate < 1:
        controls.append(["sampling", f"{rate:.0%} of sessions"])
    flag = project.get("session_recording_linked_flag")
    if flag:
        controls.append(["linked flag", str(flag.get("key") if isinstance(flag, dict) else flag)])
    if project.get("session_recording_url_trigger_config"):
        controls.append(["URL triggers", str(len(project["session_recording_url_trigger_config"]))])
    if project.get("session_recording_event_trigger_config"):
        controls.append(["event triggers", ", ".join(map(str, project["session_recording_event_trigger_config"]))])
    if project.get("session_recording_url_blocklist_config"):
        controls.append(["URL blocklist", str(len(project["session_recording_url_blocklist_config"]))])
    return controls


@check(
    id="session_replay.recording-controls",
    title="Recording controls are used",
    failure_title="Every session is recorded",
    description="Sampling, a linked flag, URL or event triggers and a URL blocklist (or trigger groups with a sample "
    "rate or conditions) keep replay focused on the sessions that matter and the bill in proportion.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/how-to-control-which-sessions-you-record",
    requires=("project",),
)
def recording_controls(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    off = _not_recording(facts)
    if off:
        return off
    groups = trigger_groups(facts.require("project"))
    if groups:
        rows = [[group_name(g, i), ", ".join(group_controls(g)) or "every session"] for i, g in enumerate(groups)]
        table = Table.of(["trigger group", "records"], rows)
        narrowed = [r for r in rows if r[1] != "every session"]
        metrics = {"trigger_groups": len(groups), "groups_with_controls": len(narrowed)}
        if len(narrowed) == len(groups):
            return Finding(Status.PASS, f"All {len(groups)} trigger group(s) sample or set conditions.", metrics, table)
        return Finding(Status.WARN, f"{len(groups) - len(narrowed)} trigger group(s) record every session.", metrics,
                       table, "Give each trigger group a sample rate under 100% or conditions (events, URLs, a "
                       "flag) so replay records the sessions that matter.")
    controls = recording_controls_in_use(facts.require("project"))
    if controls:
        return Finding(Status.PASS, "Recording controls in use: " + ", ".join(c[0] for c in controls) + ".",
                       {"controls": len(controls)}, Table.of(["control", "setting"], controls))
    return Finding(Status.WARN, "No sampling, linked flag, triggers or URL blocklist: every session is recorded.",
                   {"controls": 0}, remediation="Record what you will watch: sample (e.g. 50%), link a flag to "
                   "record only some users, or trigger on the URLs or events of the flows under study.")


@check(
    id="session_replay.privacy-masking",
    title="Privacy controls are in place",
    failure_title="Replay may record private data",
    description="Recordings must not capture passwords, card numbers or personal data. PostHog masks all inputs "
    "by default; turning that off, or recording network bodies and headers, needs deliberate masking.",
    severity=Severity.BLOCKER,
    docs_url=f"{DOCS}/privacy",
    requires=("project",),
)
def privacy_masking(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    off = _not_recording(facts)
    if off:
        return off
    project = facts.require("project")
    masking = project.get("session_recording_masking_config") or {}
    network = project.get("session_recording_network_payload_capture_config") or {}
    canvas = bool((project.get("session_replay_config") or {}).get("record_canvas"))
    rows = [
        ["maskAllInputs", "default (true)" if "maskAllInputs" not in masking else str(masking["maskAllInputs"])],
        ["maskTextSelector", masking.get("maskTextSelector") or "—"],
        ["blockSelector", masking.get("blockSelector") or "—"],
        ["network bodies", "recorded" if network.get("recordBody") else "not recorded"],
        ["network headers", "recorded" if network.get("recordHeaders") else "not recorded"],
        ["canvas", "recorded" if canvas else "not recorded"],
    ]
    table = Table.of(["setting", "value"], rows)
    metrics = {"mask_all_inputs": masking.get("maskAllInputs", True), "network_body": bool(network.get("recordBody")),
               "network_headers": bool(network.get("recordHeaders")), "canvas": canvas}
    if masking.get("maskAllInputs") is False and not masking.get("maskTextSelector") \
            and not masking.get("blockSelector"):
        return Finding(Status.FAIL, "Input masking is turned off and no mask or block selector is set: typed "
                       "values (including personal data) are recorded.", metrics, table,
                       "Turn `maskAllInputs` back on in Project settings → Session replay → Privacy, or mask "
                       "sensitive fields with `maskTextSelector` / the `ph-no-capture` class.")
    risks = [r[0] for r in rows[3:] if r[1] == "recorded"]
    if risks:
        return Finding(Status.WARN, f"Recording {', '.join(risks)}: these can carry tokens and personal data.",
                       metrics, table, "Record network bodies and headers only where needed and scrub them with "
                       "`session_recording.maskCapturedNetworkRequestFn`; keep canvas recording off unless the "
                       "canvas holds no personal data.")
    return Finding(Status.PASS, "Inputs are masked and no network payloads or canvas are recorded.", metrics, table)


@check(
    id="session_replay.authorized-domains",
    title="Only the customer's domains can record",
    failure_title="Any domain can send recordings",
    description="Without authorized domains, any site carrying the project token (a staging copy, a scraper, a "
    "competitor) can send recordings to this project and the bill.",
    severity=Severity.MAJOR,
    docs_url=f"{DOCS}/privacy",
    requires=("project",),
)
def authorized_domains(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    off = _not_recording(facts)
    if off:
        return off
    domains = [d for d in facts.require("project").get("recording_domains") or [] if d]
    if domains:
        # PostHog shows this (deprecated) setting only while domains are set (SettingsMap allowForTeam); with none,
        # the finding links to the recording conditions' URL triggers that replace it (checks/links.py).
        return Finding(Status.PASS, f"Recordings are accepted from {len(domains)} authorized domain(s).",
                       {"recording_domains": len(domains)}, Table.of(["domain"], [[d] for d in domains]),
                       links=links(facts, ("Authorized domains for replay", setting("replay-authorized-domains"))))
    return Finding(Status.FAIL, "No authorized domains: recordings are accepted from any origin.",
                   {"recording_domains": 0}, remediation="Add the production domains under Project settings → "
                   "Session replay → Authorized domains.")


@check(
    id="session_replay.short-recordings",
    title="Recordings are worth watching",
    failure_title="Most recordings are too short to watch",
    description="Recordings with under 5 seconds of activity are rarely watched but always billed.",
    severity=Severity.MINOR,
    docs_url=f"{DOCS}/cutting-costs",
    requires=("replay",),
    uses=("project", "billing"),  # its timezone (HogQL's days are in it); billing prices the waste
    thresholds={"pass_share": 0.20, "warn_share": 0.50, "days": 30},
)
def short_recordings(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    window = since(facts, thresholds["days"])
    total = int(window["recordings"].sum()) if window.height else 0
    if total == 0:
        return Finding(Status.SKIP, f"No recordings in {thresholds['days']} days.", {})
    short = int(window["short_recordings"].sum())
    ratio = share(short, total)
    metrics = {"recordings": total, "under_5s_active": short, "share": pct(ratio), **truncation_note(facts, "replay")}
    summary = f"{pct(ratio)} of {num(total)} recordings have under 5 s of activity."
    fix = "Set a minimum duration (≥ 2 s) and record on triggers or a linked flag instead of every session."
    if ratio <= thresholds["pass_share"]:
        return Finding(Status.PASS, summary, metrics)
    return Finding(Status.WARN if ratio <= thresholds["warn_share"] else Status.FAIL, summary, metrics, remediation=fix,
                   impact=short_cost(facts, thresholds["days"]))


@check(
    id="session_replay.saved-playlists",
    title="People know how to find recordings",
    failure_title="No saved playlists",
    description="Training proxy: saved playlists and collections show the team navigates replay with filters "
    "rather than scrolling through recordings.",
    severity=Severity.INFO,
    docs_url=f"{DOCS}/how-to-watch-recordings",
    requires=("playlists",),
)
def saved_playlists(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    playlists = [p for p in records(facts.require("playlists")) if not p.get("deleted")]
    table = Table.of(["playlist", "last modified"], playlists, row=lambda p: [
        p.get("name") or p.get("derived_name"), date_or_never(p.get("last_modified_at"))]) if playlists else None
    return Finding(Status.INFO, f"{len(playlists)} saved playlist(s).", {"playlists": len(playlists)}, table)


CHECKS = (recording_active, minimum_duration, recording_controls, privacy_masking, authorized_domains,
          short_recordings, saved_playlists)
