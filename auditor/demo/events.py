"""The demo project's raw data, as PostHog stores it: events and session replay rows.

The demo answers its HogQL from precomputed results (`answers.json`) so `audit --demo` needs no database;
those results are computed from the raw rows below by running the auditor's current queries on embedded
ClickHouse (`python -m tests.demo_answers`), and a test fails when they drift apart. The test stand-in runs
every query on these rows (and on the variants tests build from them) the same way.

Times are seconds before the clock of whoever reads the data, so the demo never ages.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

DAY = 86_400.0


@dataclass(frozen=True)
class RawEvent:
    """One row of PostHog's `events` table."""

    event: str
    distinct_id: str
    seconds_ago: float
    properties: str  # the JSON blob, as PostHog stores it


@dataclass(frozen=True)
class ReplayRow:
    """One row of `raw_session_replay_events`: a batch of one recording (a recording has several)."""

    session_id: str
    distinct_id: str
    first_seconds_ago: float
    last_seconds_ago: float
    active_milliseconds: int
    click_count: int = 0
    first_url: str | None = None
    is_deleted: int = 0


@dataclass(frozen=True)
class EventData:
    """A project's raw events and replay rows: immutable, so a loaded copy can be shared by key."""

    events: tuple[RawEvent, ...] = ()
    replay: tuple[ReplayRow, ...] = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> EventData:
        return self  # immutable: copies of a scenario share their rows

    @cached_property
    def key(self) -> str:
        digest = hashlib.sha1()
        for e in self.events:
            digest.update(f"{e.event}\x1f{e.distinct_id}\x1f{e.seconds_ago}\x1f{e.properties}\x1e".encode())
        digest.update(b"\x1d")
        for r in self.replay:
            digest.update(repr(r).encode())
        return digest.hexdigest()[:16]

    def plus(self, events: Iterable[RawEvent] = (), replay: Iterable[ReplayRow] = ()) -> EventData:
        return EventData(self.events + tuple(events), self.replay + tuple(replay))

    def where(self, keep_event: Any = None, keep_replay: Any = None) -> EventData:
        """A copy without the rows the predicates reject."""
        return EventData(tuple(e for e in self.events if keep_event is None or keep_event(e)),
                         tuple(r for r in self.replay if keep_replay is None or keep_replay(r)))


def event(name: str, distinct_id: str, seconds_ago: float, properties: dict[str, Any]) -> RawEvent:
    return RawEvent(name, distinct_id, round(seconds_ago, 3), json.dumps(properties, separators=(",", ":")))


@dataclass
class Visitor:
    distinct_id: str
    identified: bool
    company: str


@dataclass
class Session:
    id: str
    visitor: Visitor
    start_ago: float
    version: str


@dataclass
class DemoBuilder:
    """Builds Hedgebox's 30 days of traffic: web visitors in sessions, a Node backend, flags, surveys, replay."""

    rng: random.Random = field(default_factory=lambda: random.Random(4242))
    events: list[RawEvent] = field(default_factory=list)

    def visitors(self, count: int, identified_share: float, companies: int) -> list[Visitor]:
        people = []
        for i in range(count):
            known = self.rng.random() < identified_share
            did = f"user-{i:05d}" if known else f"0191{self.rng.getrandbits(48):012x}-anon"
            people.append(Visitor(did, known, f"company-{self.rng.randrange(companies):03d}"))
        return people

    def sessions(self, visitors: list[Visitor], count: int, new_version_share: float,
                 days: float = 30.0) -> list[Session]:
        # Signed-in people come back more often: they carry about 60% of the web traffic.
        weights = [6.0 if v.identified else 1.0 for v in visitors]
        chosen = self.rng.choices(visitors, weights, k=count)
        return [Session(f"0191{self.rng.getrandbits(60):015x}", v, self.rng.uniform(600, days * DAY),
                        NEW_WEB if self.rng.random() < new_version_share else OLD_WEB) for v in chosen]

    def web(self, name: str, count: int, sessions: list[Session], *, version: str | None = None,
            test_host_every: int = 250, groups: float = 0.6, personless: bool = False,
            extra: dict[str, Any] | None = None) -> None:
        for i in range(count):
            s = self.rng.choice(sessions)
            props: dict[str, Any] = {
                "$lib": "web", "$lib_version": version or s.version, "$session_id": s.id,
                "$window_id": s.id[:-4] + "w001", "$is_identified": s.visitor.identified,
                "$process_person_profile": s.visitor.identified or not personless,
                "$host": "localhost:3000" if test_host_every and i % test_host_every == 7 else "app.hedgebox.net",
                "$current_url": "https://app.hedgebox.net/files", "token": "phc_demo", "distinct_id":
                s.visitor.distinct_id, **(extra or {}),
            }
            if self.rng.random() < groups:
                props["$groups"] = {"company": s.visitor.company}
                props["$group_0"] = s.visitor.company
            ago = max(1.0, s.start_ago - self.rng.uniform(0, 1_800))
            self.events.append(event(name, s.visitor.distinct_id, ago, props))

    def server(self, name: str, count: int, ids: list[str], *, custom_share: float = 1.0, days: float = 30.0,
               extra: dict[str, Any] | None = None) -> None:
        for _ in range(count):
            did = self.rng.choice(ids)
            props: dict[str, Any] = {"$lib": "posthog-node", "$lib_version": NODE, **(extra or {})}
            if self.rng.random() < custom_share:
                props.update(plan=self.rng.choice(["free", "pro", "business"]), source="api")
            props["$groups"] = {"company": f"company-{self.rng.randrange(40):03d}"}
            props["$group_0"] = props["$groups"]["company"]
            self.events.append(event(name, did, self.rng.uniform(60, days * DAY), props))


