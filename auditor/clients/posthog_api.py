"""A read-only PostHog API client: auth, hosts, pagination, retries, rate limits, HogQL.

Every request goes through one `requests.Session` with a bounded pool, timeouts, retries with backoff on
429/5xx (honouring Retry-After) and a rate limiter that can be shared by every audit using the same key.
The client refuses any method other than GET, except POST to the HogQL query endpoint. It follows no redirects
and sends the key only to the configured host: a URL taken from a response (a `next` link) must have the host's
scheme, host name and port, or it is not requested at all.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

from auditor.clients import HeaderAuth, ahead

if TYPE_CHECKING:  # requests is imported where a request is made: `--help` need not load it
    import requests

CLOUD_HOSTS = {"us": "https://us.posthog.com", "eu": "https://eu.posthog.com"}
# Fields PostHog returns that are secrets (project tokens); dropped from every payload on receipt.
SECRET_FIELDS = frozenset({"api_token", "secret_api_token", "secret_api_token_backup", "live_events_token"})
# Every secret field's name contains one of these: a body without them holds no secret field to drop.
_SECRET_MARKERS = (b"api_token", b"events_token")
USER_AGENT = "posthog-auditor (read-only audit)"
MAX_PAGES = 2_000
LARGEST_PAGE = 1_000  # the largest page the auditor asks for (auditor/facts.py PAGE)
# How many requests deep the current chain of dependent requests is (pre-flight -> project -> first page -> …).
# Requests made in parallel from the same point share a depth, so max_depth × latency is the critical path.
# Keyed by client (a serial number: id() is reused once a client is freed), so chains of different clients in
# one thread never add up.
_client_serial = itertools.count(1)
_chain_depth: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("posthog_request_depth",
                                                                               default=(0, 0))
# The requests of one piece of work (one project's audit, when an account's projects are audited side by side
# on one client): `PostHogClient.tally()` puts a fresh ClientStats here, and the threads that work inherits
# (they start from a copy of its context) count on it too.
_tally: contextvars.ContextVar[ClientStats | None] = contextvars.ContextVar("posthog_request_tally", default=None)
# What the work under way (a batch's account) does while the key's limiter makes it wait this long or longer: set
# with `stepping_aside`, inherited by the threads the work starts.
STEP_ASIDE_AFTER = 1.0
_step_aside: contextvars.ContextVar[Callable[[], contextlib.AbstractContextManager[None]] | None] = \
    contextvars.ContextVar("posthog_step_aside", default=None)
_QUERY_PATH_RE = re.compile(r"^/api/(projects|environments)/[^/]+/query/?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def key_digest(api_key: str) -> str:
    """What a key is known by in this process's caches: never the key itself."""
    import hashlib  # here: `--help` and `checks` need no hashing

    return hashlib.sha256(api_key.encode()).hexdigest()


def default_sleep(seconds: float) -> None:
    """How the client waits between retries (tests replace it to stay fast)."""
    time.sleep(seconds)


class ApiError(Exception):
    """A request that could not be answered. `kind` says what a caller should make of it."""

    # kinds: auth, scope, unsupported, not_found, rate_limited, server, network, bad_response, client,
    # redirect (a 3xx: never followed), foreign_host (a URL from a response that points elsewhere: never requested)
    def __init__(self, kind: str, message: str, status: int | None = None, url: str = ""):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.url = url

    @property
    def timed_out(self) -> bool:
        """A query PostHog stopped for running too long (ClickHouse's max execution time)."""
        # PostHog: 504 ClickHouseQueryTimeOut, 512 "estimated query execution time is too long".
        text = str(self).lower()
        return self.status in (504, 512) or ("time" in text and ("exceed" in text or "timed out" in text
                                                                  or "timeout" in text))

    @property
    def unavailable(self) -> bool:
        """PostHog refuses this read to personal keys, or this PostHog version lacks the endpoint."""
        return self.kind in ("unsupported", "not_found")


class ReadOnlyViolation(RuntimeError):
    """Raised before sending anything that could change a customer's project."""


def normalise_host(host: str) -> str:
    host = host.strip().rstrip("/")
    if host.lower() in CLOUD_HOSTS:
        return CLOUD_HOSTS[host.lower()]
    if not re.match(r"^https?://[^/\s]+", host):
        raise ValueError(f"host must be 'us', 'eu' or a base URL like https://posthog.example.com, got {host!r}")
    # The ingestion hosts (us.i.posthog.com) do not serve the private API.
    return re.sub(r"^(https?://)(us|eu)\.i\.posthog\.com", r"\1\2.posthog.com", host)


