"""A small Vitally REST client: Basic auth, cursor pagination, RateLimit-* backoff, and the only two writes
the tool makes (its own account traits, and one note per audit run). `dry_run` records writes instead of
sending them. The key is never logged or stored, and goes to the configured base only: the client follows no
redirects and requests no URL on another scheme, host or port (the same rule as the PostHog client)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from auditor.clients import HeaderAuth
from auditor.clients.posthog_api import ApiError, default_sleep, kind_of, redirect_error, same_origin, shown

if TYPE_CHECKING:
    import requests

EU_BASE = "https://rest.vitally-eu.io/resources"
MAX_PAGES = 1_000


def base_url(region: str, subdomain: str | None) -> str:
    """EU is one shared host (PostHog's own workspace is EU); US hosts are per subdomain."""
    if region == "eu":
        return EU_BASE
    if region == "us":
        if not subdomain:
            raise ValueError("Vitally US workspaces need a subdomain (the part before .vitally.io)")
        return f"https://{subdomain}.rest.vitally.io/resources"
    if region.startswith("https://") or region.startswith("http://"):
        return region.rstrip("/")
    raise ValueError(f"Vitally region must be 'eu', 'us' or a base URL, got {region!r}")


def _new_session() -> requests.Session:
    import requests  # here, not at the top: commands that never call Vitally need not load it

    return requests.Session()


@dataclass
class VitallyClient:
    base: str
    api_key: str
    dry_run: bool = False
    max_retries: int = 4
    timeout: tuple[float, float] = (5.0, 30.0)
    sleep: Callable[[float], None] | None = None
    session: requests.Session = field(default_factory=lambda: _new_session())
    writes: list[dict[str, Any]] = field(default_factory=list)  # what was (or, dry-run, would be) written
    requests_made: int = 0
    _fields: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("a Vitally API key is required")
        token = base64.b64encode(f"{self.api_key}:".encode()).decode()
        self.session.auth = HeaderAuth(f"Basic {token}")
        self.session.headers.update({"Accept": "application/json", "User-Agent": "posthog-auditor"})

    # ---- transport -----------------------------------------------------------------------------

    def _send(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        import requests

        url = path if path.startswith(("http://", "https://")) else self.base + path
        if not same_origin(url, self.base):
            raise ApiError("foreign_host", f"Vitally sent a link to another host: {shown(url)}", url=url)
        wait = self.sleep or default_sleep
        for attempt in range(self.max_retries + 1):
            self.requests_made += 1
            try:
                # No redirects: a 307 would re-send a write (and the key) to wherever its Location points.
                response = self.session.request(method, url, params=params, json=body, timeout=self.timeout,
                                                allow_redirects=False)
            except (requests.Timeout, requests.ConnectionError):
                if attempt == self.max_retries:
                    raise ApiError("network", "could not reach Vitally", url=path) from None
                wait(min(2**attempt, 30))
                continue
            if 300 <= response.status_code < 400:  # not retried: it would be redirected again
                raise redirect_error("Vitally", response.status_code, response.headers.get("Location"), url)
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == self.max_retries:
                    raise ApiError("rate_limited" if response.status_code == 429 else "server",
                                   f"Vitally answered {response.status_code} for {path}", response.status_code, path)
                # RateLimit-Reset: seconds until the oldest request leaves Vitally's sliding window.
                reset = response.headers.get("RateLimit-Reset") or response.headers.get("Retry-After")
                wait(min(float(reset) if reset and reset.replace(".", "", 1).isdigit() else 2**attempt, 60))
                continue
            if response.status_code == 401:
                raise ApiError("auth", "the Vitally API key was refused (401)", 401, path)
            if response.status_code == 404:
                raise ApiError("not_found", f"Vitally has no {path} (404)", 404, path)
            if response.status_code >= 400:
                raise ApiError("client", f"Vitally answered {response.status_code} for {path}: "
                               f"{response.text[:200]}", response.status_code, path)
            try:
                return response.json() if response.content else None
            except ValueError:
                raise ApiError("bad_response", f"Vitally returned invalid JSON for {path}", url=path) from None
        raise AssertionError("unreachable")

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send("GET", path, params)

    def get_list(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every item of a cursor-paginated list (`next` is passed back as `from`; 100 per page at most)."""
        params = {"limit": 100, **(params or {})}
        items: list[Any] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body = self.get(path, params)
            items.extend(_results(body, path))
            cursor = body.get("next")
            if cursor is not None and not isinstance(cursor, str | int):
                raise _unexpected(path, f"`next` is {kind_of(cursor)}, not a cursor")
            if not cursor:
                return items
            if str(cursor) in seen:  # kept as text: a numeric cursor that comes back is a loop too
                raise ApiError("bad_response", f"Vitally's pagination of {path} loops", url=path)
            seen.add(str(cursor))
            params = {**params, "from": cursor}
        raise ApiError("bad_response", f"Vitally kept returning pages for {path}", url=path)

    # ---- reads ---------------------------------------------------------------------------------

    def account(self, account_id: str) -> dict[str, Any]:
        """By Vitally id or by externalId (PostHog's organization id)."""
        path = f"/accounts/{quote(account_id, safe='')}"
        body = self.get(path)
        if not isinstance(body, dict):
            raise _unexpected(path, f"expected an account object, got {kind_of(body)}")
        return body

    def accounts(self, status: str = "active") -> list[dict[str, Any]]:
        return self.get_list("/accounts", {"status": status})

    def account_users(self, account_id: str) -> list[dict[str, Any]]:
        return self.get_list(f"/accounts/{quote(account_id, safe='')}/users")

    def account_notes(self, account_id: str) -> list[dict[str, Any]]:
        # Deleted notes stay listed as archived: they are neither updated nor counted as an Account Plan.
        return self.get_list(f"/accounts/{quote(account_id, safe='')}/notes", {"archived": "false"})

    def custom_fields(self, model: str = "accounts") -> list[dict[str, Any]]:
        """The model's trait definitions, asked once per client (every account of a run reads them)."""
        if model not in self._fields:
            body = self.get("/customFields", {"model": model})
            self._fields[model] = body if isinstance(body, list) else _results(body, "/customFields")
        return self._fields[model]

    # ---- the only writes -----------------------------------------------------------------------

    def update_account_traits(self, account_id: str, traits: dict[str, Any]) -> Any:
        payload = {"traits": traits}
        return self._write("PUT", f"/accounts/{quote(account_id, safe='')}", payload)

    def upsert_note(self, account_id: str, note: dict[str, Any]) -> Any:
        """One note per externalId: update the existing one if the account has it, else create it."""
        existing = next((n for n in self.account_notes(account_id) if n.get("externalId") == note["externalId"]),
                        None)
        if existing:
            update = {k: v for k, v in note.items() if k not in ("externalId", "accountId")}
            return self._write("PUT", f"/notes/{quote(str(existing['id']), safe='')}", update)
        return self._write("POST", "/notes", {**note, "accountId": account_id})

    def _write(self, method: str, path: str, body: dict[str, Any]) -> Any:
        self.writes.append({"method": method, "path": path, "body": body})
        if self.dry_run:
            return None
        return self._send(method, path, body=body)


def _unexpected(path: str, what: str) -> ApiError:
    return ApiError("bad_response", f"unexpected answer from Vitally {path}: {what}", url=path)


def _results(body: Any, path: str) -> list[Any]:
    """A page's items: an answer of another shape is an error, never an empty list (no note is not no answer)."""
    if not isinstance(body, dict):
        raise _unexpected(path, f"expected a page (an object with `results`), got {kind_of(body)}")
    if not isinstance(body.get("results"), list):
        raise _unexpected(path, f"`results` is {kind_of(body.get('results'))}, not a list")
    results: list[Any] = body["results"]
    return results