OLD_WEB, NEW_WEB, NODE = "1.380.1", "1.447.0", "5.61.0"
SURVEY_NPS = "0191c0de-5001-0000-0000-000000000001"


@dataclass(frozen=True)
class Traffic:
    """The knobs of a Hedgebox-like project; the defaults are the demo's (a customer with real problems)."""

    new_version_share: float = 0.16  # sessions on the current posthog-js
    legacy_version: str = OLD_WEB  # the version the rarer web events come from
    autocapture: int = 19_600
    proxied: bool = False  # posthog-js sends through a reverse proxy ($lib_custom_api_host)
    anonymous_personless: bool = False  # person_profiles: 'identified_only'
    test_host_every: int = 250  # one web event in N comes from localhost (0: none)
    illegal_ids: int = 18  # events sent with distinct_id "undefined"
    local_evaluation: bool = False  # the Node backend evaluates flags locally
    survey_sent: int = 5  # answers to 150 survey views
    exceptions: int = 51
    short_replay_share: float = 0.38  # recordings under 5 s of activity


@lru_cache(maxsize=8)
def build_events(traffic: Traffic = Traffic()) -> EventData:
    """About 37,000 events in 30 days (a hundredth of the customer it stands for) and 90 days of recordings."""
    t, b = traffic, DemoBuilder()
    people = b.visitors(1_900, identified_share=0.12, companies=40)
    sessions = b.sessions(people, 3_100, new_version_share=t.new_version_share)
    signed_in = [s for s in sessions if s.visitor.identified]
    web_extra: dict[str, Any] = {"$lib_custom_api_host": "https://e.hedgebox.net"} if t.proxied else {}

    def web(name: str, count: int, among: list[Session] = sessions, version: str | None = None,
            groups: float = 0.6, props: dict[str, Any] | None = None) -> None:
        b.web(name, count, among, version=version, groups=groups, test_host_every=t.test_host_every,
              personless=t.anonymous_personless, extra={**web_extra, **(props or {})})

    web("$autocapture", t.autocapture, props={"$event_type": "click"})
    web("$pageview", 6_150)
    web("$pageleave", 4_900)
    web("$identify", 450, signed_in)
    web("$set", 210, signed_in, version=t.legacy_version)
    web("$rageclick", 42, version=t.legacy_version)
    web("$web_vitals", 600, version=t.legacy_version)
    web("$groupidentify", 90, version=t.legacy_version, groups=1.0)
    web("$exception", t.exceptions, version=t.legacy_version, props={"$exception_type": "TypeError"})
    web("folder shared", 180, version=t.legacy_version)
    for key, count in (("new-file-browser", 1_200), ("bulk-upload", 200)):
        web("$feature_flag_called", count, version=t.legacy_version,
            props={"$feature_flag": key, "$feature_flag_response": True})
    web("survey shown", 150, version=t.legacy_version, props={"$survey_id": SURVEY_NPS})
    web("survey sent", t.survey_sent, version=t.legacy_version, props={"$survey_id": SURVEY_NPS, "$survey_response": 9})
    web("survey dismissed", 79, version=t.legacy_version, props={"$survey_id": SURVEY_NPS})
    users = [p.distinct_id for p in people if p.identified]
    b.server("signed up", 31, users)
    b.server("file uploaded", 2_200 - t.illegal_ids, users, custom_share=0.98)
    b.server("file uploaded", t.illegal_ids, ["undefined"])  # identify before the user is loaded
    b.server("invited teammate", 24, users)
    b.server("upgraded plan", 3, users)
    # Server-side flag checks; some with throwaway request ids seen nowhere else.
    flag = {"$feature_flag": "storage-quota-v2", "$feature_flag_response": True,
            "locally_evaluated": t.local_evaluation}
    b.server("$feature_flag_called", 838, users, custom_share=0, extra=flag)
    b.server("$feature_flag_called", 62, [f"req-{i:04x}" for i in range(21)], custom_share=0, extra=flag)
    # Events from before the window, which no 30-day figure may count.
    web("$pageview", 300, [Session("0191old0000000000", people[0], 40 * DAY, OLD_WEB)])
    return EventData(tuple(b.events), tuple(demo_replay(b.rng, short_share=t.short_replay_share)))


def demo_events() -> EventData:
    return build_events(Traffic())


def demo_replay(rng: random.Random, days: int = 90, per_day: int = 12, short_share: float = 0.38,
                ) -> list[ReplayRow]:
    """About a dozen recordings a day for 90 days, each stored as one to three batches; 38% have under 5 s of
    activity (no minimum duration is set)."""
    rows: list[ReplayRow] = []
    for d in range(days):
        for n in range(per_day + (d * 7) % 3):
            start = d * DAY + rng.uniform(1_000, DAY - 300)
            length = rng.uniform(20, 900)
            active = rng.randint(200, 4_800) if rng.random() < short_share else rng.randint(6_000, 600_000)
            batches = rng.choice((1, 2, 2, 3))
            sid = f"0191r{d:03d}{n:03d}{rng.getrandbits(32):08x}"
            for i in range(batches):
                first = start - length * i / batches
                rows.append(ReplayRow(sid, f"user-{rng.randrange(400):05d}", first, start - length * (i + 1) / batches,
                                      active // batches + (active % batches if i == 0 else 0),
                                      click_count=rng.randint(0, 9), first_url="https://app.hedgebox.net/files"))
    return rows