def origin(url: str) -> tuple[str, str, int | None, str | None, str | None] | None:
    """(scheme, host, port, user, password) of a URL, ports made explicit; None when it cannot be parsed."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme), parts.username, \
            parts.password
    except (ValueError, TypeError):
        return None


def same_origin(url: str, base: str) -> bool:
    """True when url may receive the key meant for base: same scheme (https -> http is a downgrade, so another
    host), host name and port, and no user info of its own."""
    own = origin(base)
    return own is not None and origin(url) == own


def shown(value: Any) -> str:
    """A value from a response (a URL, an id, a count), as an error message may quote it: bounded, one line."""
    text = str(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 200 else text[:200] + "…"


def scrub_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: scrub_secrets(v) for k, v in value.items() if k not in SECRET_FIELDS}
    if isinstance(value, list):
        # Rows of a HogQL result are lists of scalars: nothing to scrub, and 50,000 of them must stay cheap.
        return [scrub_secrets(v) if isinstance(v, dict | list) else v for v in value]
    return value


# PostHog's throttles on personal-key requests, counted per key across projects (posthog/rate_limit.py): every
# endpoint 480/minute and 4,800/hour; insights, session recordings and playlists (ClickHouse-backed) also
# 240/minute and 1,200/hour; HogQL queries 120/hour (a team's api_query_rate_limit may raise it).
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {
    "burst": (480, 60.0), "sustained": (4_800, 3_600.0),
    "clickhouse_burst": (240, 60.0), "clickhouse_sustained": (1_200, 3_600.0),
    "hogql": (120, 3_600.0),
}
_CLICKHOUSE_PATH_RE = re.compile(
    r"^/api/(projects|environments)/[^/]+/(insights|session_recordings|session_recording_playlists)(/|$)")


def throttles_for(method: str, url: str) -> tuple[str, ...]:
    """The throttles PostHog counts a request against."""
    path = urlsplit(url).path
    if method == "POST" and _QUERY_PATH_RE.match(path):
        return ("hogql",)
    if _CLICKHOUSE_PATH_RE.match(path):
        return ("burst", "sustained", "clickhouse_burst", "clickhouse_sustained")
    return ("burst", "sustained")


ARRIVAL_MARGIN = 0.25  # seconds a window is kept open beyond its length (see RateLimiter._wait)


class RateLimiter:
    """Sliding windows, one per PostHog throttle, shared by every client that uses the same API key: a request
    waits until every throttle it counts against has room. Waiting here costs less than a 429 and its
    Retry-After."""

    DEFAULT_LIMITS: ClassVar[dict[str, tuple[int, float]]] = DEFAULT_LIMITS
    _shared: ClassVar[dict[str, RateLimiter]] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self,
        limits: dict[str, tuple[int, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.limits = dict(limits or self.DEFAULT_LIMITS)
        self._clock = clock
        self._sleep = sleep
        self._events: dict[str, deque[float]] = {k: deque() for k in self.limits}
        self._lock = threading.Lock()
        self.waited_seconds = 0.0
        # Told of each wait before it starts: the throttle that makes it (the one whose window frees up last)
        # and its length. auditor/clients/waits.py uses it to say what a long wait is for.
        self.on_wait: Callable[[str, float], None] | None = None

    @classmethod
    def for_key(cls, api_key: str, limits: dict[str, tuple[int, float]] | None = None) -> RateLimiter:
        """One limiter per key (and set of limits) for the whole process: every audit on a key shares it."""
        wanted = dict(limits or cls.DEFAULT_LIMITS)
        digest = key_digest(api_key) + repr(sorted(wanted.items()))
        with cls._shared_lock:
            if digest not in cls._shared:
                cls._shared[digest] = cls(wanted)
            return cls._shared[digest]

    def acquire(self, *throttles: str) -> None:
        """Wait until each of `throttles` has room, then count the request against all of them at once."""
        kinds = [k for k in throttles if k in self.limits]
        while kinds:
            with self._lock:
                now = self._clock()
                wait, binding = max((self._wait(kind, now), kind) for kind in kinds)
                if wait <= 0:
                    for kind in kinds:
                        self._events[kind].append(now)
                    return
            self.waited_seconds += wait
            if self.on_wait is not None:
                self.on_wait(binding, wait)
            step_aside = _step_aside.get()
            if step_aside is not None and wait >= STEP_ASIDE_AFTER:
                with step_aside():  # e.g. a batch's account gives its place to the next one while it waits
                    self._sleep(wait)
            else:
                self._sleep(wait)

    def _wait(self, kind: str, now: float) -> float:
        """Seconds until `kind` has room (0: now). Called with the lock held."""
        limit, window = self.limits[kind]
        # PostHog counts a request when it arrives, a moment after we count it, and frees its slot a window after
        # that arrival. Sending the next one a window after ours is early only by how much later the old request
        # arrived than the new one will: the difference of two delivery lags, which does not grow with the window.
        window += ARRIVAL_MARGIN
        events = self._events[kind]
        while events and events[0] <= now - window:
            events.popleft()
        return 0.0 if len(events) < limit else events[0] + window - now


@contextlib.contextmanager
def stepping_aside(away: Callable[[], contextlib.AbstractContextManager[None]]) -> Iterator[None]:
    """While the block runs, a long wait on the rate limiter happens inside `away()`."""
    token = _step_aside.set(away)
    try:
        yield
    finally:
        _step_aside.reset(token)


class Once:
    """Runs fetch on first use; concurrent callers wait for that one result (or its exception)."""

    def __init__(self, fetch: Callable[[], Any]):
        self._fetch, self._lock, self._done = fetch, threading.Lock(), False
        self._value: Any = None
        self._error: Exception | None = None

    def get(self) -> Any:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._fetch()
                except Exception as exc:
                    self._error = exc
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value


class KeyAnswers:
    """Answers that depend only on the API key, not on the project (its scopes, its user, the billing of the
    user's current organization): asked once per key and host for the whole process, so a batch of accounts on
    one key asks once. Answers are kept, and so is a refused key (401: it stays refused for the run, and a batch's
    accounts and its HogQL lane need not each hear it again); any other failure is asked again next time."""

    _answers: ClassVar[dict[tuple[str, str, str], Any]] = {}
    _locks: ClassVar[dict[tuple[str, str, str], threading.Lock]] = {}
    _guard = threading.Lock()

    @classmethod
    def get(cls, host: str, key_digest: str, name: str, fetch: Callable[[], Any]) -> Any:
        slot = (host, key_digest, name)
        with cls._guard:
            lock = cls._locks.setdefault(slot, threading.Lock())
        with lock:  # accounts in parallel wait for the first one's answer rather than all asking
            if slot not in cls._answers:
                try:
                    cls._answers[slot] = fetch()
                except ApiError as exc:
                    if exc.kind == "auth":
                        cls._answers[slot] = exc
                    raise
            answer = cls._answers[slot]
        if isinstance(answer, ApiError):  # a fresh one each time: a shared exception would gather every traceback
            raise ApiError(answer.kind, str(answer), answer.status, answer.url)
        return answer

    @classmethod
    def forget(cls) -> None:
        with cls._guard:
            cls._answers.clear()
            cls._locks.clear()

    @classmethod
    def forget_refusals(cls) -> None:
        """A batch is over: a key refused during it is asked again by whatever runs next in this process."""
        with cls._guard:
            for slot in [slot for slot, answer in cls._answers.items() if isinstance(answer, ApiError)]:
                del cls._answers[slot]


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    limit: int | None

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=False)) for row in self.rows]


@dataclass
class ClientStats:
    http_requests: int = 0
    hogql_queries: int = 0
    retries: int = 0
    max_depth: int = 0  # the longest chain of requests that had to follow one another
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, attr: str) -> None:
        with self._lock:
            setattr(self, attr, getattr(self, attr) + 1)

    def reached(self, depth: int) -> None:
        with self._lock:
            self.max_depth = max(self.max_depth, depth)

    def add(self, other: ClientStats) -> None:
        """Count requests made elsewhere on this client's behalf (a query sent ahead, auditor/clients/ahead.py)."""
        with self._lock:
            self.http_requests += other.http_requests
            self.hogql_queries += other.hogql_queries
            self.retries += other.retries
            self.max_depth = max(self.max_depth, other.max_depth)


class PostHogClient:
    def __init__(
        self,
        host: str,
        api_key: str,
        *,
        concurrency: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        max_retry_wait: float = 60.0,
        query_poll_timeout: float = 180.0,
        limiter: RateLimiter | None = None,
        rate_limits: dict[str, tuple[int, float]] | None = None,  # the key's shared limiter's throttles
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        if not api_key:
            raise ValueError("a PostHog personal API key is required")
        self.host = normalise_host(host)
        self.concurrency = max(1, concurrency)
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_retry_wait = max_retry_wait
        self.query_poll_timeout = query_poll_timeout
        self.limiter = limiter or RateLimiter.for_key(api_key, rate_limits)
        self.stats = ClientStats()
        self._answers: dict[str, Once] = {}  # what `once` has asked: the account's own answers, kept per client
        self._answers_lock = threading.Lock()
        self._serial = next(_client_serial)
        self._key_digest = key_digest(api_key)
        self._sleep = sleep or default_sleep
        self._in_flight = threading.BoundedSemaphore(self.concurrency)  # the real bound on parallel requests
        # Page fetches queue here; the semaphore above is what bounds requests in flight.
        from concurrent.futures import ThreadPoolExecutor  # here: `checks` and `--help` need no thread pool

        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="posthog-api")
        if session is None:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.concurrency, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self.session.auth = HeaderAuth(f"Bearer {api_key}")
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    def __enter__(self) -> PostHogClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- low level -------------------------------------------------------------------------

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            base = path
        else:
            base = self.host + (path if path.startswith("/") else "/" + path)
        if not params:
            return base
        parts = urlsplit(base)
        query = parse_qs(parts.query, keep_blank_values=True)
        query.update({k: [str(v)] for k, v in params.items() if v is not None})
        return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))

    def _guard(self, method: str, url: str) -> None:
        path = urlsplit(url).path
        if method == "GET":
            return
        if method == "POST" and _QUERY_PATH_RE.match(path):
            return
        raise ReadOnlyViolation(f"refusing {method} {path}: posthog-auditor only reads (GET, and POST to /query/)")

    def request(self, method: str, url: str, json_body: dict[str, Any] | None = None) -> Any:
        """Send one request with retries; return the decoded JSON (secrets removed) or raise ApiError."""
        import requests

        method = method.upper()
        if not same_origin(url, self.host):
            # The key goes to the configured host only: a `next` link to another port, host or scheme (an
            # https -> http downgrade too) is refused before anything is sent.
            raise ApiError("foreign_host", f"PostHog sent a link to another host: {shown(url)}", url=url)
        self._guard(method, url)
        throttles = throttles_for(method, url)  # ("hogql",): a HogQL query (POST …/query/)
        attempt = 0
        while True:
            self.limiter.acquire(*throttles)
            self._count("http_requests")
            owner, depth = _chain_depth.get()
            depth = (depth if owner == self._serial else 0) + 1  # what this context asks next waits for this answer
            _chain_depth.set((self._serial, depth))
            for stats in self._counters():
                stats.reached(depth)
            try:
                with self._in_flight:
                    # No redirects: requests would follow a 307 on POST …/query/ by re-POSTing to its Location,
                    # past the read-only guard, and a Location may name another host.
                    response = self.session.request(method, url, json=json_body, timeout=self.timeout,
                                                    allow_redirects=False)
                    _ = response.content  # the body is read while the slot is held
            except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                error = ApiError("network", f"could not reach {self.host}: {_short(exc)}", url=url)
                if attempt >= self.max_retries:
                    raise error from None
                self._backoff(attempt, None)
                attempt += 1
                continue
            status = response.status_code
            if 300 <= status < 400:  # not retried: the same request would be redirected again
                raise redirect_error("PostHog", status, response.headers.get("Location"), url)
            if throttles == ("hogql",) and status in (504, 512):
                # Too slow for PostHog's limit: the same query would fail again (and spend the hourly budget).
                raise _error_for(response, url)
            if status == 429 or status >= 500:
                if attempt >= self.max_retries:
                    raise _error_for(response, url)
                self._backoff(attempt, response.headers.get("Retry-After"))
                attempt += 1
                continue
            if status >= 400:
                raise _error_for(response, url)
            try:
                payload = response.json() if response.content else None
            except ValueError:
                if attempt >= self.max_retries:
                    raise ApiError(
                        "bad_response", f"{_path(url)} returned a response that is not valid JSON", status, url
                    ) from None
                self._backoff(attempt, None)
                attempt += 1
                continue
            if status == 202 and isinstance(payload, dict):
                payload.setdefault("_http_status", 202)
            if any(marker in response.content for marker in _SECRET_MARKERS):
                payload = scrub_secrets(payload)
            return payload

    def _counters(self) -> list[ClientStats]:
        tally = _tally.get()
        return [self.stats] if tally is None else [self.stats, tally]

    def _count(self, what: str) -> None:
        for stats in self._counters():
            stats.count(what)

    @contextlib.contextmanager
    def tally(self) -> Iterator[ClientStats]:
        """Count the requests made within this block (and the threads it starts) apart from the client's total."""
        stats = ClientStats()
        token = _tally.set(stats)
        try:
            yield stats
        finally:
            _tally.reset(token)

    def once(self, name: str, fetch: Callable[[], Any]) -> Any:
        """An answer asked once for this client: what every project of an account shares (its organization, its
        members) is read once however many projects are audited. Concurrent callers wait for the first; a
        failure is not kept (the next caller asks again)."""
        with self._answers_lock:
            once = self._answers.get(name)
            if once is None:
                once = self._answers[name] = Once(fetch)
        try:
            return once.get()
        except Exception:
            with self._answers_lock:
                if self._answers.get(name) is once:
                    del self._answers[name]
            raise

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        self._count("retries")
        wait = self.backoff_base * (2**attempt) * (1 + random.random() * 0.25)
        if retry_after and retry_after.strip().replace(".", "", 1).isdigit():
            wait = max(wait, float(retry_after))
        self._sleep(min(wait, self.max_retry_wait))

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", self.url(path, params))

    def get_for_key(self, path: str, check: Callable[[Any], Any] = lambda body: body) -> Any:
        """A GET whose answer depends only on the key (see KeyAnswers): asked once per key in this process.
        `check` vets the answer first, so an answer of the wrong shape is never kept."""
        return KeyAnswers.get(self.host, self._key_digest, path, lambda: check(self.get(path)))

    # ---- projects vs environments ---------------------------------------------------------

    def project_get(self, project_id: str | int, suffix: str, params: dict[str, Any] | None = None) -> Any:
        return self._with_environment_fallback(project_id, suffix, lambda p: self.get(p, params))

    def project_list(self, project_id: str | int, suffix: str, params: dict[str, Any] | None = None,
                     enough: Callable[[list[Any]], bool] | None = None) -> list[Any]:
        items: list[Any] = self._with_environment_fallback(project_id, suffix,
                                                           lambda p: self.get_list(p, params, enough))
        return items

    def project_page(self, project_id: str | int, suffix: str,
                     params: dict[str, Any] | None = None) -> tuple[list[Any], int | None]:
        """The first page of a list, in the server's order, and the list's `count` (None when the server gives
        none): for a caller that needs how many there are and the first few, not every item."""
        page: tuple[list[Any], int | None] = self._with_environment_fallback(
            project_id, suffix, lambda p: self._first_page(p, params))
        return page

    def _first_page(self, path: str, params: dict[str, Any] | None) -> tuple[list[Any], int | None]:
        body = self.get(path, params)
        if isinstance(body, list):  # an unpaginated endpoint: the page is the whole list
            return body, len(body)
        where = _path(self.url(path))
        results = _page_results(body, where)
        # Sane if the pages the auditor would read the whole list in could reach it (this page may be smaller).
        count = _page_count(body, where, max(len(results), LARGEST_PAGE))
        if count and not results:
            raise unexpected(where, f"it reports {shown(count)} items but its first page is empty")
        return results, count

    def _with_environment_fallback(self, project_id: str | int, suffix: str, call: Callable[[str], Any]) -> Any:
        """`/api/projects/{id}/` is canonical; some endpoints once lived only under `/api/environments/{id}/`."""
        suffix = suffix.lstrip("/")
        try:
            return call(f"/api/projects/{project_id}/{suffix}")
        except ApiError as exc:
            if exc.kind != "not_found":
                raise
        return call(f"/api/environments/{project_id}/{suffix}")

    # ---- lists ------------------------------------------------------------------------------

    def get_list(self, path: str, params: dict[str, Any] | None = None,
                 enough: Callable[[list[Any]], bool] | None = None) -> list[Any]:
        """Every item of a list endpoint, whatever its pagination style.

        limit/offset with a `count`: the remaining pages are fetched in parallel (the page size comes from the
        server's own `next` link, so a server that caps `limit` still yields every item). `?page=` pages,
        `has_next` (recordings) and bare `next` links are followed in turn, refusing a `next` link that loops.
        `enough(items)` stops following `next` links early, for callers that need only the first items.
        """
        first = self.get(path, params)
        if isinstance(first, list):
            return first
        where = _path(self.url(path))
        results = _page_results(first, where)
        next_url = self._link(self.url(path, params), first.get("next"))
        count = _page_count(first, where, len(results) if next_url else None)
        if enough and enough(results):
            return results
        if next_url and count is not None and "offset=" in next_url and enough is None:
            return results + self._remaining_offset_pages(next_url, len(results), count)
        if next_url and "page=" in next_url and "offset=" not in next_url:
            return results + self._follow_next(next_url, results, enough)
        if first.get("has_next"):
            return results + self._follow_has_next(path, params or {}, len(results))
        if next_url:
            return results + self._follow_next(next_url, results, enough)
        return results

    def _remaining_offset_pages(self, next_url: str, page_size: int, count: int) -> list[Any]:
        parts = urlsplit(next_url)
        query = parse_qs(parts.query)
        try:
            limit = int(query.get("limit", [page_size or 100])[0]) or 100
            start = int(query.get("offset", [page_size])[0])
        except ValueError:
            raise unexpected(_path(next_url), "its `next` link has no usable limit and offset") from None
        if limit < 0 or start < 0:
            raise unexpected(_path(next_url), "its `next` link has a negative limit or offset")
        # Counted, not listed: a range of 10**18 offsets must cost nothing before it is refused.
        if -(-(count - start) // limit) > MAX_PAGES:
            raise unexpected(_path(next_url), f"it reports {shown(count)} items, more than {MAX_PAGES} pages "
                             "to read")
        offsets = range(start, count, limit)

        def page(offset: int) -> list[Any]:
            q = dict(query)
            q["offset"] = [str(offset)]
            q["limit"] = [str(limit)]
            url = urlunsplit(parts._replace(query=urlencode(q, doseq=True)))
            return _page_results(self.request("GET", url), _path(url))

        pages = self.map(page, offsets)
        return [item for chunk in pages for item in chunk]

    def _follow_next(self, next_url: str, before: list[Any] | None = None,
                     enough: Callable[[list[Any]], bool] | None = None) -> list[Any]:
        seen: set[str] = set()
        items: list[Any] = []
        url: str | None = next_url
        while url and not (enough and enough([*(before or []), *items])):
            if url in seen:
                raise ApiError("bad_response", f"pagination of {_path(url)} loops back on itself", url=url)
            if len(seen) >= MAX_PAGES:
                raise unexpected(_path(url), f"it kept returning `next` links past {MAX_PAGES} pages")
            seen.add(url)
            body = self.request("GET", url)
            items.extend(_page_results(body, _path(url)))
            url = self._link(url, body.get("next"))
        return items

    @staticmethod
    def _link(page_url: str, link: Any) -> str | None:
        """A `next` link from a page, resolved against that page's URL. Where it points is checked by request():
        a link to another host is never requested."""
        if link is None or link == "":
            return None
        if not isinstance(link, str):
            raise unexpected(_path(page_url), f"`next` is {kind_of(link)}, not a URL")
        return urljoin(page_url, link)

    def _follow_has_next(self, path: str, params: dict[str, Any], offset: int) -> list[Any]:
        items: list[Any] = []
        limit = int(params.get("limit") or offset or 100)
        for _ in range(MAX_PAGES):
            body = self.get(path, {**params, "limit": limit, "offset": offset})
            page = _page_results(body, _path(self.url(path)))
            items.extend(page)
            if not body.get("has_next") or not page:
                return items
            offset += len(page)
        raise unexpected(_path(self.url(path)), f"it kept reporting more pages past {MAX_PAGES}")

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Run fn over items on the client's bounded pool, keeping order; the first error propagates."""
        if self.concurrency == 1:
            return [fn(item) for item in items]
        # Each task starts from the caller's context: parallel requests share one depth in the chain.
        context = contextvars.copy_context()
        return list(self._pool.map(lambda item: context.copy().run(fn, item), list(items)))

    # ---- HogQL ------------------------------------------------------------------------------

    def query(self, project_id: str | int, hogql: str, *, name: str, limit: int | None = None) -> QueryResult:
        """Run one HogQL query. PostHog returns 100 rows without a LIMIT, so callers must set one. In a batch, the
        answer may already have been asked ahead (auditor/clients/ahead.py): then it is that answer, or its
        error, and its requests count here."""
        if not re.search(r"\bLIMIT\s+\d+", hogql, re.IGNORECASE):
            raise ValueError("HogQL queries must carry an explicit LIMIT (PostHog returns 100 rows otherwise)")
        store = ahead.current()
        answer = store.take(self._ahead_key(project_id, hogql, name, limit)) if store is not None else None
        if answer is None:
            return self._query(project_id, hogql, name, limit)
        answer.wait(_step_aside.get())
        for stats in self._counters():
            stats.add(answer.stats)
        if answer.error is not None:
            raise answer.error
        result: QueryResult = answer.value
        return result

    def send_ahead(self, store: ahead.QueriesAhead, project_id: str | int, hogql: str, *, name: str,
                   limit: int | None = None) -> bool:
        """Send a query now and leave its answer (or its error) in `store` for the audit of this project that will
        ask for it. False, sending nothing, when that audit asked first or the store is closed."""
        key = self._ahead_key(project_id, hogql, name, limit)
        answer = store.promise(key)
        if answer is None:
            return False
        with self.tally() as stats:
            try:
                result = self._query(project_id, hogql, name, limit)
            except BaseException as exc:  # whatever it ends in is the audit's to see; nobody may wait forever
                store.settle(key, answer, error=exc, stats=stats)
                if not isinstance(exc, Exception):
                    raise
                return True
        store.settle(key, answer, value=result, stats=stats, rows=len(result.rows))
        return True

    def _ahead_key(self, project_id: str | int, hogql: str, name: str, limit: int | None) -> ahead.Key:
        return ahead_key(self.host, self._key_digest, project_id, hogql, name, limit)

    def _query(self, project_id: str | int, hogql: str, name: str, limit: int | None) -> QueryResult:
        body = {"query": {"kind": "HogQLQuery", "query": hogql}, "name": name}
        self._count("hogql_queries")
        payload = self._with_environment_fallback(
            project_id, "query/", lambda p: self.request("POST", self.url(p), body)
        )
        payload = self._await_query(project_id, payload)
        if payload.get("error"):
            raise ApiError("client", f"HogQL query {name!r} failed: {payload['error']}")
        # HogQLQueryResponse (posthog/schema.py): `results` rows (lists), `columns` names. Anything else is refused
        # rather than read as "no rows", which could pass a check.
        where = f"/api/projects/{project_id}/query/"
        rows = payload.get("results")  # kept as PostHog sent them: 50,000 rows need no copy
        if not isinstance(rows, list):
            raise unexpected(where, f"`results` of {name!r} is {kind_of(rows)}, not a list of rows")
        if not all(isinstance(row, list) for row in rows):
            raise unexpected(where, f"`results` of {name!r} holds a row that is not a list")
        columns = payload.get("columns")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise unexpected(where, f"`columns` of {name!r} is not a list of column names")
        returned_limit = payload.get("limit")
        if returned_limit is not None and (not isinstance(returned_limit, int) or isinstance(returned_limit, bool)):
            raise unexpected(where, f"`limit` of {name!r} is {kind_of(returned_limit)}, not a number")
        columns = list(columns)
        effective_limit = returned_limit or limit
        truncated = bool(payload.get("hasMore")) or (effective_limit is not None and len(rows) >= effective_limit)
        return QueryResult(columns=columns, rows=rows, truncated=truncated, limit=effective_limit)

    def _await_query(self, project_id: str | int, payload: Any) -> dict[str, Any]:
        """Follow an async (HTTP 202) query until it completes."""
        where = f"/api/projects/{project_id}/query/"
        if not isinstance(payload, dict):
            raise unexpected(where, f"expected an object, got {kind_of(payload)}")
        status = payload.get("query_status") or {}
        if not isinstance(status, dict):
            raise unexpected(where, f"`query_status` is {kind_of(status)}, not an object")
        if payload.get("_http_status") != 202 and (not status or status.get("complete", True)):
            return payload
        query_id = status.get("id")
        if not query_id:
            raise ApiError("bad_response", "an async query came back without an id to poll")
        # The id goes into the poll URL's path: a plain id only, so no answer can steer the poll elsewhere.
        if not isinstance(query_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", query_id):
            raise ApiError("bad_response", f"an async query came back with an id that is not a plain id: "
                           f"{shown(query_id)}")
        deadline = time.monotonic() + self.query_poll_timeout
        wait = 0.5
        while True:
            if time.monotonic() > deadline:
                raise ApiError("server", f"query {query_id} did not finish within {self.query_poll_timeout:.0f}s")
            self._sleep(wait)
            wait = min(wait * 1.5, 5.0)
            polled = self.project_get(project_id, f"query/{query_id}/")
            status = polled.get("query_status") if isinstance(polled, dict) else None
            if not isinstance(status, dict):
                raise unexpected(f"{where}{query_id}/", "expected an object with a `query_status` object")
            if status.get("error"):
                raise ApiError("client", f"query failed: {status.get('error_message') or 'unknown error'}")
            if status.get("complete"):
                results = status.get("results")
                if not isinstance(results, dict):
                    raise ApiError("bad_response", "a finished async query had no results")
                return results


def kind_of(value: Any) -> str:
    """What a JSON value is, for a message about an answer of the wrong shape."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an empty object" if not value else "an object"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    return "a string" if isinstance(value, str) else "a number"


def unexpected(where: str, what: str) -> ApiError:
    """A 200 whose body has the wrong shape: never read as an empty answer (that could pass a check)."""
    return ApiError("bad_response", f"unexpected answer from {where}: {what}", url=where)


def _page_results(body: Any, where: str) -> list[Any]:
    """The items of one page: an object whose `results` is a list (DRF's pagination, PostHog's recordings)."""
    if not isinstance(body, dict):
        raise unexpected(where, f"expected a page (an object with `results`), got {kind_of(body)}")
    results = body.get("results")
    if not isinstance(results, list):
        raise unexpected(where, f"`results` is {kind_of(results) if 'results' in body else 'missing'}, not a list")
    return results


def ahead_key(host: str, digest: str, project_id: str | int, hogql: str, name: str, limit: int | None) -> ahead.Key:
    """What a query sent ahead is known by (auditor/clients/ahead.py): the host as the client normalises it, the
    key's digest (never the key), the project, the query."""
    return (normalise_host(host), digest, str(project_id), hogql, name, limit)


def _page_count(body: dict[str, Any], where: str, page_size: int | None) -> int | None:
    """A page's `count` of items across every page (DRF's LimitOffsetPagination), or None when it gives none.
    With a page size given, a count no sane number of pages of that size can reach is refused before any further
    request (even when the caller needs only the first items: such an answer is not a list to trust)."""
    count = body.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise unexpected(where, f"`count` is {kind_of(count)}, not a number of items")
    if count is not None and page_size is not None:
        pages = -(-(count - page_size) // max(1, page_size))
        if pages > MAX_PAGES:
            raise unexpected(where, f"it reports {shown(count)} items, more than {MAX_PAGES} pages to read")
    return count


def _path(url: str) -> str:
    return urlsplit(url).path or url


def _short(exc: Exception) -> str:
    import requests

    text = str(exc)
    if "timed out" in text.lower() or isinstance(exc, requests.Timeout):
        return "timed out"
    if "refused" in text.lower():
        return "connection refused"
    return text.split("(Caused by")[0].strip()[:160]


def redirect_error(service: str, status: int, location: str | None, url: str) -> ApiError:
    where = f"to {shown(location)}" if location else "without a Location"
    return ApiError("redirect", f"{service} answered {status} for {_path(url)}, redirecting {where}: posthog-auditor "
                    "follows no redirects (check the host)", status, url)


def _error_for(response: requests.Response, url: str) -> ApiError:
    status = response.status_code
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("error") or body.get("message") or "")
    except ValueError:
        pass
    path = _path(url)
    if status == 401:
        return ApiError("auth", "the PostHog API key was refused (401): check the key and the host", status, url)
    if status == 403:
        lowered = detail.lower()
        if "does not support personal api key" in lowered:
            return ApiError("unsupported", f"{path} cannot be read with a personal API key", status, url)
        match = re.search(r"missing required scope '([^']+)'", detail)
        if match:
            return ApiError("scope", f"API key missing scope {match.group(1)}", status, url)
        return ApiError("scope", f"access to {path} was refused (403){': ' + detail if detail else ''}", status, url)
    if status == 404:
        return ApiError("not_found", f"{path} was not found (404)", status, url)
    if status == 429:
        return ApiError("rate_limited", f"PostHog kept rate limiting {path} (429)", status, url)
    if status >= 500:
        return ApiError("server", f"PostHog answered {status} for {path}{': ' + detail if detail else ''}", status,
                        url)
    return ApiError("client", f"PostHog answered {status} for {path}{': ' + detail if detail else ''}", status, url)
