"""The API clients: PostHog (read-only: GET, and POST to the HogQL query endpoint) and Vitally, each with its
retries, rate limits and same-origin rule; `waits` says what a long rate-limit wait is for."""

from __future__ import annotations

from typing import Any


class HeaderAuth:
    """An API key as requests' `auth`, which sets the Authorization header on every request. Set as a session
    header instead, it would be replaced by ~/.netrc credentials for the same host (requests applies them to any
    request without `auth`: documented), and the key refused for no visible reason."""

    def __init__(self, value: str):
        self._value = value

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = self._value
        return request

    def __repr__(self) -> str:
        return "HeaderAuth(<hidden>)"  # never the key, in a traceback or a log
